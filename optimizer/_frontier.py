"""The efficient frontier: min variance, then min risk at rising target returns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from optimizer._constraints import Constraint
from optimizer._data import ProblemData
from optimizer._errors import InvalidProblem, OptimizerError, ProgramUnbounded
from optimizer._objectives import MaxReturn, MinVariance
from optimizer._result import PortfolioResult
from optimizer._targets import EfficientReturn

if TYPE_CHECKING:
    from optimizer._optimizer import PortfolioOptimizer

_TOP_MARGIN = 1e-7
"""The last target sits this far (relative to the frontier's return range) below the
highest attainable return, where the feasible set shrinks to a point and interior-point
solvers lose accuracy."""


def efficient_frontier(
    optimizer: PortfolioOptimizer,
    constraints: Sequence[Constraint],
    data: ProblemData,
    *,
    n_points: int,
    risk_free_rate: float,
) -> list[PortfolioResult]:
    """See :meth:`PortfolioOptimizer.frontier`."""
    if not (isinstance(n_points, int) and n_points >= 2):
        raise InvalidProblem(f"n_points={n_points} must be an integer of at least 2.")
    lowest = optimizer.solve(MinVariance(), constraints, data, risk_free_rate=risk_free_rate)
    try:
        highest = optimizer.solve(MaxReturn(), constraints, data, risk_free_rate=risk_free_rate)
    except ProgramUnbounded as exc:
        raise ProgramUnbounded(
            "the efficient frontier has no top: the constraints let the expected return "
            "grow without limit. Add long_only, max_weight or a gross leverage limit.",
            status=exc.status,
            constraints=exc.constraints,
        ) from exc
    bottom = lowest.expected_return - lowest.transaction_cost
    top = highest.expected_return - highest.transaction_cost
    span = max(top - bottom, 0.0)
    targets = np.linspace(bottom, top - _TOP_MARGIN * span, n_points)
    points = [lowest]
    for target in targets[1:]:
        try:
            point = optimizer.solve(
                EfficientReturn(float(target)), constraints, data, risk_free_rate=risk_free_rate
            )
        except OptimizerError:
            if target != targets[-1]:
                raise
            point = highest  # the very top can be numerically out of reach
        points.append(point)
    return points
