"""Same-shape solves run at once on copies of the compiled problem, and never mix."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from optimizer import (
    LongOnly,
    MeanVariance,
    MinVariance,
    PortfolioOptimizer,
    ProblemData,
    WeightBounds,
)
from optimizer._pool import ProblemPool
from optimizer._problem import CompiledProblem, canonical_constraints
from tests.optimizer._markets import random_market

N_ASSETS = 12
CONSTRAINTS = [LongOnly(), WeightBounds(max_weight=0.3)]


def _pool(optimizer: PortfolioOptimizer) -> ProblemPool:
    pool, _ = optimizer._pool(MinVariance(), canonical_constraints(CONSTRAINTS), N_ASSETS)
    return pool


def test_a_solve_goes_ahead_while_another_holds_a_copy() -> None:
    """With one copy per structure, this solve would wait behind the held one."""
    optimizer = PortfolioOptimizer(instances_per_problem=2, time_limit_seconds=5)
    market = random_market(N_ASSETS, seed=3)
    data = ProblemData.from_arrays(market.expected_returns, market.covariance)
    optimizer.solve(MinVariance(), CONSTRAINTS, data)
    pool = _pool(optimizer)
    held = pool.borrow(None)  # a long solve in another thread, as far as the pool knows
    assert held is not None
    try:
        started = time.perf_counter()
        result = optimizer.solve(MinVariance(), CONSTRAINTS, data)
        assert time.perf_counter() - started < 5
        assert result.weights.sum() == pytest.approx(1)
        assert pool.instances == 2
    finally:
        pool.give_back(held)


def test_copies_are_capped_and_a_full_pool_waits_until_the_deadline() -> None:
    built: list[CompiledProblem] = []

    def factory() -> CompiledProblem:
        built.append(CompiledProblem(N_ASSETS, MinVariance(), canonical_constraints(CONSTRAINTS)))
        return built[-1]

    pool = ProblemPool(factory, max_instances=2)
    first, second = pool.borrow(None), pool.borrow(None)
    assert first is not None
    assert second is not None
    assert first is not second
    assert pool.borrow(time.perf_counter() + 0.05) is None  # capped: no third copy
    assert len(built) == 2
    pool.give_back(first)
    assert pool.borrow(time.perf_counter() + 0.05) is first  # an idle copy is reused


def test_a_failed_build_frees_its_place() -> None:
    calls = 0

    def factory() -> CompiledProblem:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise MemoryError("no room for a second copy")
        return CompiledProblem(N_ASSETS, MinVariance(), canonical_constraints(CONSTRAINTS))

    pool = ProblemPool(factory, max_instances=2)
    first = pool.borrow(None)
    with pytest.raises(MemoryError):
        pool.borrow(None)
    assert pool.instances == 1
    second = pool.borrow(None)  # the place the failed build reserved is free again
    assert second is not None
    assert second is not first


def test_concurrent_solves_of_one_shape_never_mix_their_inputs() -> None:
    """Each thread's answer equals the one it gets alone: parameters are per copy."""
    optimizer = PortfolioOptimizer(instances_per_problem=3)
    requests = []
    for seed in range(12):
        market = random_market(N_ASSETS, seed=seed)
        data = ProblemData.from_arrays(market.expected_returns, market.covariance)
        requests.append((MeanVariance(risk_aversion=1.0 + seed), data))
    alone = [optimizer.solve(o, CONSTRAINTS, d).weights for o, d in requests]
    barrier = threading.Barrier(6)

    def solve(index: int) -> np.ndarray:
        if index < 6:
            barrier.wait(10)  # the first six start together
        objective, data = requests[index]
        return optimizer.solve(objective, CONSTRAINTS, data).weights

    with ThreadPoolExecutor(max_workers=6) as executor:
        together = list(executor.map(solve, range(len(requests))))
    for expected, got in zip(alone, together, strict=True):
        # Copies agree to the solver's accuracy: without iterative refinement weights
        # differ by up to ~2e-6 on this flat objective; mixed inputs differ by ~1e-2.
        np.testing.assert_allclose(got, expected, atol=1e-5)
    pool, _ = optimizer._pool(MeanVariance(1.0), canonical_constraints(CONSTRAINTS), N_ASSETS)
    assert 1 <= pool.instances <= 3


def test_instances_per_problem_must_be_positive() -> None:
    with pytest.raises(ValueError, match="instances_per_problem"):
        PortfolioOptimizer(instances_per_problem=0)
