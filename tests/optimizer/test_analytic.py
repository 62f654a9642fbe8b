"""Weights against closed-form solutions on well-conditioned markets."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer import LongOnly, MaxSharpe, MeanVariance, MinVariance, PortfolioOptimizer
from tests.optimizer._markets import Market, constant_correlation_market, random_market

WEIGHT_TOLERANCE = 1e-6

VOLATILITY = np.array([0.15, 0.20, 0.25, 0.18, 0.22])
TARGET_WEIGHTS = np.array([0.30, 0.15, 0.10, 0.25, 0.20])
RISK_FREE_RATE = 0.02


@pytest.fixture(scope="module")
def five_assets() -> Market:
    """Constant correlation 0.3; expected returns put the tangency at TARGET_WEIGHTS."""
    market = constant_correlation_market(VOLATILITY, 0.3, np.zeros(len(VOLATILITY)))
    # Tangency weights are proportional to Sigma^-1 (mu - rf), so this mu makes them
    # proportional to TARGET_WEIGHTS.
    expected_returns = RISK_FREE_RATE + 2.0 * market.covariance @ TARGET_WEIGHTS
    return Market(expected_returns, market.covariance)


def _inverse_times(covariance: np.ndarray, vector: np.ndarray) -> np.ndarray:
    return np.linalg.solve(covariance, vector)


@pytest.mark.parametrize("constraints", [[], [LongOnly()]], ids=["budget_only", "long_only"])
def test_min_variance_matches_closed_form(
    shared_optimizer: PortfolioOptimizer, five_assets: Market, constraints: list[LongOnly]
) -> None:
    ones = np.ones(len(VOLATILITY))
    inverse_ones = _inverse_times(five_assets.covariance, ones)
    expected = inverse_ones / inverse_ones.sum()
    assert np.all(expected > 0), "the closed form must be long-only for this comparison"
    result = shared_optimizer.optimize(
        MinVariance(), constraints, five_assets.expected_returns, five_assets.covariance
    )
    np.testing.assert_allclose(result.weights, expected, atol=WEIGHT_TOLERANCE)


@pytest.mark.parametrize("constraints", [[], [LongOnly()]], ids=["budget_only", "long_only"])
def test_max_sharpe_matches_tangency_portfolio(
    shared_optimizer: PortfolioOptimizer, five_assets: Market, constraints: list[LongOnly]
) -> None:
    excess = five_assets.expected_returns - RISK_FREE_RATE
    tangency = _inverse_times(five_assets.covariance, excess)
    expected = tangency / tangency.sum()
    np.testing.assert_allclose(expected, TARGET_WEIGHTS, atol=1e-12)
    result = shared_optimizer.optimize(
        MaxSharpe(RISK_FREE_RATE),
        constraints,
        five_assets.expected_returns,
        five_assets.covariance,
    )
    np.testing.assert_allclose(result.weights, expected, atol=WEIGHT_TOLERANCE)
    assert result.risk_free_rate == RISK_FREE_RATE


@pytest.mark.parametrize("risk_aversion", [1.0, 4.0, 25.0])
def test_mean_variance_matches_closed_form(
    shared_optimizer: PortfolioOptimizer, five_assets: Market, risk_aversion: float
) -> None:
    # max mu'w - (delta/2) w'Sw s.t. 1'w = 1  =>  w = S^-1 (mu - gamma 1) / delta with
    # gamma = (1'S^-1 mu - delta) / (1'S^-1 1).
    mu, sigma = five_assets.expected_returns, five_assets.covariance
    ones = np.ones(len(mu))
    inverse_mu, inverse_ones = _inverse_times(sigma, mu), _inverse_times(sigma, ones)
    gamma = (ones @ inverse_mu - risk_aversion) / (ones @ inverse_ones)
    expected = _inverse_times(sigma, mu - gamma * ones) / risk_aversion
    result = shared_optimizer.optimize(MeanVariance(risk_aversion), [], mu, sigma)
    np.testing.assert_allclose(result.weights, expected, atol=WEIGHT_TOLERANCE)


def test_max_sharpe_beats_other_feasible_portfolios(shared_optimizer: PortfolioOptimizer) -> None:
    market = random_market(10, seed=7)
    mu, sigma = market.expected_returns, market.covariance
    best = shared_optimizer.optimize(MaxSharpe(0.01), [LongOnly()], mu, sigma)
    assert best.sharpe is not None
    rng = np.random.default_rng(0)
    candidates = [
        shared_optimizer.optimize(MinVariance(), [LongOnly()], mu, sigma).weights,
        shared_optimizer.optimize(MeanVariance(3.0), [LongOnly()], mu, sigma).weights,
        *rng.dirichlet(np.ones(10), size=200),
    ]
    for weights in candidates:
        sharpe = (mu @ weights - 0.01) / np.sqrt(weights @ sigma @ weights)
        assert sharpe <= best.sharpe + 1e-8
