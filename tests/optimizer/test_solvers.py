"""Solver status handling: fallbacks, infeasible and unbounded programs, failures."""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np
import pytest
from cvxpy.reductions.solvers.solving_chain import SolvingChain

import optimizer._attempts as attempts_module
from optimizer import (
    LongOnly,
    MeanVariance,
    MinVariance,
    NumericalSolverError,
    PortfolioOptimizer,
    ProblemData,
    ProgramInfeasible,
    ProgramUnbounded,
    WeightBounds,
)
from optimizer._problem import canonical_constraints
from tests.optimizer._markets import Market


def test_solver_error_falls_back_to_the_next_solver(market: Market) -> None:
    # SCIPY solves only linear programs: cvxpy raises SolverError for this QP.
    optimizer = PortfolioOptimizer(solver="SCIPY", fallback_solvers=["CLARABEL"])
    result = optimizer.optimize(
        MinVariance(), [LongOnly()], market.expected_returns, market.covariance
    )
    assert result.solver == "CLARABEL"
    assert result.status == "optimal"


def test_inaccurate_status_falls_back_and_keeps_the_primary_compiled(
    monkeypatch: pytest.MonkeyPatch, market: Market
) -> None:
    optimizer = PortfolioOptimizer(solver="CLARABEL", fallback_solvers=["SCS"])
    objective, constraints = MeanVariance(2.0), [LongOnly(), WeightBounds(max_weight=0.5)]
    mu, sigma = market.expected_returns, market.covariance
    reference = optimizer.optimize(objective, constraints, mu, sigma)
    compiled, _ = optimizer.compile(objective, constraints, market.n_assets)
    primary = compiled.problem_for("CLARABEL")
    original_solve = primary.solve

    def inaccurate_solve(*args: Any, **kwargs: Any) -> Any:
        value = original_solve(*args, **kwargs)
        primary._status = cp.OPTIMAL_INACCURATE
        return value

    monkeypatch.setattr(primary, "solve", inaccurate_solve)
    fallback = optimizer.optimize(objective, constraints, mu, sigma)
    assert fallback.solver == "SCS"
    np.testing.assert_allclose(fallback.weights, reference.weights, atol=1e-5)

    monkeypatch.setattr(primary, "solve", original_solve)
    compilations: list[object] = []
    original_apply = SolvingChain.apply

    def counting_apply(self: SolvingChain, *args: Any, **kwargs: Any) -> Any:
        compilations.append(self)
        return original_apply(self, *args, **kwargs)

    monkeypatch.setattr(SolvingChain, "apply", counting_apply)
    again = optimizer.optimize(objective, constraints, mu, sigma)
    assert again.solver == "CLARABEL"
    assert compilations == [], "the fallback evicted the primary solver's compiled program"


@pytest.mark.parametrize("retry_succeeds", [True, False], ids=["retry_solves", "retry_fails"])
def test_clarabel_retries_with_iterative_refinement_before_the_fallback(
    monkeypatch: pytest.MonkeyPatch, market: Market, retry_succeeds: bool
) -> None:
    # The fast settings are made to fail (one iteration); the retry has enough or not.
    fast = {**attempts_module.SOLVER_OPTIONS["CLARABEL"], "max_iter": 1}
    retry = {**attempts_module.RETRY_OPTIONS["CLARABEL"], "max_iter": 200 if retry_succeeds else 1}
    monkeypatch.setitem(attempts_module.SOLVER_OPTIONS, "CLARABEL", fast)
    monkeypatch.setitem(attempts_module.RETRY_OPTIONS, "CLARABEL", retry)
    args = (MeanVariance(2.0), [LongOnly(), WeightBounds(max_weight=0.5)])
    mu, sigma = market.expected_returns, market.covariance
    reference = PortfolioOptimizer(solver="SCS", fallback_solvers=()).optimize(*args, mu, sigma)
    optimizer = PortfolioOptimizer(solver="CLARABEL", fallback_solvers=["SCS"])
    for _ in range(2):  # cold, then warm
        result = optimizer.optimize(*args, mu, sigma)
        assert result.solver == ("CLARABEL" if retry_succeeds else "SCS")
        np.testing.assert_allclose(result.weights, reference.weights, atol=1e-5)

    only_clarabel = PortfolioOptimizer(solver="CLARABEL", fallback_solvers=())
    if retry_succeeds:
        assert only_clarabel.optimize(*args, mu, sigma).solver == "CLARABEL"
    else:
        with pytest.raises(NumericalSolverError, match=r"CLARABEL \(retried with") as caught:
            only_clarabel.optimize(*args, mu, sigma)
        assert "iterative_refinement_enable=True" in caught.value.message


def test_scs_alone_reaches_the_feasibility_tolerance(market: Market) -> None:
    clarabel = PortfolioOptimizer()
    scs = PortfolioOptimizer(solver="SCS", fallback_solvers=())
    args = (MinVariance(), [LongOnly(), WeightBounds(max_weight=0.3)])
    expected = clarabel.optimize(*args, market.expected_returns, market.covariance)
    got = scs.optimize(*args, market.expected_returns, market.covariance)
    assert got.solver == "SCS"
    np.testing.assert_allclose(got.weights, expected.weights, atol=1e-5)


def test_all_solvers_failing_raises_numerical_solver_error(market: Market) -> None:
    optimizer = PortfolioOptimizer(solver="SCIPY", fallback_solvers=())
    with pytest.raises(NumericalSolverError, match="SCIPY") as caught:
        optimizer.optimize(MinVariance(), [LongOnly()], market.expected_returns, market.covariance)
    assert caught.value.constraints == ["budget", "long_only"]


def test_solver_proven_infeasibility_raises_program_infeasible(market: Market) -> None:
    # The pre-solve checks would reject these bounds; call the compiled problem directly
    # to exercise the solver-status path.
    optimizer = PortfolioOptimizer()
    constraints = canonical_constraints([LongOnly(), WeightBounds(max_weight=0.05)])
    compiled, _ = optimizer.compile(MinVariance(), constraints, market.n_assets)
    data = ProblemData.from_arrays(market.expected_returns, market.covariance)
    with pytest.raises(ProgramInfeasible, match="weight_bounds") as caught:
        compiled.solve(MinVariance(), constraints, data, ["CLARABEL"])
    assert caught.value.status == cp.INFEASIBLE
    # Only the constraints in conflict are named: long-only is not needed for it.
    assert caught.value.constraints == ["budget", "weight_bounds"]


def test_unbounded_objective_raises_program_unbounded(optimizer: PortfolioOptimizer) -> None:
    # Perfectly correlated assets with different returns and shorting allowed: the
    # long-short spread is riskless, so the utility grows without limit.
    covariance = np.array([[0.04, 0.04], [0.04, 0.04]])
    with pytest.raises(ProgramUnbounded, match="LongOnly or WeightBounds") as caught:
        optimizer.optimize(MeanVariance(1.0), [], np.array([0.05, 0.10]), covariance)
    assert caught.value.status == cp.UNBOUNDED


def test_uninstalled_solver_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="not installed"):
        PortfolioOptimizer(solver="NOT_A_SOLVER")
    with pytest.raises(ValueError, match="cache_size"):
        PortfolioOptimizer(cache_size=0)
