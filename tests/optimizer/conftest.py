"""Fixtures of the optimizer tests: fresh optimizers and small synthetic markets."""

from __future__ import annotations

import pytest

from optimizer import PortfolioOptimizer
from tests.optimizer._markets import Market, random_market


@pytest.fixture
def optimizer() -> PortfolioOptimizer:
    """A fresh optimizer with an empty cache (Clarabel, SCS fallback)."""
    return PortfolioOptimizer()


@pytest.fixture(scope="module")
def shared_optimizer() -> PortfolioOptimizer:
    """One optimizer per module, so that compiled problems are re-used across tests."""
    return PortfolioOptimizer()


@pytest.fixture(scope="module")
def market() -> Market:
    """Eight assets with positive expected returns and a full-rank covariance."""
    return random_market(8, seed=20240501)
