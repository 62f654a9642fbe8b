"""Live cross-checks against skfolio and PyPortfolioOpt on the embedded S&P 500 data.

The three libraries solve the same problem on the same inputs: the daily simple
returns of the 20 stocks over the last 2,000 days, their mean and sample covariance.
The comparisons are on objective values and risk, which are unique, more than on
weights, which are not (min-variance optima are flat: weights can differ by 1e-3 at
equal risk). Where we come out better than a peer, the check is one-sided.
"""

from __future__ import annotations

import importlib.resources
import warnings

import numpy as np
import pandas as pd
import pytest
from pypfopt import EfficientCVaR, EfficientFrontier, HRPOpt
from skfolio import RiskMeasure
from skfolio.cluster import HierarchicalClustering, LinkageMethod
from skfolio.measures import cvar as skfolio_cvar
from skfolio.optimization import HierarchicalRiskParity as SkfolioHRP
from skfolio.optimization import MeanRisk, ObjectiveFunction
from skfolio.optimization import RiskBudgeting as SkfolioRiskBudgeting
from skfolio.seriation import HierarchicalSeriation

from optimizer import (
    HierarchicalRiskParity,
    LongOnly,
    MaxSharpe,
    MinCVaR,
    MinVariance,
    PortfolioOptimizer,
    RiskParity,
    conditional_value_at_risk,
)

N_DAYS = 2000
RELATIVE = 1e-6
"""Agreement of volatilities, Sharpe ratios and CVaRs (measured: <= 1e-7)."""
RISK_PARITY_RELATIVE = 1e-5
"""Risk parity's log-barrier optimum is pinned to a few 1e-6 by the solvers."""


@pytest.fixture(scope="module")
def returns() -> pd.DataFrame:
    path = importlib.resources.files("skfolio") / "datasets" / "data" / "sp500_dataset.csv.gz"
    prices = pd.read_csv(str(path), parse_dates=["Date"], index_col="Date")
    return prices.pct_change().dropna().iloc[-N_DAYS:]


@pytest.fixture(scope="module")
def moments(returns: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    values = returns.to_numpy()
    return values.mean(axis=0), np.cov(values, rowvar=False)


@pytest.fixture(scope="module")
def ours() -> PortfolioOptimizer:
    return PortfolioOptimizer()


def _pypfopt_frontier(
    returns: pd.DataFrame, mu: np.ndarray, sigma: np.ndarray
) -> EfficientFrontier:
    tickers = returns.columns
    return EfficientFrontier(
        pd.Series(mu, tickers), pd.DataFrame(sigma, tickers, tickers), solver="CLARABEL"
    )


def _volatility(weights: np.ndarray, sigma: np.ndarray) -> float:
    return float(np.sqrt(weights @ sigma @ weights))


def test_min_variance(
    ours: PortfolioOptimizer, returns: pd.DataFrame, moments: tuple[np.ndarray, np.ndarray]
) -> None:
    mu, sigma = moments
    result = ours.optimize(MinVariance(), [LongOnly()], mu, sigma)
    skfolio = MeanRisk(
        risk_measure=RiskMeasure.VARIANCE, objective_function=ObjectiveFunction.MINIMIZE_RISK
    ).fit(returns.to_numpy())
    frontier = _pypfopt_frontier(returns, mu, sigma)
    frontier.min_volatility()
    for peer in (skfolio.weights_, frontier.weights):
        assert result.volatility <= _volatility(peer, sigma) * (1 + RELATIVE)
        np.testing.assert_allclose(result.weights, peer, atol=1e-3)


def test_max_sharpe(
    ours: PortfolioOptimizer, returns: pd.DataFrame, moments: tuple[np.ndarray, np.ndarray]
) -> None:
    mu, sigma = moments
    result = ours.optimize(MaxSharpe(0.0), [LongOnly()], mu, sigma)
    skfolio = MeanRisk(
        risk_measure=RiskMeasure.VARIANCE, objective_function=ObjectiveFunction.MAXIMIZE_RATIO
    ).fit(returns.to_numpy())
    frontier = _pypfopt_frontier(returns, mu, sigma)
    frontier.max_sharpe(risk_free_rate=0.0)
    assert result.sharpe is not None
    for peer in (skfolio.weights_, frontier.weights):
        peer_sharpe = float(mu @ peer) / _volatility(peer, sigma)
        assert result.sharpe >= peer_sharpe * (1 - RELATIVE)
        assert result.sharpe == pytest.approx(peer_sharpe, rel=RELATIVE)


def test_risk_parity(
    ours: PortfolioOptimizer, returns: pd.DataFrame, moments: tuple[np.ndarray, np.ndarray]
) -> None:
    # PyPortfolioOpt has no risk parity; skfolio's RiskBudgeting with equal budgets does.
    mu, sigma = moments
    result = ours.optimize(RiskParity(), [LongOnly()], mu, sigma)
    skfolio = SkfolioRiskBudgeting(risk_measure=RiskMeasure.VARIANCE).fit(returns.to_numpy())
    assert result.volatility == pytest.approx(
        _volatility(skfolio.weights_, sigma), rel=RISK_PARITY_RELATIVE
    )
    shares = result.risk_contributions / result.volatility
    np.testing.assert_allclose(shares, 1 / 20, rtol=RISK_PARITY_RELATIVE * 20)
    np.testing.assert_allclose(result.weights, skfolio.weights_, atol=RISK_PARITY_RELATIVE)


def test_min_cvar(
    ours: PortfolioOptimizer, returns: pd.DataFrame, moments: tuple[np.ndarray, np.ndarray]
) -> None:
    mu, sigma = moments
    values = returns.to_numpy()
    result = ours.optimize(MinCVaR(0.95), [LongOnly()], mu, sigma, returns=values)
    assert result.cvar is not None
    # Our CVaR is skfolio's measure of the same portfolio.
    assert result.cvar == pytest.approx(skfolio_cvar(values @ result.weights, beta=0.95), rel=1e-12)
    skfolio = MeanRisk(
        risk_measure=RiskMeasure.CVAR,
        objective_function=ObjectiveFunction.MINIMIZE_RISK,
        cvar_beta=0.95,
    ).fit(values)
    peer = EfficientCVaR(pd.Series(mu, returns.columns), returns, beta=0.95, solver="CLARABEL")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # its "market-neutral" notice
        peer.min_cvar()
    for weights in (skfolio.weights_, peer.weights):
        peer_cvar = conditional_value_at_risk(values @ weights, 0.95)
        assert result.cvar <= peer_cvar * (1 + RELATIVE)
        assert result.cvar == pytest.approx(peer_cvar, rel=RELATIVE)


def test_hrp(
    ours: PortfolioOptimizer, returns: pd.DataFrame, moments: tuple[np.ndarray, np.ndarray]
) -> None:
    mu, sigma = moments
    result = ours.optimize(HierarchicalRiskParity("single"), [LongOnly()], mu, sigma)
    pypfopt = HRPOpt(returns)
    pypfopt_weights = pypfopt.optimize(linkage_method="single")
    skfolio = SkfolioHRP(
        risk_measure=RiskMeasure.VARIANCE,
        seriation_estimator=HierarchicalSeriation(
            hierarchical_clustering_estimator=HierarchicalClustering(
                linkage_method=LinkageMethod.SINGLE
            ),
            optimal_ordering=False,
        ),
    ).fit(returns.to_numpy())
    for peer in (np.array([pypfopt_weights[t] for t in returns.columns]), skfolio.weights_):
        np.testing.assert_allclose(result.weights, peer, atol=1e-12)
        assert result.volatility == pytest.approx(_volatility(peer, sigma), rel=1e-12)
