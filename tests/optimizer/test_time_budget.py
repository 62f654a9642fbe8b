"""The solve's time limit bounds all of its work: waiting for the problem and diagnosis."""

from __future__ import annotations

import threading
import time

import cvxpy as cp
import pytest

from optimizer import (
    LongOnly,
    MaxVolatility,
    MinVariance,
    PortfolioOptimizer,
    ProblemData,
    ProgramInfeasible,
    SolverTimeLimitExceeded,
    WeightBounds,
)
from optimizer._diagnose import conflicting_constraints
from optimizer._problem import canonical_constraints
from tests.optimizer._markets import random_market


def test_waiting_for_another_solve_of_the_problem_spends_the_time_limit() -> None:
    """A queue of same-shape requests cannot outlast the limit waiting for a free copy."""
    optimizer = PortfolioOptimizer(time_limit_seconds=0.3, instances_per_problem=1)
    market = random_market(8, seed=1)
    data = ProblemData.from_arrays(market.expected_returns, market.covariance)
    constraints = [LongOnly()]
    optimizer.solve(MinVariance(), constraints, data)  # compiled, and it works
    pool, from_cache = optimizer._pool(MinVariance(), canonical_constraints(constraints), 8)
    assert from_cache
    holding = threading.Event()
    release = threading.Event()

    def another_long_solve() -> None:  # holds the only copy as a slow solve would
        borrowed = pool.borrow(None)
        assert borrowed is not None
        holding.set()
        release.wait(10)
        pool.give_back(borrowed)

    thread = threading.Thread(target=another_long_solve)
    thread.start()
    holding.wait(5)
    started = time.perf_counter()
    try:
        with pytest.raises(SolverTimeLimitExceeded, match="waited for other solves"):
            optimizer.solve(MinVariance(), constraints, data)
        waited = time.perf_counter() - started
    finally:
        release.set()
        thread.join()
    assert waited < 5  # it gave up with the limit, not when the other solve ended
    assert optimizer.solve(MinVariance(), constraints, data).weights.sum() == pytest.approx(1)


def test_the_diagnosis_of_an_infeasible_problem_stops_at_the_deadline() -> None:
    weights = cp.Variable(3)
    groups = [
        ("budget", [cp.sum(weights) == 1]),
        ("long_only", [weights >= 0]),
        ("max_weight", [weights <= 0.2]),  # 3 x 0.2 < 1: infeasible with the budget
    ]
    assert conflicting_constraints(groups, "CLARABEL") == ["budget", "max_weight"]
    past = time.perf_counter() - 1.0
    assert conflicting_constraints(groups, "CLARABEL", deadline=past) is None


def test_an_infeasible_request_within_its_limit_still_names_the_conflict() -> None:
    optimizer = PortfolioOptimizer(time_limit_seconds=30)
    market = random_market(5, seed=2)
    data = ProblemData.from_arrays(market.expected_returns, market.covariance)
    with pytest.raises(ProgramInfeasible) as raised:
        optimizer.solve(
            MinVariance(),
            [LongOnly(), WeightBounds(max_weight=0.5), MaxVolatility(0.01)],
            data,
        )
    assert "max_volatility" in raised.value.constraints


def test_the_time_limit_bounds_a_whole_frontier_not_each_point() -> None:
    market = random_market(40, seed=3)
    unlimited = PortfolioOptimizer()
    started = time.perf_counter()
    unlimited.frontier([LongOnly()], market.expected_returns, market.covariance, n_points=30)
    thirty_points = time.perf_counter() - started
    # A limit a quarter of what 30 points took: each point (about a thirtieth, once its
    # problem is compiled) fits in it many times over; the whole frontier does not.
    limited = PortfolioOptimizer()
    limited.frontier([LongOnly()], market.expected_returns, market.covariance, n_points=3)
    limited.time_limit_seconds = thirty_points / 4
    with pytest.raises(SolverTimeLimitExceeded, match=r"after \d+ of 30 points"):
        limited.frontier([LongOnly()], market.expected_returns, market.covariance, n_points=30)
