"""A factor model solves the same problem as its dense covariance, with n*k numbers."""

from __future__ import annotations

import numpy as np
import pytest

import optimizer._terms as terms_module
from optimizer import (
    AssetGroup,
    EfficientRisk,
    FactorModel,
    GroupBounds,
    LongOnly,
    MaxDiversification,
    MaxSharpe,
    MaxVolatility,
    MeanVariance,
    MinVariance,
    Objective,
    PortfolioOptimizer,
    ProblemShape,
    ProgramInfeasible,
    RiskParity,
    TrackingError,
    Turnover,
    WeightBounds,
)

N_ASSETS, N_FACTORS = 40, 4


@pytest.fixture(scope="module")
def factor_market() -> tuple[np.ndarray, FactorModel]:
    rng = np.random.default_rng(404)
    loadings = rng.normal(scale=0.15, size=(N_ASSETS, N_FACTORS))
    factor_covariance = np.diag(rng.uniform(0.5, 1.5, N_FACTORS))
    specific = rng.uniform(0.01, 0.06, N_ASSETS)
    expected_returns = rng.uniform(0.02, 0.14, N_ASSETS)
    return expected_returns, FactorModel(loadings, factor_covariance, specific)


@pytest.mark.parametrize(
    "objective",
    [
        MinVariance(),
        MeanVariance(3.0),
        MaxSharpe(0.01),
        EfficientRisk(0.2),
        RiskParity(),
        MaxDiversification(),
    ],
    ids=lambda o: o.name,
)
def test_factor_form_matches_the_dense_covariance(
    shared_optimizer: PortfolioOptimizer,
    factor_market: tuple[np.ndarray, FactorModel],
    objective: Objective,
) -> None:
    expected_returns, model = factor_market
    holdings = np.full(N_ASSETS, 1 / N_ASSETS)
    constraints = [
        LongOnly(),
        WeightBounds(max_weight=0.1),
        GroupBounds((AssetGroup("first", tuple(range(10)), max_weight=0.2),)),
        Turnover(1.2),
        TrackingError(holdings, 0.08),
        MaxVolatility(0.3),
    ]
    kwargs = {"current_weights": holdings}
    factored = shared_optimizer.optimize(objective, constraints, expected_returns, model, **kwargs)
    dense = shared_optimizer.optimize(
        objective, constraints, expected_returns, model.covariance(), **kwargs
    )
    assert factored.volatility == pytest.approx(dense.volatility, rel=1e-6)
    assert factored.expected_return == pytest.approx(dense.expected_return, rel=1e-6)
    np.testing.assert_allclose(factored.weights, dense.weights, atol=2e-5)
    np.testing.assert_allclose(factored.risk_contributions.sum(), factored.volatility)


def test_factor_problems_have_no_n_by_n_parameter(
    optimizer: PortfolioOptimizer,
) -> None:
    shape = ProblemShape(N_ASSETS, n_factors=N_FACTORS, has_costs=True)
    compiled, _ = optimizer.compile(MeanVariance(1.0), [LongOnly()], shape)
    sizes = {p.name(): p.size for p in compiled.problem.parameters()}
    assert sizes["factor_exposure"] == N_ASSETS * N_FACTORS
    assert sizes["specific_volatility"] == N_ASSETS
    assert max(sizes.values()) < N_ASSETS * N_ASSETS
    assert compiled.problem.is_dpp()
    dense, _ = optimizer.compile(MeanVariance(1.0), [LongOnly()], N_ASSETS)
    assert dense.key != compiled.key


def test_a_new_factor_model_reuses_the_compiled_problem(
    optimizer: PortfolioOptimizer, factor_market: tuple[np.ndarray, FactorModel]
) -> None:
    expected_returns, model = factor_market
    first = optimizer.optimize(MaxSharpe(0.0), [LongOnly()], expected_returns, model)
    doubled = FactorModel(model.loadings, model.factor_covariance * 2, model.specific_variance)
    second = optimizer.optimize(MaxSharpe(0.0), [LongOnly()], expected_returns, doubled)
    assert not first.compiled_from_cache
    assert second.compiled_from_cache
    assert not np.allclose(first.weights, second.weights)


@pytest.mark.parametrize(
    "objective", [MinVariance(), MeanVariance(3.0), MaxSharpe(0.01)], ids=lambda o: o.name
)
def test_factor_exposures_summed_in_blocks_solve_the_same_problem(
    monkeypatch: pytest.MonkeyPatch,
    factor_market: tuple[np.ndarray, FactorModel],
    objective: Objective,
) -> None:
    """Above the block size ``G' w`` is a sum of per-block variables: same answers."""
    expected_returns, model = factor_market
    holdings = np.full(N_ASSETS, 1 / N_ASSETS)
    constraints = [
        LongOnly(),
        WeightBounds(max_weight=0.1),
        TrackingError(holdings, 0.08),  # the risk vector a second time: the same blocks
        MaxVolatility(0.3),
    ]
    whole = PortfolioOptimizer().optimize(objective, constraints, expected_returns, model)
    monkeypatch.setattr(terms_module, "FACTOR_BLOCK_SIZE", 16)  # 40 assets: 3 blocks
    blocked_optimizer = PortfolioOptimizer()
    blocked = blocked_optimizer.optimize(objective, constraints, expected_returns, model)
    np.testing.assert_allclose(blocked.weights, whole.weights, atol=2e-5)
    assert blocked.volatility == pytest.approx(whole.volatility, rel=1e-6)

    shape = ProblemShape(N_ASSETS, n_factors=N_FACTORS)
    compiled, _ = blocked_optimizer.compile(objective, constraints, shape)
    names = {v.name() for v in compiled.problem.variables()}
    assert {"factor_exposure_0", "factor_exposure_16", "factor_exposure_32"} <= names
    assert len(compiled.problem.variables()) == len(names), "a block was built twice"


def test_blocked_factor_exposures_keep_the_infeasibility_diagnosis(
    monkeypatch: pytest.MonkeyPatch, factor_market: tuple[np.ndarray, FactorModel]
) -> None:
    expected_returns, model = factor_market
    monkeypatch.setattr(terms_module, "FACTOR_BLOCK_SIZE", 16)
    with pytest.raises(ProgramInfeasible) as raised:
        PortfolioOptimizer().optimize(
            MinVariance(),
            [LongOnly(), WeightBounds(max_weight=0.5), MaxVolatility(0.001)],
            expected_returns,
            model,
        )
    assert "max_volatility" in raised.value.constraints
    assert "weight_bounds" not in raised.value.constraints
