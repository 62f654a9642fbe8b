"""Objectives built on risk alone: risk budgeting, max diversification, min CVaR."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import cvxpy as cp
import numpy as np

from optimizer._data import ProblemData
from optimizer._errors import ASSETS, InvalidProblem
from optimizer._objectives import CompiledObjective, Objective
from optimizer._terms import CompileContext
from optimizer._typing import FloatArray


@dataclass(frozen=True)
class RiskBudgeting(Objective):
    """Weights whose risk contributions are proportional to ``budgets``.

    The convex log-barrier formulation (Spinu, 2013; Roncalli, *Introduction to
    Risk Parity and Budgeting*, 2013): ``x* = argmin_x ||v(x)||^2 - sum_i b_i log x_i``
    satisfies ``x_i (Sigma x)_i = b_i / 2``, so ``w = x* / sum(x*)`` has Euler risk
    contributions ``w_i (Sigma w)_i / sigma(w)`` in proportion to ``b``. The weights are
    long-only by construction. Other constraints act on ``w`` through the scale
    ``kappa = sum(x)`` as in max Sharpe; when they bind, the contributions are only
    as close to the budgets as the constraints allow.

    Parameters
    ----------
    budgets : sequence of float, optional
        Positive risk budgets in asset order (normalised to sum to 1). ``None`` gives
        equal budgets: risk parity.
    """

    name: ClassVar[str] = "risk_budgeting"

    budgets: tuple[float, ...] | None = None

    @property
    def structure(self) -> tuple[Hashable, ...]:
        """The class only: budgets are parameter values."""
        return super().structure

    def normalised_budgets(self, n_assets: int) -> FloatArray:
        """The budgets as a vector summing to 1 (equal when ``budgets`` is None)."""
        if self.budgets is None:
            return np.full(n_assets, 1.0 / n_assets)
        budgets = np.asarray(self.budgets, dtype=np.float64)
        normalised: FloatArray = budgets / budgets.sum()
        return normalised

    def check_feasible(self, data: ProblemData, lower: FloatArray, upper: FloatArray) -> None:
        """Reject budgets of the wrong length, non-positive budgets, and forced shorts."""
        if self.budgets is not None:
            budgets = np.asarray(self.budgets, dtype=np.float64)
            if budgets.shape != (data.n_assets,):
                raise InvalidProblem(
                    f"budgets has {budgets.size} values for {data.n_assets} assets; give one "
                    "positive budget per asset."
                )
            if not (np.all(np.isfinite(budgets)) and np.all(budgets > 0.0)):
                raise InvalidProblem(
                    "risk budgets must be positive and finite: every asset carries some risk "
                    "in a risk-budgeting portfolio (drop an asset instead of giving it 0)."
                )
        if np.any(upper <= 0.0):
            asset = int(np.argmin(upper))
            raise InvalidProblem(
                f"risk budgeting holds every asset long, but {ASSETS} has an upper bound "
                f"of {float(upper[asset]):g}; allow it a positive weight or drop it.",
                constraints=["weight_bounds"],
                asset_positions=[asset],
            )

    def compile(self, context: CompileContext) -> CompiledObjective:
        """``minimize ||v(x)||^2 - b @ log(x)`` with ``sum(x) == kappa``."""
        scaled_weights = cp.Variable(context.n_assets, name="scaled_weights", nonneg=True)
        kappa = cp.Variable(name="kappa", nonneg=True)
        budgets = cp.Parameter(context.n_assets, name="risk_budgets", nonneg=True)
        barrier = budgets @ cp.log(scaled_weights)  # type: ignore[attr-defined]
        return CompiledObjective(
            objective=cp.Minimize(context.risk.expression(scaled_weights) - barrier),
            weights=scaled_weights,
            scale=kappa,
            terms={"risk": context.risk},
            parameters={"risk_budgets": budgets},
        )

    def update(self, compiled: CompiledObjective, data: ProblemData) -> None:
        """Set the normalised budgets."""
        compiled.parameters["risk_budgets"].value = self.normalised_budgets(data.n_assets)


@dataclass(frozen=True)
class RiskParity(RiskBudgeting):
    """Equal risk contributions: :class:`RiskBudgeting` with equal budgets."""

    name: ClassVar[str] = "risk_parity"

    def __init__(self) -> None:
        super().__init__(budgets=None)


@dataclass(frozen=True)
class MaxDiversification(Objective):
    """Maximise the diversification ratio ``sigma' w / sqrt(w' Sigma w)``.

    ``sigma`` are the asset volatilities (Choueifaty & Coignard, 2008). Homogenised
    like max Sharpe: minimise ``y' Sigma y`` s.t. ``sigma' y == 1``,
    ``sum(y) == kappa``; then ``w = y / kappa``.
    """

    name: ClassVar[str] = "max_diversification"

    def compile(self, context: CompileContext) -> CompiledObjective:
        """``minimize ||v(y)||^2`` s.t. ``sigma @ y == 1``, ``kappa >= 0``."""
        scaled_weights = cp.Variable(context.n_assets, name="scaled_weights")
        kappa = cp.Variable(name="kappa", nonneg=True)
        volatility = cp.Parameter(context.n_assets, name="asset_volatility", nonneg=True)
        return CompiledObjective(
            objective=cp.Minimize(context.risk.expression(scaled_weights)),
            weights=scaled_weights,
            scale=kappa,
            constraints=(volatility @ scaled_weights == 1.0,),
            constraint_names=("positive_diversification",),
            terms={"risk": context.risk},
            parameters={"asset_volatility": volatility},
        )

    def update(self, compiled: CompiledObjective, data: ProblemData) -> None:
        """Set the asset volatilities."""
        compiled.parameters["asset_volatility"].value = data.asset_volatility


@dataclass(frozen=True)
class MinCVaR(Objective):
    """Minimise the conditional value at risk of the portfolio's scenario losses.

    Rockafellar & Uryasev (2000): ``CVaR_alpha(w) = min_t t + sum_s max(0, -r_s' w - t)
    / ((1 - alpha) T)`` over ``T`` equally likely scenarios ``r_s``. The factor
    ``c = 1 / ((1 - alpha) T)`` is folded into the parameters
    (``c max(0, z) = max(0, c z)``), so ``alpha`` is a value, not structure.

    Parameters
    ----------
    alpha : float, optional
        Confidence level in (0, 1); default 0.95 (the mean of the worst 5% of losses).

    Notes
    -----
    CVaR is in the units and frequency of the scenarios (daily returns give a
    daily CVaR), as a positive loss fraction.
    """

    name: ClassVar[str] = "min_cvar"
    uses_scenarios: ClassVar[bool] = True

    alpha: float = 0.95

    def check_feasible(self, data: ProblemData, lower: FloatArray, upper: FloatArray) -> None:
        """Require scenarios and ``0 < alpha < 1`` with at least one tail scenario."""
        if not (math.isfinite(self.alpha) and 0.0 < self.alpha < 1.0):
            raise InvalidProblem(f"alpha={self.alpha} must be between 0 and 1 (e.g. 0.95).")
        if data.scenarios is None:
            raise InvalidProblem(
                "min_cvar needs scenario returns: pass the historical returns (one row per "
                "period, one column per asset)."
            )
        n_scenarios = data.scenarios.shape[0]
        if (1.0 - self.alpha) * n_scenarios < 1.0:
            raise InvalidProblem(
                f"alpha={self.alpha} with {n_scenarios} scenarios leaves less than one "
                f"scenario in the tail; lower alpha to at most {1.0 - 1.0 / n_scenarios:.6g} "
                "or pass more returns."
            )

    def compile(self, context: CompileContext) -> CompiledObjective:
        """``minimize t + sum(pos(-(c R) @ w - c t))``."""
        if context.shape.n_scenarios is None:
            raise ValueError("min_cvar is compiled for a shape with scenarios")
        weights = cp.Variable(context.n_assets, name="weights")
        threshold = cp.Variable(name="value_at_risk")
        scaled_scenarios = cp.Parameter(
            (context.shape.n_scenarios, context.n_assets), name="scaled_scenarios"
        )
        tail_scale = cp.Parameter(name="tail_scale", nonneg=True)
        excess_losses = cp.pos(-(scaled_scenarios @ weights) - tail_scale * threshold)  # type: ignore[attr-defined]
        return CompiledObjective(
            objective=cp.Minimize(threshold + cp.sum(excess_losses)),  # type: ignore[attr-defined]
            weights=weights,
            terms={"risk": context.risk},
            parameters={"scaled_scenarios": scaled_scenarios, "tail_scale": tail_scale},
        )

    def update(self, compiled: CompiledObjective, data: ProblemData) -> None:
        """Set ``c R`` and ``c``."""
        assert data.scenarios is not None
        scale = 1.0 / ((1.0 - self.alpha) * data.scenarios.shape[0])
        compiled.parameters["scaled_scenarios"].value = scale * data.scenarios
        compiled.parameters["tail_scale"].value = scale


def conditional_value_at_risk(
    portfolio_returns: Sequence[float] | FloatArray, alpha: float
) -> float:
    """Empirical CVaR of equally likely returns: the Rockafellar-Uryasev minimum.

    The minimising ``t`` is the ``alpha``-quantile of the losses (inverted CDF), so
    evaluating the formula there gives the exact value, fractional tail scenario
    included.
    """
    losses = -np.asarray(portfolio_returns, dtype=np.float64)
    value_at_risk = float(np.quantile(losses, alpha, method="inverted_cdf"))
    tail = np.maximum(losses - value_at_risk, 0.0)
    return value_at_risk + float(tail.mean()) / (1.0 - alpha)
