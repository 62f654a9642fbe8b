"""The warm Clarabel path answers exactly as ``problem.solve`` would, without cvxpy's work."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import cvxpy as cp
import numpy as np
import pytest

import optimizer._attempts as attempts_module
import optimizer._direct as direct_module
from optimizer import (
    EfficientRisk,
    FactorModel,
    LongOnly,
    MaxSharpe,
    MeanVariance,
    MinCVaR,
    MinVariance,
    Objective,
    PortfolioOptimizer,
    PortfolioResult,
    RiskParity,
    SolverTimeLimitExceeded,
    WeightBounds,
)
from optimizer._direct import WARM_CLARABEL
from tests.optimizer._markets import random_market

N_ASSETS, N_FACTORS = 30, 3


def factor_model(seed: int) -> FactorModel:
    rng = np.random.default_rng(seed)
    return FactorModel(
        rng.normal(scale=0.2, size=(N_ASSETS, N_FACTORS)),
        np.diag(rng.uniform(0.5, 1.5, N_FACTORS)),
        rng.uniform(0.01, 0.05, N_ASSETS),
    )


def requests(objective: Objective) -> list[dict[str, Any]]:
    """Three requests of one structure: new returns, then also a new risk model
    (or new scenarios)."""
    rng = np.random.default_rng(7)
    holdings = np.full(N_ASSETS, 1 / N_ASSETS)
    made = []
    for seed in (1, 1, 2):
        request: dict[str, Any] = {
            "expected_returns": rng.uniform(0.03, 0.15, N_ASSETS),
            "covariance": factor_model(seed),
            "current_weights": holdings,
            "transaction_costs": 0.002,
        }
        if objective.uses_scenarios:
            scenarios = np.random.default_rng(seed).normal(0.001, 0.02, size=(120, N_ASSETS))
            request["returns"] = scenarios
        made.append(request)
    return made


def solve_all(
    optimizer: PortfolioOptimizer, objective: Objective, constraints: list[Any]
) -> list[PortfolioResult]:
    return [optimizer.optimize(objective, constraints, **r) for r in requests(objective)]


@pytest.fixture
def cvxpy_solves(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each solve that went through cvxpy's own ``Problem._solve``."""
    calls: list[str] = []
    original = cp.Problem._solve

    def counting_solve(self: cp.Problem, *args: Any, **kwargs: Any) -> Any:
        calls.append(str(kwargs.get("solver", args[0] if args else None)))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cp.Problem, "_solve", counting_solve)
    return calls


OBJECTIVES = [
    MinVariance(),
    MeanVariance(3.0),
    MaxSharpe(0.01),
    EfficientRisk(0.2),  # a second-order cone
    RiskParity(),  # exponential cones
    MinCVaR(0.9),  # a linear program
]


@pytest.mark.parametrize("objective", OBJECTIVES, ids=lambda o: o.name)
def test_warm_solves_match_cvxpy_solves(
    monkeypatch: pytest.MonkeyPatch, cvxpy_solves: list[str], objective: Objective
) -> None:
    constraints = [LongOnly(), WeightBounds(max_weight=0.2)]
    warm = solve_all(PortfolioOptimizer(), objective, constraints)
    assert cvxpy_solves == ["CLARABEL"], "only the first solve should compile through cvxpy"

    monkeypatch.setattr(attempts_module, "WARM_METHODS", {})
    reference = solve_all(PortfolioOptimizer(), objective, constraints)
    for got, expected in zip(warm, reference, strict=True):
        assert (got.solver, got.status) == ("CLARABEL", "optimal")
        assert got.iterations
        np.testing.assert_allclose(got.weights, expected.weights, atol=1e-5)
        assert got.volatility == pytest.approx(expected.volatility, rel=1e-6)
        assert got.expected_return == pytest.approx(expected.expected_return, rel=1e-6)
    # The new risk model of the last request was used: its answer moved.
    assert not np.allclose(warm[1].weights, warm[2].weights, atol=1e-4)


def test_warm_path_sets_what_problem_solve_sets() -> None:
    weights = cp.Variable(4)
    expected_return = cp.Parameter(4)
    exposure = cp.Parameter((4, 2))
    problem = cp.Problem(
        cp.Maximize(expected_return @ weights - cp.sum_squares(exposure.T @ weights)),
        [cp.sum(weights) == 1, weights >= 0],
    )
    twin = cp.Problem(problem.objective, problem.constraints)
    rng = np.random.default_rng(3)
    for _ in range(3):
        expected_return.value = rng.uniform(0.0, 0.2, 4)
        exposure.value = rng.normal(size=(4, 2))
        twin_value = twin.solve(solver="CLARABEL")
        twin_weights = weights.value.copy()
        twin_dual = problem.constraints[0].dual_value
        value = problem.solve(method=WARM_CLARABEL, solver="CLARABEL")
        # Two solver instances: equal to Clarabel's default tolerances (1e-8).
        assert value == pytest.approx(twin_value, rel=1e-6)
        assert problem.value == value
        assert problem.status == cp.OPTIMAL
        assert problem.solver_stats.solver_name == "CLARABEL"
        assert problem.solver_stats.num_iters > 0
        np.testing.assert_allclose(weights.value, twin_weights, atol=1e-6)
        assert problem.constraints[0].dual_value == pytest.approx(twin_dual, rel=1e-5)


def test_a_recompiled_problem_is_solved_warm_again(cvxpy_solves: list[str]) -> None:
    """Solving with another solver replaces cvxpy's program; the warm path notices."""
    weights = cp.Variable(3)
    target = cp.Parameter(3)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(weights - target)), [cp.sum(weights) == 1])
    answers: list[np.ndarray] = []
    solves: list[Callable[[], Any]] = [
        lambda: problem.solve(method=WARM_CLARABEL, solver="CLARABEL"),
        lambda: problem.solve(method=WARM_CLARABEL, solver="CLARABEL"),
        lambda: problem.solve(solver="SCS", eps_abs=1e-9, eps_rel=1e-9),
        lambda: problem.solve(method=WARM_CLARABEL, solver="CLARABEL"),
    ]
    for step, solve in enumerate(solves):
        target.value = np.array([0.5, 0.3, 0.1]) * (step + 1)
        solve()
        answers.append(weights.value.copy())
        # Projection onto the budget plane: target + (1 - sum(target)) / 3.
        expected = target.value + (1 - target.value.sum()) / 3
        np.testing.assert_allclose(answers[-1], expected, atol=1e-6)
    assert cvxpy_solves == ["CLARABEL", "SCS", "CLARABEL"]


def test_a_new_time_limit_reaches_the_warm_solver() -> None:
    market = random_market(12, seed=5)
    optimizer = PortfolioOptimizer(fallback_solvers=())
    args = (MeanVariance(2.0), [LongOnly()], market.expected_returns, market.covariance)
    first = optimizer.optimize(*args)
    optimizer.optimize(*args)  # warm
    optimizer.time_limit_seconds = 1e-9
    with pytest.raises(SolverTimeLimitExceeded):
        optimizer.optimize(*args)
    optimizer.time_limit_seconds = None
    again = optimizer.optimize(*args)
    np.testing.assert_allclose(again.weights, first.weights, atol=1e-8)


def test_the_warm_state_goes_with_its_problem() -> None:
    weights = cp.Variable(3)
    target = cp.Parameter(3, value=np.array([0.2, 0.3, 0.5]))
    problem = cp.Problem(cp.Minimize(cp.sum_squares(weights - target)), [cp.sum(weights) == 1])
    problem.solve(method=WARM_CLARABEL, solver="CLARABEL")
    problem.solve(method=WARM_CLARABEL, solver="CLARABEL")
    assert problem in direct_module._states
    held = weakref.ref(problem)
    del problem
    gc.collect()
    assert held() is None, "the warm state kept its problem alive"
