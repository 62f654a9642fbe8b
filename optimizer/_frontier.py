"""The efficient frontier: min variance, then min risk at rising target returns."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from optimizer._constraints import Constraint
from optimizer._data import ProblemData
from optimizer._errors import (
    InvalidProblem,
    OptimizerError,
    ProgramUnbounded,
    SolverTimeLimitExceeded,
)
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
    """See :meth:`PortfolioOptimizer.frontier`.

    The optimizer's ``time_limit_seconds`` bounds the whole frontier, not each point: no
    point starts once it has run out (each solve is bounded too, so a frontier ends
    within twice the limit), rather than ``n_points`` times the limit.
    """
    if not (isinstance(n_points, int) and n_points >= 2):
        raise InvalidProblem(f"n_points={n_points} must be an integer of at least 2.")
    started = time.perf_counter()
    limit = optimizer.time_limit_seconds
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
        if limit is not None and time.perf_counter() - started > limit:
            raise SolverTimeLimitExceeded(
                f"the frontier ran out of its {limit:g} s time limit after {len(points)} of "
                f"{n_points} points. Ask for fewer points or tickers, or raise the limit.",
                time_limit_seconds=limit,
                status=None,
                constraints=[c.name for c in constraints],
            )
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
