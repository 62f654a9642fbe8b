"""Portfolio constraints: value objects that compile to cvxpy constraints.

A constraint object only stores its values. ``compile`` builds the cvxpy constraints
with ``cp.Parameter`` s once per compiled problem; ``update`` copies a (possibly new)
object's values into those parameters before each solve. Each constraint compiles
for the plain weight variable ``w`` (``scale=None``) and for the homogenised max-Sharpe
variable ``y = kappa * w`` (``scale=kappa``), where right-hand sides are multiplied
by ``kappa``.

Before solving, ``check_feasible`` rejects values that are impossible on their own,
:func:`check_jointly_feasible` those impossible together, and ``check_against`` those
impossible given the request's data (current weights, per-asset bounds); after
solving, ``violation`` measures the solution against the request's values.

More constraints live in ``_portfolio_constraints`` (per-asset bounds, leverage,
groups, turnover) and ``_risk_constraints`` (tracking error, maximum volatility).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import cvxpy as cp
import numpy as np

from optimizer._data import ProblemData
from optimizer._errors import ASSETS, InvalidProblem
from optimizer._terms import CompileContext
from optimizer._typing import FloatArray, ParameterValue

_BOUND_SLACK = 1e-12
"""Rounding allowed when checking that bounds can add up to the budget."""


@dataclass(frozen=True)
class CompiledConstraint:
    """The cvxpy side of one constraint: its constraints and named parameters."""

    name: str
    constraints: tuple[cp.Constraint, ...]
    parameters: Mapping[str, cp.Parameter] = field(default_factory=dict)


def times_scale(value: cp.Expression | float, scale: cp.Expression | None) -> cp.Expression | float:
    """``value`` for the plain problem, ``value * kappa`` for the homogenised one."""
    return value if scale is None else value * scale


class Constraint(ABC):
    """Base class of portfolio constraints."""

    name: ClassVar[str]
    """Short name used in error messages and ``OptimizerError.constraints``."""

    @property
    def structure(self) -> tuple[Hashable, ...]:
        """What changes the compiled problem (the class, which parts are present).

        Values never enter the structure: they are parameter values.
        """
        return (type(self).__module__, type(self).__qualname__)

    def check_feasible(self, n_assets: int) -> None:
        """Raise ``InvalidProblem`` if the values are impossible for ``n_assets``.

        The default accepts any values; subclasses with values override it.
        """
        return

    def check_against(self, data: ProblemData, lower: FloatArray, upper: FloatArray) -> None:
        """Raise ``InvalidProblem`` if the values are impossible given ``data``.

        ``lower`` and ``upper`` are the per-asset bounds implied by all the
        constraints together. The default accepts any values.
        """
        return

    def weight_bounds(self, n_assets: int) -> tuple[FloatArray, FloatArray]:
        """Per-asset lower and upper bounds implied by this constraint alone."""
        return np.full(n_assets, -np.inf), np.full(n_assets, np.inf)

    def implied_by(self, others: Sequence[Constraint]) -> bool:
        """Whether ``others`` enforce this constraint whatever the data.

        Such a constraint is left out of the compiled problem: a redundant row per
        asset costs the solver time (~15% of a 500-asset solve) and changes nothing.
        The default: never.
        """
        return False

    @abstractmethod
    def compile(
        self, weights: cp.Variable, scale: cp.Expression | None, context: CompileContext
    ) -> CompiledConstraint:
        """Build the cvxpy constraints on ``weights`` (homogenised by ``scale`` if given).

        ``context`` holds the problem's shared terms (its risk term, for the risk
        constraints).
        """

    def parameter_values(self, data: ProblemData) -> dict[str, ParameterValue]:
        """Values for the parameters created by ``compile``, keyed by the same names."""
        return {}

    def update(self, compiled: CompiledConstraint, data: ProblemData) -> None:
        """Copy this object's values (and what they imply for ``data``) into ``compiled``."""
        for key, value in self.parameter_values(data).items():
            compiled.parameters[key].value = value

    @abstractmethod
    def violation(self, weights: FloatArray, data: ProblemData) -> float:
        """How far ``weights`` are from satisfying the constraint (0 when satisfied)."""


@dataclass(frozen=True)
class Budget(Constraint):
    """Fully invested: ``sum(w) == 1``. Always applied by the optimizer."""

    name: ClassVar[str] = "budget"

    def compile(
        self, weights: cp.Variable, scale: cp.Expression | None, context: CompileContext
    ) -> CompiledConstraint:
        """``sum(w) == 1``, or ``sum(y) == kappa`` when homogenised."""
        return CompiledConstraint(self.name, (weights.sum() == times_scale(1.0, scale),))

    def violation(self, weights: FloatArray, data: ProblemData) -> float:
        """``|sum(w) - 1|``."""
        return abs(float(np.sum(weights)) - 1.0)


@dataclass(frozen=True)
class LongOnly(Constraint):
    """No short positions: ``w >= 0``."""

    name: ClassVar[str] = "long_only"

    def weight_bounds(self, n_assets: int) -> tuple[FloatArray, FloatArray]:
        """Lower bound 0, no upper bound."""
        return np.zeros(n_assets), np.full(n_assets, np.inf)

    def implied_by(self, others: Sequence[Constraint]) -> bool:
        """Whether a :class:`WeightBounds` with ``min_weight >= 0`` is among ``others``."""
        return any(
            isinstance(other, WeightBounds)
            and other.min_weight is not None
            and other.min_weight >= 0.0
            for other in others
        )

    def compile(
        self, weights: cp.Variable, scale: cp.Expression | None, context: CompileContext
    ) -> CompiledConstraint:
        """``w >= 0`` (``y >= 0`` when homogenised, since ``kappa >= 0``)."""
        return CompiledConstraint(self.name, (weights >= 0,))

    def violation(self, weights: FloatArray, data: ProblemData) -> float:
        """Largest negative weight, as a positive number."""
        return max(0.0, -float(np.min(weights)))


@dataclass(frozen=True)
class WeightBounds(Constraint):
    """The same bounds on every asset: ``min_weight <= w_i <= max_weight``.

    Parameters
    ----------
    min_weight : float or None, optional
        Lower bound on each weight (negative allows shorting); ``None`` for none.
    max_weight : float or None, optional
        Upper bound on each weight; ``None`` for none.

    Notes
    -----
    The bounds are parameters: new values re-use the compiled problem. Only whether
    each bound is present is structural.
    """

    name: ClassVar[str] = "weight_bounds"

    min_weight: float | None = None
    max_weight: float | None = None

    @property
    def structure(self) -> tuple[Hashable, ...]:
        """The class plus which of the two bounds are present."""
        return (*super().structure, self.min_weight is not None, self.max_weight is not None)

    def check_feasible(self, n_assets: int) -> None:
        """Reject NaN bounds, ``min > max``, ``max * n < 1`` and ``min * n > 1``."""
        low, high = self.min_weight, self.max_weight
        for label, bound in (("min_weight", low), ("max_weight", high)):
            if bound is not None and not math.isfinite(bound):
                raise InvalidProblem(
                    f"{label}={bound} is not a finite number; pass a number or leave it unset.",
                    constraints=[self.name],
                )
        if low is not None and high is not None and low > high:
            raise InvalidProblem(
                f"min_weight={low} exceeds max_weight={high}; make min_weight <= max_weight.",
                constraints=[self.name],
            )
        if high is not None and high * n_assets < 1.0 - _BOUND_SLACK:
            raise InvalidProblem(
                f"max_weight={high} with {n_assets} assets cannot be fully invested: the "
                f"weights add up to at most {n_assets} x {high} = {n_assets * high:.6g} < 1. "
                f"Raise max_weight to at least 1/{n_assets} = {1.0 / n_assets:.6g}, "
                "or add assets.",
                constraints=[self.name, Budget.name],
            )
        if low is not None and low * n_assets > 1.0 + _BOUND_SLACK:
            raise InvalidProblem(
                f"min_weight={low} with {n_assets} assets cannot be fully invested: the "
                f"weights add up to at least {n_assets} x {low} = {n_assets * low:.6g} > 1. "
                f"Lower min_weight to at most 1/{n_assets} = {1.0 / n_assets:.6g}, "
                "or remove assets.",
                constraints=[self.name, Budget.name],
            )

    def weight_bounds(self, n_assets: int) -> tuple[FloatArray, FloatArray]:
        """The bounds, with infinities for missing ones."""
        low = -np.inf if self.min_weight is None else self.min_weight
        high = np.inf if self.max_weight is None else self.max_weight
        return np.full(n_assets, low), np.full(n_assets, high)

    def compile(
        self, weights: cp.Variable, scale: cp.Expression | None, context: CompileContext
    ) -> CompiledConstraint:
        """``min <= w <= max``, or ``min * kappa <= y <= max * kappa`` when homogenised."""
        constraints: list[cp.Constraint] = []
        parameters: dict[str, cp.Parameter] = {}
        if self.min_weight is not None:
            parameters["min_weight"] = cp.Parameter(name="min_weight")
            constraints.append(weights >= times_scale(parameters["min_weight"], scale))
        if self.max_weight is not None:
            parameters["max_weight"] = cp.Parameter(name="max_weight")
            constraints.append(weights <= times_scale(parameters["max_weight"], scale))
        return CompiledConstraint(self.name, tuple(constraints), parameters)

    def parameter_values(self, data: ProblemData) -> dict[str, ParameterValue]:
        """``min_weight`` and ``max_weight`` when present."""
        values: dict[str, ParameterValue] = {}
        if self.min_weight is not None:
            values["min_weight"] = float(self.min_weight)
        if self.max_weight is not None:
            values["max_weight"] = float(self.max_weight)
        return values

    def violation(self, weights: FloatArray, data: ProblemData) -> float:
        """Largest excursion below ``min_weight`` or above ``max_weight``."""
        low, high = self.weight_bounds(len(weights))
        return max(0.0, float(np.max(low - weights)), float(np.max(weights - high)))


def implied_weight_bounds(
    constraints: Sequence[Constraint], n_assets: int
) -> tuple[FloatArray, FloatArray]:
    """Intersection of the per-asset bounds implied by ``constraints``."""
    lower, upper = np.full(n_assets, -np.inf), np.full(n_assets, np.inf)
    for constraint in constraints:
        low, high = constraint.weight_bounds(n_assets)
        lower, upper = np.maximum(lower, low), np.minimum(upper, high)
    return lower, upper


def check_jointly_feasible(constraints: Sequence[Constraint], n_assets: int) -> None:
    """Raise ``InvalidProblem`` if the constraints' bounds cannot hold together.

    Checks each constraint alone (``check_feasible``), then that the intersected
    bounds are non-empty and can add up to the budget of 1.
    """
    for constraint in constraints:
        constraint.check_feasible(n_assets)
    lower, upper = implied_weight_bounds(constraints, n_assets)
    bounding = [
        c.name
        for c in constraints
        if np.any(np.isfinite(c.weight_bounds(n_assets)[0]))
        or np.any(np.isfinite(c.weight_bounds(n_assets)[1]))
    ]
    if np.any(lower > upper):
        asset = int(np.argmax(lower - upper))
        raise InvalidProblem(
            f"the constraints {bounding} together leave no allowed weight for {ASSETS} "
            f"(lower bound {float(lower[asset]):.6g} above upper bound "
            f"{float(upper[asset]):.6g}); relax one of them.",
            constraints=bounding,
            asset_positions=[asset],
        )
    if float(np.sum(upper)) < 1.0 - _BOUND_SLACK:
        raise InvalidProblem(
            f"the constraints {bounding} cap the total weight at {float(np.sum(upper)):.6g} < 1, "
            "so the portfolio cannot be fully invested; raise the upper bounds.",
            constraints=[*bounding, Budget.name],
        )
    if float(np.sum(lower)) > 1.0 + _BOUND_SLACK:
        raise InvalidProblem(
            f"the constraints {bounding} force a total weight of at least "
            f"{float(np.sum(lower)):.6g} > 1, so the budget cannot hold; lower the lower "
            "bounds.",
            constraints=[*bounding, Budget.name],
        )


def check_against_data(constraints: Sequence[Constraint], data: ProblemData) -> None:
    """Raise ``InvalidProblem`` if a constraint is impossible given the request's data.

    Call after :func:`check_jointly_feasible`; each constraint sees the intersected
    per-asset bounds.
    """
    lower, upper = implied_weight_bounds(constraints, data.n_assets)
    for constraint in constraints:
        constraint.check_against(data, lower, upper)


def clean_weights(weights: FloatArray, lower: FloatArray, upper: FloatArray) -> FloatArray:
    """Clip solver rounding into ``[lower, upper]`` and restore ``sum(w) == 1``.

    Call only on a solution already checked to satisfy the constraints within
    tolerance: the adjustments are then of that tolerance's size. The budget residual
    left by clipping is spread over the assets in proportion to their room to move,
    so the bounds still hold exactly.
    """
    cleaned = np.clip(weights, lower, upper)
    residual = 1.0 - float(np.sum(cleaned))
    room = (upper - cleaned) if residual > 0 else (cleaned - lower)
    room = np.minimum(room, 1.0)  # finite stand-in for an unbounded side
    total_room = float(np.sum(room))
    if residual != 0.0 and total_room > 0.0:
        cleaned = cleaned + residual * room / total_room
    return np.clip(cleaned, lower, upper)
