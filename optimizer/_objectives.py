"""Objectives: value objects that compile to a cvxpy objective built from terms.

An objective stores only its values (``risk_aversion``, ``risk_free_rate``); these are
parameter values, never part of the compile key. ``compile`` creates the decision
variable(s) once per compiled problem, using the shared risk and cost terms of the
:class:`~optimizer._terms.CompileContext`; ``update`` sets the parameters for one
solve (the compiled problem sets the risk term itself).

More objectives live in ``_targets`` (efficient return and risk), ``_risk_based``
(risk budgeting, max diversification, min CVaR) and ``_hrp`` (hierarchical risk
parity, which needs no solver).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import ClassVar

import cvxpy as cp
import numpy as np

from optimizer._data import ProblemData
from optimizer._errors import InvalidProblem, NoPositiveExcessReturn, NumericalSolverError
from optimizer._terms import CompileContext, ExpectedReturn, LinearTransactionCost, Term
from optimizer._typing import FloatArray

_MIN_KAPPA = 1e-12
"""Smallest homogenising scale from which max-Sharpe weights ``y / kappa`` are trusted."""


@dataclass(frozen=True)
class CompiledObjective:
    """The cvxpy side of an objective.

    Attributes
    ----------
    objective : cp.Minimize or cp.Maximize
        The cvxpy objective.
    weights : cp.Variable
        The variable the portfolio constraints act on: the weights ``w``, or ``y``
        for a homogenised (max-Sharpe) problem.
    scale : cp.Variable or None
        The homogenising scale ``kappa`` with ``y = kappa * w``; ``None`` if plain.
    constraints : tuple of cp.Constraint
        Constraints that belong to the objective itself.
    constraint_names : tuple of str
        A name for each of ``constraints`` (e.g. ``"target_return"``), used when
        diagnosing infeasibility.
    terms : mapping of str to Term
        The terms, which own the data parameters.
    parameters : mapping of str to cp.Parameter
        The objective's own scalar parameters (e.g. ``risk_free_rate``).
    """

    objective: cp.Minimize | cp.Maximize
    weights: cp.Variable
    scale: cp.Variable | None = None
    constraints: tuple[cp.Constraint, ...] = ()
    constraint_names: tuple[str, ...] = ()
    terms: Mapping[str, Term] = field(default_factory=dict)
    parameters: Mapping[str, cp.Parameter] = field(default_factory=dict)

    def portfolio_weights(self) -> FloatArray:
        """The solved portfolio weights ``w`` (``y / kappa`` when homogenised).

        Raises
        ------
        NumericalSolverError
            If the solver left no values, or ``kappa`` is too small to divide by.
        """
        if self.weights.value is None:
            raise NumericalSolverError("the solver returned no weights.")
        values = np.asarray(self.weights.value, dtype=np.float64)
        if self.scale is None:
            return values
        kappa = None if self.scale.value is None else float(self.scale.value)
        if kappa is None or kappa < _MIN_KAPPA:
            raise NumericalSolverError(
                f"the max-Sharpe scale kappa={kappa} is too small to recover the weights; "
                "check that expected returns exceed the risk-free rate by a usable margin."
            )
        weights: FloatArray = values / kappa
        return weights


class Objective(ABC):
    """Base class of objectives."""

    name: ClassVar[str]
    """Short name reported in ``PortfolioResult.objective``."""

    uses_costs: ClassVar[bool] = False
    """Whether transaction costs enter the objective (else they are only reported)."""

    uses_scenarios: ClassVar[bool] = False
    """Whether the objective needs scenario returns (``ProblemData.scenarios``)."""

    @property
    def structure(self) -> tuple[Hashable, ...]:
        """What changes the compiled problem: the class only, never the values."""
        return (type(self).__module__, type(self).__qualname__)

    def sharpe_risk_free_rate(self) -> float | None:
        """The risk-free rate this objective is defined with, if any."""
        return None

    def check_feasible(self, data: ProblemData, lower: FloatArray, upper: FloatArray) -> None:
        """Raise ``InvalidProblem`` if the objective is undefined for these inputs.

        ``lower`` and ``upper`` are the per-asset weight bounds implied by the
        constraints. The default accepts any inputs.
        """
        return

    def allocate(self, data: ProblemData) -> FloatArray | None:
        """Weights computed directly, without a solver; ``None`` for convex programs.

        Allocators that override it (hierarchical risk parity) are never compiled.
        """
        return None

    @abstractmethod
    def compile(self, context: CompileContext) -> CompiledObjective:
        """Create the variables, terms and parameters, sharing ``context``'s terms."""

    @abstractmethod
    def update(self, compiled: CompiledObjective, data: ProblemData) -> None:
        """Set the parameters of ``compiled`` from ``data`` and this object's values."""


def cost_expression(
    compiled: CompiledObjective, weights: cp.Expression, scale: cp.Expression | None = None
) -> cp.Expression | float:
    """The cost term of ``compiled`` on ``weights``, or 0 when there are no costs."""
    cost = compiled.terms.get("cost")
    if cost is None:
        return 0.0
    assert isinstance(cost, LinearTransactionCost)
    return cost.expression(weights, scale)


def context_terms(context: CompileContext, **terms: Term) -> dict[str, Term]:
    """``terms`` plus the context's risk term and, when present, its cost term."""
    shared: dict[str, Term] = {"risk": context.risk, **terms}
    if context.cost is not None:
        shared["cost"] = context.cost
    return shared


def update_returns(compiled: CompiledObjective, data: ProblemData, scale: float = 1.0) -> None:
    """Set the expected-return and cost terms (when present) with ``scale`` folded in."""
    compiled.terms["return"].update(data, scale)
    if "cost" in compiled.terms:
        compiled.terms["cost"].update(data, scale)


@dataclass(frozen=True)
class MinVariance(Objective):
    """Minimise the portfolio variance ``w' Sigma w``."""

    name: ClassVar[str] = "min_variance"

    def compile(self, context: CompileContext) -> CompiledObjective:
        """``minimize ||v(w)||^2`` with ``v`` the risk vector."""
        weights = cp.Variable(context.n_assets, name="weights")
        return CompiledObjective(
            objective=cp.Minimize(context.risk.expression(weights)),
            weights=weights,
            terms={"risk": context.risk},
        )

    def update(self, compiled: CompiledObjective, data: ProblemData) -> None:
        """Nothing to set: the compiled problem sets the risk term."""


@dataclass(frozen=True)
class MeanVariance(Objective):
    """Maximise the quadratic utility ``mu' w - cost(w) - (risk_aversion / 2) w' Sigma w``.

    This is PyPortfolioOpt's ``max_quadratic_utility`` convention.

    Parameters
    ----------
    risk_aversion : float
        Positive risk-aversion coefficient, in the inverse units of the returns
        (with annualised inputs, a coefficient on annualised variance).
    """

    name: ClassVar[str] = "mean_variance"
    uses_costs: ClassVar[bool] = True

    risk_aversion: float

    def check_feasible(self, data: ProblemData, lower: FloatArray, upper: FloatArray) -> None:
        """Reject a non-positive or non-finite ``risk_aversion``."""
        if not (math.isfinite(self.risk_aversion) and self.risk_aversion > 0.0):
            raise InvalidProblem(
                f"risk_aversion={self.risk_aversion} must be a positive finite number; "
                "larger values give less risky portfolios (PyPortfolioOpt's default is 1)."
            )

    def compile(self, context: CompileContext) -> CompiledObjective:
        """``maximize (2 / risk_aversion) (mu @ w - cost(w)) - ||v(w)||^2``.

        Dividing the utility by ``risk_aversion / 2`` leaves the optimum unchanged and
        folds the scalar into the return and cost parameters, so that the risk term
        stays unscaled and can be shared with the risk constraints (a parameter times
        a parameter-dependent expression would not be DPP).
        """
        weights = cp.Variable(context.n_assets, name="weights")
        expected_return = ExpectedReturn(context.n_assets)
        compiled = CompiledObjective(
            objective=cp.Minimize(0),
            weights=weights,
            terms=context_terms(context, **{"return": expected_return}),
        )
        utility = (
            expected_return.expression(weights)
            - cost_expression(compiled, weights)
            - context.risk.expression(weights)
        )
        return replace(compiled, objective=cp.Maximize(utility))

    def update(self, compiled: CompiledObjective, data: ProblemData) -> None:
        """Set ``mu`` and the costs, both times ``2 / risk_aversion``."""
        update_returns(compiled, data, scale=2.0 / self.risk_aversion)


@dataclass(frozen=True)
class MaxSharpe(Objective):
    """Maximise the Sharpe ratio ``(mu' w - cost(w) - risk_free_rate) / sqrt(w' Sigma w)``.

    Solved as a convex problem by the change of variables ``y = kappa * w``
    (Cornuejols & Tutuncu, *Optimization Methods in Finance*, 2007, section 8.2):
    minimise ``y' Sigma y`` subject to ``(mu - risk_free_rate)' y - cost(y) >= 1``,
    ``sum(y) == kappa``, ``kappa >= 0`` and the constraints homogenised by ``kappa``;
    then ``w = y / kappa``. Without costs the return condition is an equality.

    Parameters
    ----------
    risk_free_rate : float, optional
        Risk-free rate in the units of the expected returns (annualised in the
        service). Default 0.
    """

    name: ClassVar[str] = "max_sharpe"
    uses_costs: ClassVar[bool] = True

    risk_free_rate: float = 0.0

    def sharpe_risk_free_rate(self) -> float | None:
        """``risk_free_rate``."""
        return self.risk_free_rate

    def check_feasible(self, data: ProblemData, lower: FloatArray, upper: FloatArray) -> None:
        """Reject the problem when no allowed portfolio beats the risk-free rate."""
        if not math.isfinite(self.risk_free_rate):
            raise InvalidProblem(f"risk_free_rate={self.risk_free_rate} must be finite.")
        best = max_attainable_return(data.expected_returns, lower, upper)
        if best > self.risk_free_rate:
            return
        top = int(np.argmax(data.expected_returns))
        highest = float(data.expected_returns[top])
        if highest <= self.risk_free_rate:
            raise NoPositiveExcessReturn.no_asset_beats(self.risk_free_rate, top, highest)
        raise NoPositiveExcessReturn(
            f"max Sharpe is undefined: the best portfolio the weight bounds allow returns "
            f"{best:.6g}, not more than the risk-free rate {self.risk_free_rate:g}, so no "
            "portfolio has a positive Sharpe ratio. Use the min_variance objective, or a "
            "lower risk_free_rate.",
        )

    def compile(self, context: CompileContext) -> CompiledObjective:
        """``minimize ||v(y)||^2`` s.t. ``(mu - rf) @ y - cost(y) >= 1``, ``kappa >= 0``."""
        scaled_weights = cp.Variable(context.n_assets, name="scaled_weights")
        kappa = cp.Variable(name="kappa", nonneg=True)
        expected_return = ExpectedReturn(context.n_assets)
        risk_free_rate = cp.Parameter(name="risk_free_rate")
        compiled = CompiledObjective(
            objective=cp.Minimize(context.risk.expression(scaled_weights)),
            weights=scaled_weights,
            scale=kappa,
            terms=context_terms(context, **{"return": expected_return}),
            parameters={"risk_free_rate": risk_free_rate},
        )
        excess_return = (
            expected_return.expression(scaled_weights) - risk_free_rate * scaled_weights.sum()
        )
        if context.cost is None:
            normalisation = excess_return == 1.0
        else:
            normalisation = excess_return - cost_expression(compiled, scaled_weights, kappa) >= 1.0
        return replace(
            compiled, constraints=(normalisation,), constraint_names=("positive_excess_return",)
        )

    def update(self, compiled: CompiledObjective, data: ProblemData) -> None:
        """Set ``mu``, the costs and the risk-free rate."""
        update_returns(compiled, data)
        compiled.parameters["risk_free_rate"].value = float(self.risk_free_rate)


@dataclass(frozen=True)
class MaxReturn(Objective):
    """Maximise ``mu' w - cost(w)`` (a linear program; the top of the efficient frontier).

    Unbounded unless the constraints bound the weights (long-only, bounds, leverage).
    """

    name: ClassVar[str] = "max_return"
    uses_costs: ClassVar[bool] = True

    def compile(self, context: CompileContext) -> CompiledObjective:
        """``maximize mu @ w - cost(w)``."""
        weights = cp.Variable(context.n_assets, name="weights")
        expected_return = ExpectedReturn(context.n_assets)
        compiled = CompiledObjective(
            objective=cp.Minimize(0),
            weights=weights,
            terms=context_terms(context, **{"return": expected_return}),
        )
        net_return = expected_return.expression(weights) - cost_expression(compiled, weights)
        return replace(compiled, objective=cp.Maximize(net_return))

    def update(self, compiled: CompiledObjective, data: ProblemData) -> None:
        """Set ``mu`` and the costs."""
        update_returns(compiled, data)


def max_attainable_return(
    expected_returns: FloatArray, lower: FloatArray, upper: FloatArray
) -> float:
    """Largest ``mu' w`` with ``lower <= w <= upper`` and ``sum(w) == 1``.

    Greedy: start every asset at its lower bound and spend the rest of the budget on
    the highest expected returns first. Assumes the bounds admit a fully invested
    portfolio. With unbounded shorting (a lower bound of ``-inf``) it returns the
    upper bound ``inf`` unless all expected returns are equal: a pre-solve check
    built on it then defers to the solver.
    """
    if np.any(np.isneginf(lower)):
        spread = float(np.ptp(expected_returns))
        return math.inf if spread > 0.0 else float(expected_returns[0])
    weights = lower.astype(np.float64).copy()
    remaining = 1.0 - float(np.sum(weights))
    for asset in np.argsort(-expected_returns, kind="stable"):
        if remaining <= 0.0:
            break
        added = min(remaining, float(upper[asset] - lower[asset]))
        weights[asset] += added
        remaining -= added
    return float(expected_returns @ weights)
