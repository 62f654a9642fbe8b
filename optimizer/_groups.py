"""Group (sector, country) bounds on the total weight of sets of assets."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import ClassVar

import cvxpy as cp
import numpy as np

from optimizer._constraints import Budget, CompiledConstraint, Constraint, times_scale
from optimizer._data import ProblemData
from optimizer._errors import InvalidProblem
from optimizer._terms import CompileContext
from optimizer._typing import FloatArray, ParameterValue

_SLACK = 1e-9
"""Rounding allowed in the pre-solve checks."""


@dataclass(frozen=True)
class AssetGroup:
    """A named set of assets (a sector, a country) with bounds on its total weight.

    Parameters
    ----------
    name : str
    assets : tuple of int
        Asset positions (in the input order) that belong to the group.
    min_weight, max_weight : float or None
        Bounds on the sum of the group's weights; ``None`` for none.
    """

    name: str
    assets: tuple[int, ...]
    min_weight: float | None = None
    max_weight: float | None = None


@dataclass(frozen=True)
class GroupBounds(Constraint):
    """Bounds on the total weight of groups of assets: ``min_g <= sum_{i in g} w_i <= max_g``.

    Parameters
    ----------
    groups : tuple of AssetGroup
        Groups may overlap; the pre-solve budget checks then apply to each group alone.
    """

    name: ClassVar[str] = "group_bounds"

    groups: tuple[AssetGroup, ...]

    @property
    def structure(self) -> tuple[Hashable, ...]:
        """The class and how many groups have a lower and an upper bound."""
        n_lower = sum(g.min_weight is not None for g in self.groups)
        n_upper = sum(g.max_weight is not None for g in self.groups)
        return (*super().structure, n_lower, n_upper)

    def _membership(self, n_assets: int, side: str) -> tuple[FloatArray, FloatArray]:
        rows = [g for g in self.groups if getattr(g, side) is not None]
        matrix = np.zeros((len(rows), n_assets))
        for row, group in enumerate(rows):
            matrix[row, list(group.assets)] = 1.0
        return matrix, np.array([float(getattr(g, side)) for g in rows])

    def check_feasible(self, n_assets: int) -> None:
        """Reject empty or out-of-range groups, repeated names and ``min > max``."""
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise InvalidProblem(f"group names repeat: {names}; give each group one entry.")
        for group in self.groups:
            if not group.assets or any(not 0 <= i < n_assets for i in group.assets):
                raise InvalidProblem(
                    f"group {group.name!r} must list asset positions from 0 to "
                    f"{n_assets - 1}; got {list(group.assets)}.",
                    constraints=[self.name],
                )
            for label, bound in (
                ("min_weight", group.min_weight),
                ("max_weight", group.max_weight),
            ):
                if bound is not None and not math.isfinite(bound):
                    raise InvalidProblem(
                        f"group {group.name!r} has {label}={bound}; pass a finite number.",
                        constraints=[self.name],
                    )
            low, high = group.min_weight, group.max_weight
            if low is not None and high is not None and low > high:
                raise InvalidProblem(
                    f"group {group.name!r} has min_weight={low} above max_weight={high}.",
                    constraints=[self.name],
                )

    def check_against(self, data: ProblemData, lower: FloatArray, upper: FloatArray) -> None:
        """Reject group bounds that the per-asset bounds or the budget make impossible."""
        involved = [self.name, "weight_bounds"]
        for group in self.groups:
            members = list(group.assets)
            floor, ceiling = float(np.sum(lower[members])), float(np.sum(upper[members]))
            if group.max_weight is not None and floor > group.max_weight + _SLACK:
                raise InvalidProblem(
                    f"group {group.name!r}: its assets' lower bounds add up to {floor:.6g}, "
                    f"above the group's max_weight={group.max_weight}; raise the group cap "
                    "or lower the assets' min_weight.",
                    constraints=involved,
                )
            if group.min_weight is not None and ceiling < group.min_weight - _SLACK:
                raise InvalidProblem(
                    f"group {group.name!r}: its assets' upper bounds add up to {ceiling:.6g}, "
                    f"below the group's min_weight={group.min_weight}; lower the group floor "
                    "or raise the assets' max_weight.",
                    constraints=involved,
                )
        self._check_budget(lower, upper)

    def _check_budget(self, lower: FloatArray, upper: FloatArray) -> None:
        """For disjoint groups without shorting: floors must fit in, and caps reach, 1."""
        members = [i for g in self.groups for i in g.assets]
        if len(members) != len(set(members)) or np.any(lower < 0.0):
            return  # overlapping groups or shorting: no simple necessary condition
        outside = np.ones(len(lower), dtype=bool)
        outside[members] = False
        floors = sum(
            max(g.min_weight or 0.0, float(np.sum(lower[list(g.assets)]))) for g in self.groups
        ) + float(np.sum(lower[outside]))
        if floors > 1.0 + _SLACK:
            raise InvalidProblem(
                f"the group minimums (with the other assets' lower bounds) add up to "
                f"{floors:.6g} > 1, so the portfolio cannot be fully invested; lower the "
                "groups' min_weight.",
                constraints=[self.name, Budget.name],
            )
        caps = sum(
            min(
                math.inf if g.max_weight is None else g.max_weight,
                float(np.sum(upper[list(g.assets)])),
            )
            for g in self.groups
        ) + float(np.sum(upper[outside]))
        if caps < 1.0 - _SLACK:
            raise InvalidProblem(
                f"the group caps (with the other assets' upper bounds) add up to {caps:.6g} "
                "< 1, so the portfolio cannot be fully invested; raise the groups' max_weight.",
                constraints=[self.name, Budget.name],
            )

    def compile(
        self, weights: cp.Variable, scale: cp.Expression | None, context: CompileContext
    ) -> CompiledConstraint:
        """``A_lo @ w >= lo`` and ``A_hi @ w <= hi``; membership and bounds are parameters."""
        n_lower, n_upper = self.structure[-2:]
        constraints: list[cp.Constraint] = []
        parameters: dict[str, cp.Parameter] = {}
        for side, rows, sign in (("min", n_lower, 1.0), ("max", n_upper, -1.0)):
            assert isinstance(rows, int)
            if rows == 0:
                continue
            membership = cp.Parameter((rows, context.n_assets), name=f"group_{side}_membership")
            bound = cp.Parameter(rows, name=f"group_{side}_weight")
            parameters[f"{side}_membership"], parameters[f"{side}_weight"] = membership, bound
            total = membership @ weights
            scaled = times_scale(bound, scale)
            constraints.append(total >= scaled if sign > 0 else total <= scaled)
        return CompiledConstraint(self.name, tuple(constraints), parameters)

    def parameter_values(self, data: ProblemData) -> dict[str, ParameterValue]:
        """Membership matrices and bounds of the groups with each side."""
        values: dict[str, ParameterValue] = {}
        for side in ("min", "max"):
            matrix, bounds = self._membership(data.n_assets, f"{side}_weight")
            if bounds.size:
                values[f"{side}_membership"], values[f"{side}_weight"] = matrix, bounds
        return values

    def violation(self, weights: FloatArray, data: ProblemData) -> float:
        """Largest group total outside its bounds."""
        worst = 0.0
        for group in self.groups:
            total = float(np.sum(weights[list(group.assets)]))
            if group.min_weight is not None:
                worst = max(worst, group.min_weight - total)
            if group.max_weight is not None:
                worst = max(worst, total - group.max_weight)
        return worst
