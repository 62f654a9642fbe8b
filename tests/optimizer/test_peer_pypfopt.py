"""Peer check: PyPortfolioOpt's published results on its own test data set.

The expected (return, volatility, Sharpe) triples and the preprocessing come from
``../shared/peers/pypfopt/README.md`` (PyPortfolioOpt's ``tests/test_efficient_frontier.py``):
long-only, fully invested, risk-free rate 0.02.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optimizer import LongOnly, MaxSharpe, MeanVariance, MinVariance, Objective, PortfolioOptimizer

PEER_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "peers" / "pypfopt"
PRICES = PEER_DIR / "stock_prices.csv"
RISK_FREE_RATE = 0.02


@pytest.fixture(scope="module")
def pypfopt_inputs() -> tuple[np.ndarray, np.ndarray]:
    """Compounded annual expected returns and annualised pairwise sample covariance."""
    if not PRICES.is_file():
        pytest.skip(f"PyPortfolioOpt's data set is absent: {PRICES} not found")
    prices = pd.read_csv(PRICES, parse_dates=True, index_col="date")
    returns = prices.pct_change(fill_method=None).dropna(how="all")
    expected_returns = (1 + returns).prod() ** (252 / returns.count()) - 1
    covariance = returns.cov() * 252
    return expected_returns.to_numpy(), covariance.to_numpy()


@pytest.mark.parametrize(
    ("objective", "expected"),
    [
        pytest.param(MinVariance(), (0.150568, 0.159151, 0.820405), id="min_volatility"),
        pytest.param(MaxSharpe(RISK_FREE_RATE), (0.304777, 0.221656, 1.284771), id="max_sharpe"),
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
    np.testing.assert_allclose(performance, list(expected), rtol=1e-4)
