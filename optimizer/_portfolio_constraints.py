"""Linear and polyhedral constraints: per-asset bounds, gross leverage, turnover.

Like the constraints in ``_constraints``, each stores values only, compiles them to
``cp.Parameter`` s, and checks before solving what it can prove impossible. Group
bounds are in ``_groups``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import ClassVar

import cvxpy as cp
import numpy as np
import numpy.typing as npt

from optimizer._constraints import Budget, CompiledConstraint, Constraint, times_scale
from optimizer._data import ProblemData
from optimizer._errors import ASSETS, InvalidProblem
from optimizer._terms import CompileContext
from optimizer._typing import FloatArray, ParameterValue

_SLACK = 1e-9
"""Rounding allowed in the pre-solve checks."""


def _per_asset(values: npt.ArrayLike | None) -> FloatArray | None:
    return None if values is None else np.asarray(values, dtype=np.float64)


@dataclass(frozen=True, eq=False)  # arrays have no boolean equality
class AssetBounds(Constraint):
    """A lower and an upper bound per asset: ``min_weights[i] <= w_i <= max_weights[i]``.

    Parameters
    ----------
    min_weights, max_weights : array-like of shape (n_assets,), optional
        Bounds in asset order; ``-inf`` / ``inf`` (or ``None`` for the whole side)
        leave an asset unbounded on that side.

    Notes
    -----
    Which assets are bounded on each side is structural; the values are parameters.
    """

    name: ClassVar[str] = "asset_bounds"

    min_weights: npt.ArrayLike | None = None
    max_weights: npt.ArrayLike | None = None

    def _sides(self, n_assets: int) -> tuple[FloatArray, FloatArray]:
        lower = _per_asset(self.min_weights)
        upper = _per_asset(self.max_weights)
        return (
            np.full(n_assets, -np.inf) if lower is None else lower,
            np.full(n_assets, np.inf) if upper is None else upper,
        )

    @property
    def structure(self) -> tuple[Hashable, ...]:
        """The class and which assets are bounded below and above."""
        lower = _per_asset(self.min_weights)
        upper = _per_asset(self.max_weights)
        masks = tuple(
            None if side is None else np.flatnonzero(np.isfinite(side)).tobytes()
            for side in (lower, upper)
        )
        return (*super().structure, *masks)

    def check_feasible(self, n_assets: int) -> None:
        """Reject wrong shapes, NaN bounds and a lower bound above an upper bound."""
        for label, side in (("min_weights", self.min_weights), ("max_weights", self.max_weights)):
            if side is None:
                continue
            values = np.asarray(side, dtype=np.float64)
            if values.shape != (n_assets,):
                raise InvalidProblem(
                    f"{label} has shape {values.shape}; pass one bound per asset ({n_assets}).",
                    constraints=[self.name],
                )
            if np.any(np.isnan(values)):
                raise InvalidProblem(
                    f"{label} contains NaN; use -inf or inf for an unbounded asset.",
                    constraints=[self.name],
                )
        lower, upper = self._sides(n_assets)
        if np.any(lower > upper):
            asset = int(np.argmax(lower - upper))
            raise InvalidProblem(
                f"{ASSETS} has min_weight {lower[asset]:.6g} above max_weight "
                f"{upper[asset]:.6g}; make its lower bound at most its upper bound.",
                constraints=[self.name],
                asset_positions=[asset],
            )

    def weight_bounds(self, n_assets: int) -> tuple[FloatArray, FloatArray]:
        """The bounds, with infinities where an asset is unbounded."""
        return self._sides(n_assets)

    def compile(
        self, weights: cp.Variable, scale: cp.Expression | None, context: CompileContext
    ) -> CompiledConstraint:
        """``w[i] >= lower_i`` and ``w[j] <= upper_j`` on the bounded assets only."""
        lower, upper = self._sides(context.n_assets)
        constraints: list[cp.Constraint] = []
        parameters: dict[str, cp.Parameter] = {}
        for key, side, sign in (("min_weights", lower, 1.0), ("max_weights", upper, -1.0)):
            bounded = np.flatnonzero(np.isfinite(side))
            if bounded.size == 0:
                continue
            parameters[key] = cp.Parameter(bounded.size, name=key)
            bound = times_scale(parameters[key], scale)
            selected = weights[bounded]
            constraints.append(selected >= bound if sign > 0 else selected <= bound)
        return CompiledConstraint(self.name, tuple(constraints), parameters)

    def parameter_values(self, data: ProblemData) -> dict[str, ParameterValue]:
        """The finite bounds, in asset order."""
        lower, upper = self._sides(data.n_assets)
        values: dict[str, ParameterValue] = {}
        for key, side in (("min_weights", lower), ("max_weights", upper)):
            finite = side[np.isfinite(side)]
            if finite.size:
                values[key] = finite
        return values

    def violation(self, weights: FloatArray, data: ProblemData) -> float:
        """Largest excursion outside the bounds."""
        lower, upper = self._sides(len(weights))
        return max(0.0, float(np.max(lower - weights)), float(np.max(weights - upper)))


@dataclass(frozen=True)
class GrossLeverage(Constraint):
    """Gross exposure cap for long-short portfolios: ``sum_i |w_i| <= max_leverage``.

    With the budget ``sum(w) == 1``, a leverage of 1.6 allows 130/30 portfolios.
    """

    name: ClassVar[str] = "gross_leverage"

    max_leverage: float

    def check_feasible(self, n_assets: int) -> None:
        """Reject a cap below 1: a fully invested portfolio has ``sum |w| >= 1``."""
        if not (math.isfinite(self.max_leverage) and self.max_leverage >= 1.0 - _SLACK):
            raise InvalidProblem(
                f"max_leverage={self.max_leverage} is below 1, but a fully invested "
                "portfolio has a gross exposure of at least 1; raise it to 1 (long-only) "
                "or more (e.g. 1.6 for 130/30).",
                constraints=[self.name, Budget.name],
            )

    def check_against(self, data: ProblemData, lower: FloatArray, upper: FloatArray) -> None:
        """Reject bounds that force more gross exposure than the cap."""
        forced = float(np.sum(np.maximum(0.0, np.maximum(lower, -upper))))
        if forced > self.max_leverage + _SLACK:
            raise InvalidProblem(
                f"the weight bounds force a gross exposure of at least {forced:.6g}, above "
                f"max_leverage={self.max_leverage}; raise it or loosen the bounds.",
                constraints=[self.name, "weight_bounds"],
            )

    def compile(
        self, weights: cp.Variable, scale: cp.Expression | None, context: CompileContext
    ) -> CompiledConstraint:
        """``norm1(w) <= max_leverage`` (times ``kappa`` when homogenised)."""
        cap = cp.Parameter(name="max_leverage", nonneg=True)
        constraint = cp.norm1(weights) <= times_scale(cap, scale)  # type: ignore[attr-defined]
        return CompiledConstraint(self.name, (constraint,), {"max_leverage": cap})

    def parameter_values(self, data: ProblemData) -> dict[str, ParameterValue]:
        """``max_leverage``."""
        return {"max_leverage": float(self.max_leverage)}

    def violation(self, weights: FloatArray, data: ProblemData) -> float:
        """Gross exposure above the cap."""
        return max(0.0, float(np.sum(np.abs(weights))) - self.max_leverage)


@dataclass(frozen=True)
class Turnover(Constraint):
    """Limit on trading away from the current weights: ``sum_i |w_i - w0_i| <= max_turnover``.

    ``w0`` is the request's ``current_weights`` (zeros when absent: building from cash
    then needs a turnover of at least 1). Turnover counts buys and sells, as a
    fraction of the portfolio's value.
    """

    name: ClassVar[str] = "turnover"

    max_turnover: float

    def check_feasible(self, n_assets: int) -> None:
        """Reject a negative or non-finite limit."""
        if not (math.isfinite(self.max_turnover) and self.max_turnover >= 0.0):
            raise InvalidProblem(
                f"max_turnover={self.max_turnover} must be a non-negative number.",
                constraints=[self.name],
            )

    def check_against(self, data: ProblemData, lower: FloatArray, upper: FloatArray) -> None:
        """Reject a limit below the trading that the budget or the bounds force."""
        holdings = data.holdings
        to_budget = abs(1.0 - float(np.sum(holdings)))
        to_bounds = float(np.sum(np.maximum(0.0, np.maximum(lower - holdings, holdings - upper))))
        needed = max(to_budget, to_bounds)
        if needed > self.max_turnover + _SLACK:
            reason = (
                f"the current weights add up to {float(np.sum(holdings)):.6g}, so reaching "
                "the budget of 1"
                if to_budget >= to_bounds
                else "moving the current weights inside the weight bounds"
            )
            raise InvalidProblem(
                f"max_turnover={self.max_turnover} is too small: {reason} needs a turnover "
                f"of at least {needed:.6g}. Raise max_turnover to at least that.",
                constraints=[self.name, Budget.name if to_budget >= to_bounds else "weight_bounds"],
            )

    def compile(
        self, weights: cp.Variable, scale: cp.Expression | None, context: CompileContext
    ) -> CompiledConstraint:
        """``norm1(w - w0) <= max_turnover`` (homogenised: ``norm1(y - w0 kappa) <= t kappa``)."""
        holdings = cp.Parameter(context.n_assets, name="current_weights")
        limit = cp.Parameter(name="max_turnover", nonneg=True)
        trades = weights - times_scale(holdings, scale)
        constraint = cp.norm1(trades) <= times_scale(limit, scale)  # type: ignore[attr-defined]
        return CompiledConstraint(
            self.name, (constraint,), {"current_weights": holdings, "max_turnover": limit}
        )

    def parameter_values(self, data: ProblemData) -> dict[str, ParameterValue]:
        """The current weights and the limit."""
        return {"current_weights": data.holdings, "max_turnover": float(self.max_turnover)}

    def violation(self, weights: FloatArray, data: ProblemData) -> float:
        """Turnover above the limit."""
        return max(0.0, float(np.sum(np.abs(weights - data.holdings))) - self.max_turnover)
