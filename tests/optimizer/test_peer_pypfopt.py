"""Peer check: PyPortfolioOpt's published results on its own test data set.

The expected (return, volatility, Sharpe) triples and the preprocessing come from
``../shared/peers/pypfopt/README.md`` (PyPortfolioOpt's ``tests/test_efficient_frontier.py``
and ``tests/test_hrp.py``): long-only, fully invested, risk-free rate 0.02.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optimizer import (
    EfficientReturn,
    EfficientRisk,
    HierarchicalRiskParity,
    LongOnly,
    MaxSharpe,
    MeanVariance,
    MinVariance,
    Objective,
    PortfolioOptimizer,
)

PEER_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "peers" / "pypfopt"
PRICES = PEER_DIR / "stock_prices.csv"
RISK_FREE_RATE = 0.02
PERFORMANCE_RTOL = 1e-4
"""Relative tolerance on (return, volatility, Sharpe); the published figures have six
significant digits, and the largest deviation measured is 2.3e-6 (HRP volatility)."""


@pytest.fixture(scope="module")
def daily_returns() -> pd.DataFrame:
    """Simple daily returns, empty before each listing."""
    if not PRICES.is_file():
        pytest.skip(f"PyPortfolioOpt's data set is absent: {PRICES} not found")
    prices = pd.read_csv(PRICES, parse_dates=True, index_col="date")
    return prices.pct_change(fill_method=None).dropna(how="all")


@pytest.fixture(scope="module")
def pypfopt_inputs(daily_returns: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Compounded annual expected returns and annualised pairwise sample covariance."""
    returns = daily_returns
    expected_returns = (1 + returns).prod() ** (252 / returns.count()) - 1
    covariance = returns.cov() * 252
    return expected_returns.to_numpy(), covariance.to_numpy()


@pytest.mark.parametrize(
    ("objective", "expected"),
    [
        pytest.param(MinVariance(), (0.150568, 0.159151, 0.820405), id="min_volatility"),
        pytest.param(MaxSharpe(RISK_FREE_RATE), (0.304777, 0.221656, 1.284771), id="max_sharpe"),
        pytest.param(EfficientRisk(0.19), (0.255242, 0.19, 1.238117), id="efficient_risk_0.19"),
        pytest.param(EfficientReturn(0.25), (0.25, 0.187233, 1.228418), id="efficient_return_0.25"),
        pytest.param(
            MeanVariance(risk_aversion=2.0),
            (0.367773, 0.292134, 1.190457),
            id="max_quadratic_utility",
        ),
    ],
)
def test_matches_pypfopt_published_performance(
    pypfopt_inputs: tuple[np.ndarray, np.ndarray],
    objective: Objective,
    expected: tuple[float, float, float],
) -> None:
    expected_returns, covariance = pypfopt_inputs
    optimizer = PortfolioOptimizer(solver="CLARABEL")
    result = optimizer.optimize(
        objective, [LongOnly()], expected_returns, covariance, risk_free_rate=RISK_FREE_RATE
    )
    assert result.solver == "CLARABEL"
    assert result.weights.sum() == pytest.approx(1.0, abs=1e-9)
    assert result.weights.min() >= 0.0
    assert result.sharpe is not None
    performance = [result.expected_return, result.volatility, result.sharpe]
    np.testing.assert_allclose(performance, list(expected), rtol=PERFORMANCE_RTOL)


def test_hrp_single_linkage_matches_pypfopt_published_performance(
    daily_returns: pd.DataFrame,
) -> None:
    # HRPOpt clusters on the pairwise correlation of the returns and reports the
    # performance with arithmetic mean returns and the sample covariance, annualised.
    expected_returns = daily_returns.mean().to_numpy() * 252
    covariance = daily_returns.cov().to_numpy() * 252
    objective = HierarchicalRiskParity("single", correlation=daily_returns.corr().to_numpy())
    result = PortfolioOptimizer().optimize(
        objective, [LongOnly()], expected_returns, covariance, risk_free_rate=RISK_FREE_RATE
    )
    assert result.solver == "HRP"
    assert result.weights.min() > 0.0
    assert result.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert result.sharpe is not None
    performance = [result.expected_return, result.volatility, result.sharpe]
    np.testing.assert_allclose(performance, [0.213534, 0.178442, 1.084579], rtol=PERFORMANCE_RTOL)
