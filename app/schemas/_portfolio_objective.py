"""The objectives of ``POST /v1/portfolios/optimize``, named by its request and response.

Its own module so that the response models (``_portfolio_responses``) and the request
models (``portfolios``, which re-exports both) can share it without importing each
other.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Objective"]


class Objective(StrEnum):
    """What the optimizer optimizes."""

    MIN_VARIANCE = "min_variance"
    MAX_SHARPE = "max_sharpe"
    MEAN_VARIANCE = "mean_variance"
    EFFICIENT_RETURN = "efficient_return"
    EFFICIENT_RISK = "efficient_risk"
    RISK_PARITY = "risk_parity"
    RISK_BUDGETING = "risk_budgeting"
    MAX_DIVERSIFICATION = "max_diversification"
    MIN_CVAR = "min_cvar"
    HRP = "hrp"
