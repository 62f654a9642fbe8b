"""Responses of ``POST /v1/portfolios/optimize`` and ``POST /v1/portfolios/frontier``.

Private: import them from :mod:`app.schemas.portfolios`, which re-exports them with
the request models.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from app.schemas._portfolio_objective import Objective
from app.schemas.models import ModelRef

__all__ = ["FrontierPoint", "FrontierResponse", "OptimizeResponse", "SolverReport"]


class SolverReport(BaseModel):
    """How the problem was solved."""

    name: str
    status: str
    solve_time_ms: float
    iterations: int | None
    compiled_from_cache: bool = Field(
        description="Whether a compiled problem was re-used (only parameter values changed)."
    )


class OptimizeResponse(BaseModel):
    """Weights and the portfolio's statistics, in the units of the inputs."""

    objective: Objective
    weights: dict[str, float] = Field(description="Weight per ticker; they sum to 1.")
    expected_return: float = Field(description="mu'w (annualised for the model's inputs).")
    volatility: float = Field(description="sqrt(w'Sigma w).")
    sharpe: float | None = Field(
        description="(expected_return - transaction_cost - risk_free_rate) / volatility."
    )
    risk_free_rate: float
    risk_contributions: dict[str, float] = Field(
        description="Each ticker's share of the volatility; they sum to it."
    )
    turnover: float = Field(description="sum |w - current_weights|.")
    transaction_cost: float = Field(description="Cost of the trades, in return units.")
    diversification_ratio: float | None = Field(description="sum(w_i sigma_i) / volatility.")
    cvar: float | None = Field(
        description="CVaR of the returns' scenarios at cvar_alpha (a loss, per period)."
    )
    cvar_alpha: float | None
    solver: SolverReport
    inputs: Literal["model", "request"] = Field(
        description="Whether the expected returns and covariance came from the model or "
        "the request."
    )
    model: ModelRef | None = Field(description="The model version, for the model's inputs.")
    as_of: date | None = Field(description="The forecasts' date, for the model's inputs.")
    covariance: str = Field(description="How the covariance was formed.")


class FrontierPoint(BaseModel):
    """One portfolio on the frontier."""

    expected_return: float
    volatility: float
    sharpe: float | None
    weights: dict[str, float]


class FrontierResponse(BaseModel):
    """Frontier portfolios by increasing expected return (the first is min variance)."""

    points: list[FrontierPoint]
    risk_free_rate: float
    solve_time_ms: float = Field(description="Total solver time over the points.")
    inputs: Literal["model", "request"]
    model: ModelRef | None
    as_of: date | None
    covariance: str
