"""The efficient frontier: from min variance to the top return, each point efficient."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer import (
    InvalidProblem,
    LongOnly,
    MaxSharpe,
    MinVariance,
    PortfolioOptimizer,
    ProgramUnbounded,
    WeightBounds,
)
from tests.optimizer._markets import Market, random_market


@pytest.fixture(scope="module")
def market10() -> Market:
    return random_market(10, seed=2024)


def test_frontier_runs_from_min_variance_to_the_top_return(
    optimizer: PortfolioOptimizer, market10: Market
) -> None:
    constraints = [LongOnly(), WeightBounds(max_weight=0.3)]
    mu, sigma = market10.expected_returns, market10.covariance
    points = optimizer.frontier(constraints, mu, sigma, n_points=12)
    assert len(points) == 12
    returns = np.array([p.expected_return for p in points])
    volatilities = np.array([p.volatility for p in points])
    assert np.all(np.diff(returns) > 0)
    assert np.all(np.diff(volatilities) > -1e-9), "higher return costs more risk"
    minimum = optimizer.optimize(MinVariance(), constraints, mu, sigma)
    assert points[0].volatility == pytest.approx(minimum.volatility, rel=1e-9)
    # The top: the 3 best assets at the cap, the rest in the 4th best.
    order = np.argsort(-mu)
    top = 0.3 * mu[order[:3]].sum() + 0.1 * mu[order[3]]
    assert returns[-1] == pytest.approx(top, rel=1e-6)
    for point in points:
        assert point.weights.sum() == pytest.approx(1.0, abs=1e-9)
        assert point.weights.max() <= 0.3 + 1e-9
    # Every compiled problem was re-used after the first efficient-return point.
    assert optimizer.cache_info().misses == 3


def test_no_frontier_point_is_beaten_by_the_tangency_portfolio(
    optimizer: PortfolioOptimizer, market10: Market
) -> None:
    # The max-Sharpe portfolio lies on the frontier: no point at its return has less risk.
    mu, sigma = market10.expected_returns, market10.covariance
    tangency = optimizer.optimize(MaxSharpe(0.0), [LongOnly()], mu, sigma)
    points = optimizer.frontier([LongOnly()], mu, sigma, n_points=40)
    sharpes = [p.sharpe for p in points if p.sharpe is not None]
    assert max(sharpes) <= tangency.sharpe + 1e-9  # type: ignore[operator]
    assert max(sharpes) == pytest.approx(tangency.sharpe, rel=2e-3)


def test_frontier_errors(optimizer: PortfolioOptimizer, market10: Market) -> None:
    mu, sigma = market10.expected_returns, market10.covariance
    with pytest.raises(InvalidProblem, match="n_points=1 must be an integer of at least 2"):
        optimizer.frontier([LongOnly()], mu, sigma, n_points=1)
    with pytest.raises(ProgramUnbounded, match="the efficient frontier has no top"):
        optimizer.frontier([], mu, sigma, n_points=5)
