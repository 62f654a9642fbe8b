"""Problems compile once per structure and are re-solved from the cache (DPP)."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cvxpy as cp
import numpy as np
import pytest
from cvxpy.reductions.solvers.solving_chain import SolvingChain

from optimizer import (
    AssetBounds,
    AssetGroup,
    Budget,
    CompiledProblem,
    Constraint,
    EfficientReturn,
    EfficientRisk,
    FactorModel,
    GrossLeverage,
    GroupBounds,
    LongOnly,
    MaxDiversification,
    MaxSharpe,
    MaxVolatility,
    MeanVariance,
    MinCVaR,
    MinVariance,
    Objective,
    PCAFactorModel,
    PortfolioOptimizer,
    ProblemShape,
    RiskBudgeting,
    RiskParity,
    TrackingError,
    Turnover,
    WeightBounds,
)
from optimizer._problem import canonical_constraints
from tests.optimizer._markets import Market, random_market


@pytest.fixture
def compilations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each time cvxpy runs its reduction chain (the slow, compiling path).

    On a cached DPP problem cvxpy skips ``SolvingChain.apply`` and only re-applies
    its stored parametric program to the new parameter values.
    """
    calls: list[str] = []
    original = SolvingChain.apply

    def counting_apply(self: SolvingChain, problem: cp.Problem, *args: Any, **kwargs: Any) -> Any:
        calls.append(type(problem.objective).__name__)
        return original(self, problem, *args, **kwargs)

    monkeypatch.setattr(SolvingChain, "apply", counting_apply)
    return calls


@pytest.mark.parametrize("objective", [MinVariance(), MeanVariance(2.0), MaxSharpe(0.01)])
def test_second_solve_with_new_data_is_a_cache_hit_without_recompiling(
    optimizer: PortfolioOptimizer, compilations: list[str], objective: Objective
) -> None:
    constraints = [LongOnly(), WeightBounds(max_weight=0.4)]
    first_market, second_market = random_market(6, seed=1), random_market(6, seed=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = optimizer.optimize(
            objective, constraints, first_market.expected_returns, first_market.covariance
        )
        assert len(compilations) == 1
        second = optimizer.optimize(
            objective, constraints, second_market.expected_returns, second_market.covariance
        )
    assert caught == [], [str(w.message) for w in caught]
    assert len(compilations) == 1, "the second solve re-ran cvxpy's reduction chain"
    assert not first.compiled_from_cache
    assert second.compiled_from_cache
    info = optimizer.cache_info()
    assert (info.hits, info.misses, info.size) == (1, 1, 1)
    assert not np.allclose(first.weights, second.weights), "new values were not used"

    compiled, from_cache = optimizer.compile(objective, constraints, 6)
    assert from_cache
    assert compiled.problem.is_dpp()


def test_new_risk_aversion_and_bound_values_reuse_the_compiled_problem(
    optimizer: PortfolioOptimizer, compilations: list[str], market: Market
) -> None:
    mu, sigma = market.expected_returns, market.covariance
    results = [
        optimizer.optimize(
            MeanVariance(risk_aversion), [LongOnly(), WeightBounds(0.0, cap)], mu, sigma
        )
        for risk_aversion, cap in [(1.0, 0.5), (8.0, 0.5), (8.0, 0.2)]
    ]
    assert len(compilations) == 1
    assert [r.compiled_from_cache for r in results] == [False, True, True]
    # The new values took effect: more risk aversion lowers volatility, a lower cap binds.
    assert results[1].volatility < results[0].volatility
    assert results[2].weights.max() <= 0.2 + 1e-9 < results[1].weights.max()


def test_new_risk_free_rate_reuses_the_compiled_problem(
    optimizer: PortfolioOptimizer, compilations: list[str], market: Market
) -> None:
    mu, sigma = market.expected_returns, market.covariance
    low = optimizer.optimize(MaxSharpe(0.0), [LongOnly()], mu, sigma)
    high = optimizer.optimize(MaxSharpe(0.015), [LongOnly()], mu, sigma)
    assert len(compilations) == 1
    assert high.compiled_from_cache
    assert high.risk_free_rate == 0.015
    # A higher risk-free rate moves the tangency portfolio up the frontier.
    assert high.expected_return > low.expected_return


def test_structure_not_values_nor_order_is_the_cache_key(
    optimizer: PortfolioOptimizer, market: Market
) -> None:
    mu, sigma = market.expected_returns, market.covariance
    optimizer.optimize(MinVariance(), [LongOnly(), WeightBounds(max_weight=0.5)], mu, sigma)
    reordered = optimizer.optimize(
        MinVariance(), [WeightBounds(max_weight=0.3), LongOnly()], mu, sigma
    )
    assert reordered.compiled_from_cache
    explicit_budget = optimizer.optimize(
        MinVariance(), [Budget(), LongOnly(), WeightBounds(max_weight=0.5)], mu, sigma
    )
    assert explicit_budget.compiled_from_cache, "Budget is always applied, once"
    # Adding a lower bound, another objective or another size are new structures.
    optimizer.optimize(MinVariance(), [LongOnly(), WeightBounds(0.01, 0.5)], mu, sigma)
    optimizer.optimize(MeanVariance(1.0), [LongOnly(), WeightBounds(max_weight=0.5)], mu, sigma)
    optimizer.optimize(
        MinVariance(), [LongOnly(), WeightBounds(max_weight=0.5)], mu[:4], sigma[:4, :4]
    )
    info = optimizer.cache_info()
    assert (info.hits, info.misses, info.size) == (2, 4, 4)


def test_long_only_implied_by_a_non_negative_lower_bound_is_left_out(
    optimizer: PortfolioOptimizer, market: Market
) -> None:
    mu, sigma = market.expected_returns, market.covariance
    implied = canonical_constraints([LongOnly(), WeightBounds(0.0, 0.4)])
    assert [c.name for c in implied] == ["budget", "weight_bounds"]
    for bounds in (WeightBounds(-0.1, 0.4), WeightBounds(max_weight=0.4)):
        kept = canonical_constraints([LongOnly(), bounds])
        assert "long_only" in [c.name for c in kept]
    # The same problem either way: the redundant row only cost solver time.
    with_long_only = optimizer.optimize(
        MinVariance(), [LongOnly(), WeightBounds(0.02, 0.4)], mu, sigma
    )
    without = optimizer.optimize(MinVariance(), [WeightBounds(0.02, 0.4)], mu, sigma)
    assert without.compiled_from_cache
    np.testing.assert_allclose(with_long_only.weights, without.weights, atol=1e-12)
    assert with_long_only.weights.min() >= 0.02 - 1e-12


def test_least_recently_used_problem_is_evicted(market: Market) -> None:
    optimizer = PortfolioOptimizer(cache_size=2)
    mu, sigma = market.expected_returns, market.covariance
    for objective in [MinVariance(), MeanVariance(1.0), MaxSharpe()]:
        optimizer.optimize(objective, [LongOnly()], mu, sigma)
    assert optimizer.cache_info().size == 2
    assert not optimizer.optimize(MinVariance(), [LongOnly()], mu, sigma).compiled_from_cache
    assert optimizer.optimize(MaxSharpe(), [LongOnly()], mu, sigma).compiled_from_cache


@pytest.mark.parametrize("objective", [MinVariance(), MeanVariance(1.0), MaxSharpe()])
@pytest.mark.parametrize(
    ("constraints", "bound_parameters"),
    [
        ([], set()),
        ([LongOnly()], set()),
        ([LongOnly(), WeightBounds(max_weight=0.5)], {"max_weight"}),
        ([WeightBounds(-0.1, 0.5)], {"min_weight", "max_weight"}),
    ],
)
def test_every_compiled_structure_is_dpp_with_values_as_parameters(
    optimizer: PortfolioOptimizer,
    objective: Objective,
    constraints: list[Constraint],
    bound_parameters: set[str],
) -> None:
    compiled, _ = optimizer.compile(objective, constraints, 5)
    assert isinstance(compiled, CompiledProblem)
    assert compiled.problem.is_dpp()
    names = {parameter.name() for parameter in compiled.problem.parameters()}
    expected = {"risk_factor"} | bound_parameters
    if not isinstance(objective, MinVariance):
        expected.add("expected_return")
    if isinstance(objective, MaxSharpe):
        expected.add("risk_free_rate")
    assert names == expected


def test_concurrent_solves_match_sequential_ones(market: Market) -> None:
    # The service calls the optimizer from a threadpool: solves sharing one compiled
    # problem must not see each other's parameter values.
    optimizer = PortfolioOptimizer()
    markets = [random_market(6, seed=seed) for seed in range(12)]
    objective, constraints = MeanVariance(2.0), [LongOnly(), WeightBounds(max_weight=0.5)]

    def solve(m: Market) -> np.ndarray:
        return optimizer.optimize(objective, constraints, m.expected_returns, m.covariance).weights

    expected = [solve(m) for m in markets]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(solve, markets * 3))
    # Concurrent solves run on copies of the compiled problem (instances_per_problem):
    # each copy's program orders its variables its own way, so answers agree to the
    # solver's tolerance (~1e-8), not bit for bit.
    for index, weights in enumerate(concurrent):
        np.testing.assert_allclose(weights, expected[index % len(markets)], atol=1e-6)
    assert optimizer.cache_info().misses == 1


@pytest.mark.parametrize(
    "objective",
    [
        MinVariance(),
        MeanVariance(2.0),
        MaxSharpe(0.01),
        EfficientReturn(0.06),
        EfficientRisk(0.3),
        RiskParity(),
        RiskBudgeting((1.0, 2.0, 1.0, 2.0, 1.0, 2.0)),
        MaxDiversification(),
        MinCVaR(0.9),
    ],
    ids=lambda objective: objective.name,
)
@pytest.mark.parametrize("factor_form", [False, True], ids=["dense", "factor"])
def test_every_objective_with_every_constraint_resolves_without_recompiling(
    optimizer: PortfolioOptimizer,
    compilations: list[str],
    objective: Objective,
    factor_form: bool,
) -> None:
    constraints: list[Constraint] = [
        LongOnly(),
        AssetBounds(max_weights=np.full(6, 0.45)),
        GroupBounds((AssetGroup("pair", (0, 1), 0.05, 0.6),)),
        GrossLeverage(1.0),
        Turnover(1.8),
        TrackingError(np.full(6, 1 / 6), 0.25),
        MaxVolatility(0.5),
    ]
    rng = np.random.default_rng(0)
    results = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for seed in (1, 2):
            market = random_market(6, seed=seed)
            risk: np.ndarray | FactorModel = market.covariance
            if factor_form:
                risk = (
                    PCAFactorModel(2)
                    .fit(rng.multivariate_normal(np.zeros(6), market.covariance, size=200))
                    .factor_model_
                )
            results.append(
                optimizer.optimize(
                    objective,
                    constraints,
                    market.expected_returns,
                    risk,
                    returns=rng.normal(scale=0.01, size=(120, 6)),
                    current_weights=np.full(6, 1 / 6),
                    transaction_costs=0.001,
                )
            )
    assert caught == [], [str(w.message) for w in caught]
    assert len(compilations) == 1, "the second solve re-ran cvxpy's reduction chain"
    assert [r.compiled_from_cache for r in results] == [False, True]
    assert not np.allclose(results[0].weights, results[1].weights), "new values were not used"
    shape = ProblemShape(6, n_factors=2 if factor_form else None, has_costs=True, n_scenarios=120)
    compiled, from_cache = optimizer.compile(objective, constraints, shape)
    assert from_cache
    assert compiled.problem.is_dpp()
