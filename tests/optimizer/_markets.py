"""Synthetic markets (annualised expected returns and covariances) for the tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Market:
    """Expected returns and covariance in the same (annualised) units."""

    expected_returns: np.ndarray
    covariance: np.ndarray

    @property
    def n_assets(self) -> int:
        return len(self.expected_returns)


def random_market(n_assets: int, seed: int) -> Market:
    """A random well-posed market: positive expected returns, full-rank covariance."""
    rng = np.random.default_rng(seed)
    loadings = rng.normal(size=(n_assets, n_assets + 3))
    correlation_like = loadings @ loadings.T / (n_assets + 3) + 0.2 * np.eye(n_assets)
    scale = 1.0 / np.sqrt(np.diag(correlation_like))
    correlation = correlation_like * np.outer(scale, scale)
    volatility = rng.uniform(0.1, 0.4, n_assets)
    covariance = correlation * np.outer(volatility, volatility)
    expected_returns = rng.uniform(0.02, 0.15, n_assets)
    return Market(expected_returns, covariance)


def constant_correlation_market(
    volatility: np.ndarray, correlation: float, expected_returns: np.ndarray
) -> Market:
    """A well-conditioned market with one pairwise correlation for every pair."""
    n_assets = len(volatility)
    correlation_matrix = np.full((n_assets, n_assets), correlation)
    np.fill_diagonal(correlation_matrix, 1.0)
    return Market(expected_returns, correlation_matrix * np.outer(volatility, volatility))
