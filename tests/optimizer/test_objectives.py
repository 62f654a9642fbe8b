"""The objectives beyond mean-variance, against closed forms and their defining property."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer import (
    EfficientReturn,
    EfficientRisk,
    HierarchicalRiskParity,
    LongOnly,
    MaxDiversification,
    MaxSharpe,
    MeanVariance,
    MinCVaR,
    MinVariance,
    PortfolioOptimizer,
    ProblemShape,
    RiskBudgeting,
    RiskParity,
    Turnover,
    WeightBounds,
    conditional_value_at_risk,
)
from tests.optimizer._markets import Market, constant_correlation_market, random_market

WEIGHT_TOLERANCE = 1e-6
RISK_SHARE_TOLERANCE = 1e-5
"""Risk contributions as shares of the volatility, and risk-parity weights: at its
default tolerances Clarabel pins the log-barrier optimum to a few 1e-6."""

VOLATILITY = np.array([0.12, 0.18, 0.25, 0.30, 0.22, 0.15])


@pytest.fixture(scope="module")
def six_assets() -> Market:
    return random_market(6, seed=11)


@pytest.fixture(scope="module")
def scenarios(six_assets: Market) -> np.ndarray:
    """Daily returns drawn from the market's (annual) moments."""
    rng = np.random.default_rng(5)
    return rng.multivariate_normal(
        six_assets.expected_returns / 252, six_assets.covariance / 252, size=1000
    )


def _frontier_matrix(market: Market) -> np.ndarray:
    """``A = [mu 1]' Sigma^-1 [mu 1]`` of the budget-only frontier."""
    basis = np.column_stack([market.expected_returns, np.ones(market.n_assets)])
    return basis.T @ np.linalg.solve(market.covariance, basis)


def test_efficient_return_matches_the_closed_form(
    shared_optimizer: PortfolioOptimizer, six_assets: Market
) -> None:
    # min w'Sw s.t. mu'w = r, 1'w = 1  =>  w = S^-1 [mu 1] A^-1 [r 1]'.
    target = float(np.quantile(six_assets.expected_returns, 0.8))
    basis = np.column_stack([six_assets.expected_returns, np.ones(6)])
    multipliers = np.linalg.solve(_frontier_matrix(six_assets), [target, 1.0])
    expected = np.linalg.solve(six_assets.covariance, basis @ multipliers)
    result = shared_optimizer.optimize(
        EfficientReturn(target), [], six_assets.expected_returns, six_assets.covariance
    )
    np.testing.assert_allclose(result.weights, expected, atol=WEIGHT_TOLERANCE)
    assert result.expected_return == pytest.approx(target, abs=1e-8)


def test_efficient_risk_reaches_the_target_on_the_upper_frontier(
    shared_optimizer: PortfolioOptimizer, six_assets: Market
) -> None:
    # On the budget-only frontier, variance(r) = [r 1] A^-1 [r 1]'; solve for the upper r.
    inverse = np.linalg.inv(_frontier_matrix(six_assets))
    minimum = shared_optimizer.optimize(
        MinVariance(), [], six_assets.expected_returns, six_assets.covariance
    )
    target = 1.5 * minimum.volatility
    a, b, c = inverse[0, 0], 2 * inverse[0, 1], inverse[1, 1] - target**2
    expected_return = (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)
    result = shared_optimizer.optimize(
        EfficientRisk(target), [], six_assets.expected_returns, six_assets.covariance
    )
    assert result.volatility == pytest.approx(target, rel=1e-7)
    assert result.expected_return == pytest.approx(expected_return, rel=1e-7)


def test_risk_parity_is_inverse_volatility_under_constant_correlation(
    shared_optimizer: PortfolioOptimizer,
) -> None:
    # Equal pairwise correlations make the equal-risk-contribution portfolio ~ 1/sigma.
    market = constant_correlation_market(VOLATILITY, 0.4, np.full(6, 0.05))
    result = shared_optimizer.optimize(RiskParity(), [], market.expected_returns, market.covariance)
    expected = (1 / VOLATILITY) / np.sum(1 / VOLATILITY)
    np.testing.assert_allclose(result.weights, expected, atol=RISK_SHARE_TOLERANCE)
    assert result.objective == "risk_parity"


@pytest.mark.parametrize(
    "budgets", [None, (1.0, 2.0, 3.0, 4.0, 5.0, 6.0), (0.5, 0.1, 0.1, 0.1, 0.1, 0.1)]
)
def test_risk_contributions_follow_the_budgets(
    shared_optimizer: PortfolioOptimizer, six_assets: Market, budgets: tuple[float, ...] | None
) -> None:
    result = shared_optimizer.optimize(
        RiskBudgeting(budgets), [LongOnly()], six_assets.expected_returns, six_assets.covariance
    )
    shares = result.risk_contributions / result.volatility
    expected = np.full(6, 1 / 6) if budgets is None else np.array(budgets) / sum(budgets)
    np.testing.assert_allclose(shares, expected, atol=RISK_SHARE_TOLERANCE)
    assert np.all(result.weights > 0)


def test_risk_budgeting_under_a_binding_cap_still_holds_the_cap(
    shared_optimizer: PortfolioOptimizer, six_assets: Market
) -> None:
    free = shared_optimizer.optimize(
        RiskParity(), [], six_assets.expected_returns, six_assets.covariance
    )
    cap = float(free.weights.max()) - 0.03
    capped = shared_optimizer.optimize(
        RiskParity(),
        [WeightBounds(max_weight=cap)],
        six_assets.expected_returns,
        six_assets.covariance,
    )
    assert capped.weights.max() <= cap + 1e-9
    assert capped.weights.sum() == pytest.approx(1.0, abs=1e-12)


def test_max_diversification_matches_the_closed_form(
    shared_optimizer: PortfolioOptimizer, six_assets: Market
) -> None:
    # Without bounds the most diversified portfolio is proportional to Sigma^-1 sigma.
    sigma = np.sqrt(np.diag(six_assets.covariance))
    direction = np.linalg.solve(six_assets.covariance, sigma)
    expected = direction / direction.sum()
    result = shared_optimizer.optimize(
        MaxDiversification(), [], six_assets.expected_returns, six_assets.covariance
    )
    np.testing.assert_allclose(result.weights, expected, atol=WEIGHT_TOLERANCE)
    ratio = sigma @ expected / np.sqrt(expected @ six_assets.covariance @ expected)
    assert result.diversification_ratio == pytest.approx(ratio, rel=1e-9)


def test_min_cvar_reports_the_program_optimum_and_beats_other_portfolios(
    shared_optimizer: PortfolioOptimizer, six_assets: Market, scenarios: np.ndarray
) -> None:
    mu, sigma = six_assets.expected_returns, six_assets.covariance
    result = shared_optimizer.optimize(MinCVaR(0.95), [LongOnly()], mu, sigma, returns=scenarios)
    assert result.cvar_alpha == 0.95
    assert result.cvar == pytest.approx(
        conditional_value_at_risk(scenarios @ result.weights, 0.95), rel=1e-12
    )
    rng = np.random.default_rng(1)
    others = [
        shared_optimizer.optimize(MinVariance(), [LongOnly()], mu, sigma).weights,
        *rng.dirichlet(np.ones(6), size=200),
    ]
    for weights in others:
        assert result.cvar <= conditional_value_at_risk(scenarios @ weights, 0.95) + 1e-9
    # The optimum of the linear program equals the reported value.
    shape = ProblemShape(6, n_scenarios=scenarios.shape[0])
    compiled, from_cache = shared_optimizer.compile(MinCVaR(0.95), [LongOnly()], shape)
    assert from_cache
    assert compiled.problem.value == pytest.approx(result.cvar, rel=1e-6)


def test_cvar_is_the_mean_of_the_worst_tail() -> None:
    returns = np.arange(-10.0, 10.0)  # 20 equally likely outcomes
    assert conditional_value_at_risk(returns, 0.9) == pytest.approx(9.5)  # worst 2: -10, -9
    # A tail of 2.5 outcomes takes half of the third worst.
    assert conditional_value_at_risk(returns, 0.875) == pytest.approx((10 + 9 + 0.5 * 8) / 2.5)


def test_hrp_of_two_assets_is_the_inverse_variance_portfolio(
    shared_optimizer: PortfolioOptimizer,
) -> None:
    covariance = np.array([[0.04, 0.006], [0.006, 0.09]])
    result = shared_optimizer.optimize(
        HierarchicalRiskParity(), [LongOnly()], np.array([0.05, 0.08]), covariance
    )
    inverse_variance = np.array([1 / 0.04, 1 / 0.09])
    np.testing.assert_allclose(result.weights, inverse_variance / inverse_variance.sum())
    assert (result.solver, result.status, result.iterations) == ("HRP", "optimal", None)


def test_hrp_splits_between_clusters_before_within_them(
    shared_optimizer: PortfolioOptimizer,
) -> None:
    # Two tight clusters of equal volatility: the first split is between the clusters.
    correlation = np.full((4, 4), 0.0)
    correlation[:2, :2] = correlation[2:, 2:] = 0.9
    np.fill_diagonal(correlation, 1.0)
    volatility = np.array([0.2, 0.2, 0.1, 0.1])
    covariance = correlation * np.outer(volatility, volatility)
    result = shared_optimizer.optimize(
        HierarchicalRiskParity("single"), [], np.zeros(4), covariance
    )
    np.testing.assert_allclose(result.weights[0], result.weights[1])
    np.testing.assert_allclose(result.weights[2], result.weights[3])
    # Cluster variances are 0.038 and 0.0095: the split is 0.2 / 0.8.
    assert result.weights[:2].sum() == pytest.approx(0.2)


@pytest.mark.parametrize(
    "objective",
    [MeanVariance(2.0), MaxSharpe(0.0), EfficientRisk(0.3)],
    ids=lambda o: o.name,
)
def test_transaction_costs_are_charged_and_keep_the_portfolio_near_its_holdings(
    optimizer: PortfolioOptimizer, six_assets: Market, objective: object
) -> None:
    mu, sigma = six_assets.expected_returns, six_assets.covariance
    holdings = np.full(6, 1 / 6)
    free = optimizer.optimize(objective, [LongOnly()], mu, sigma, current_weights=holdings)  # type: ignore[arg-type]
    costly = optimizer.optimize(
        objective,  # type: ignore[arg-type]
        [LongOnly()],
        mu,
        sigma,
        current_weights=holdings,
        transaction_costs=0.02,
    )
    assert costly.turnover < free.turnover
    assert free.turnover == pytest.approx(np.abs(free.weights - holdings).sum())
    assert free.transaction_cost == 0.0
    assert costly.transaction_cost == pytest.approx(0.02 * costly.turnover, rel=1e-9)


def test_efficient_return_meets_its_target_net_of_costs(
    shared_optimizer: PortfolioOptimizer, six_assets: Market
) -> None:
    target = float(np.quantile(six_assets.expected_returns, 0.7))
    result = shared_optimizer.optimize(
        EfficientReturn(target),
        [LongOnly()],
        six_assets.expected_returns,
        six_assets.covariance,
        transaction_costs=np.linspace(0.001, 0.006, 6),
    )
    assert result.transaction_cost > 0.0
    assert result.expected_return - result.transaction_cost == pytest.approx(target, abs=1e-8)


def test_a_zero_turnover_limit_keeps_the_current_weights(
    shared_optimizer: PortfolioOptimizer, six_assets: Market
) -> None:
    holdings = np.array([0.3, 0.1, 0.2, 0.1, 0.2, 0.1])
    result = shared_optimizer.optimize(
        MeanVariance(2.0),
        [LongOnly(), Turnover(0.0)],
        six_assets.expected_returns,
        six_assets.covariance,
        current_weights=holdings,
    )
    np.testing.assert_allclose(result.weights, holdings, atol=1e-7)
    assert result.turnover == pytest.approx(0.0, abs=1e-6)
