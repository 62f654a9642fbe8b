"""Points of the efficient frontier: min risk at a target return, max return at a target risk."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import cvxpy as cp

from optimizer._data import ProblemData
from optimizer._errors import InvalidProblem
from optimizer._objectives import (
    CompiledObjective,
    Objective,
    context_terms,
    cost_expression,
    max_attainable_return,
    update_returns,
)
from optimizer._terms import CompileContext, ExpectedReturn
from optimizer._typing import FloatArray


@dataclass(frozen=True)
class EfficientReturn(Objective):
    """Minimise ``w' Sigma w`` subject to ``mu' w - cost(w) >= target_return``.

    PyPortfolioOpt's ``efficient_return``. The target is met net of transaction costs.

    Parameters
    ----------
    target_return : float
        In the units of the expected returns (annualised in the service).
    """

    name: ClassVar[str] = "efficient_return"
    uses_costs: ClassVar[bool] = True

    target_return: float

    def check_feasible(self, data: ProblemData, lower: FloatArray, upper: FloatArray) -> None:
        """Reject a target above the best return the weight bounds allow."""
        if not math.isfinite(self.target_return):
            raise InvalidProblem(f"target_return={self.target_return} must be finite.")
        best = max_attainable_return(data.expected_returns, lower, upper)
        if self.target_return > best + 1e-9 * max(1.0, abs(best)):
            raise InvalidProblem(
                f"target_return={self.target_return:g} is above {best:.6g}, the highest "
                "expected return any portfolio within the weight bounds reaches; lower the "
                "target to at most that, or loosen the bounds.",
                constraints=["target_return", "weight_bounds", "budget"],
            )

    def compile(self, context: CompileContext) -> CompiledObjective:
        """``minimize ||v(w)||^2`` s.t. ``mu @ w - cost(w) >= target``."""
        weights = cp.Variable(context.n_assets, name="weights")
        expected_return = ExpectedReturn(context.n_assets)
        target = cp.Parameter(name="target_return")
        compiled = CompiledObjective(
            objective=cp.Minimize(context.risk.expression(weights)),
            weights=weights,
            terms=context_terms(context, **{"return": expected_return}),
            parameters={"target_return": target},
        )
        net_return = expected_return.expression(weights) - cost_expression(compiled, weights)
        return replace(
            compiled, constraints=(net_return >= target,), constraint_names=("target_return",)
        )

    def update(self, compiled: CompiledObjective, data: ProblemData) -> None:
        """Set ``mu``, the costs and the target."""
        update_returns(compiled, data)
        compiled.parameters["target_return"].value = float(self.target_return)


@dataclass(frozen=True)
class EfficientRisk(Objective):
    """Maximise ``mu' w - cost(w)`` subject to ``sqrt(w' Sigma w) <= target_volatility``.

    PyPortfolioOpt's ``efficient_risk``. When the target is below the lowest volatility
    the constraints allow, the optimizer reports that lowest volatility.

    Parameters
    ----------
    target_volatility : float
        Positive, in volatility units (annualised in the service).
    """

    name: ClassVar[str] = "efficient_risk"
    uses_costs: ClassVar[bool] = True

    target_volatility: float

    def check_feasible(self, data: ProblemData, lower: FloatArray, upper: FloatArray) -> None:
        """Reject a non-positive target."""
        if not (math.isfinite(self.target_volatility) and self.target_volatility > 0.0):
            raise InvalidProblem(
                f"target_volatility={self.target_volatility} must be positive (e.g. 0.15)."
            )

    def compile(self, context: CompileContext) -> CompiledObjective:
        """``maximize mu @ w - cost(w)`` s.t. ``||v(w)|| <= target``."""
        weights = cp.Variable(context.n_assets, name="weights")
        expected_return = ExpectedReturn(context.n_assets)
        target = cp.Parameter(name="target_volatility", nonneg=True)
        compiled = CompiledObjective(
            objective=cp.Minimize(0),
            weights=weights,
            terms=context_terms(context, **{"return": expected_return}),
            parameters={"target_volatility": target},
        )
        net_return = expected_return.expression(weights) - cost_expression(compiled, weights)
        return replace(
            compiled,
            objective=cp.Maximize(net_return),
            constraints=(context.risk.volatility(weights) <= target,),
            constraint_names=("target_volatility",),
        )

    def update(self, compiled: CompiledObjective, data: ProblemData) -> None:
        """Set ``mu``, the costs and the target."""
        update_returns(compiled, data)
        compiled.parameters["target_volatility"].value = float(self.target_volatility)
