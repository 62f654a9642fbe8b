"""Bodies of ``POST /v1/portfolios/optimize``."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.schemas.forecasts import MAX_TICKERS, _unique_tickers
from app.schemas.models import ModelRef


class Objective(StrEnum):
    """What the optimizer optimizes."""

    MIN_VARIANCE = "min_variance"
    MAX_SHARPE = "max_sharpe"
    MEAN_VARIANCE = "mean_variance"


class Constraints(BaseModel):
    """Constraints on the weights; the weights always sum to 1 (fully invested)."""

    model_config = ConfigDict(extra="forbid")

    long_only: bool = Field(True, description="No short positions (every weight >= 0).")
    min_weight: float | None = Field(None, ge=-1.0, le=1.0, description="Lower bound per asset.")
    max_weight: float | None = Field(None, gt=0.0, le=1.0, description="Upper bound per asset.")


class OptimizeRequest(BaseModel):
    """An allocation over ``tickers`` from the model's forecasts."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "tickers": ["AAPL", "JNJ", "JPM", "XOM", "WMT"],
                    "objective": "max_sharpe",
                    "constraints": {"long_only": True, "max_weight": 0.4},
                }
            ]
        },
    )

    tickers: list[str] = Field(min_length=2, max_length=MAX_TICKERS)
    objective: Objective = Objective.MIN_VARIANCE
    risk_aversion: float = Field(
        2.0,
        gt=0.0,
        le=1e6,
        description="mean_variance maximises mu'w - (risk_aversion/2) w'Sigma w.",
    )
    risk_free_rate: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="Annualised; used by max_sharpe and for the Sharpe ratio. Default from config.",
    )
    constraints: Constraints = Constraints()

    @field_validator("tickers")
    @classmethod
    def _check_tickers(cls, value: list[str]) -> list[str]:
        return _unique_tickers(value)


class SolverReport(BaseModel):
    """How the problem was solved."""

    name: str
    status: str
    solve_time_ms: float
    iterations: int | None


class OptimizeResponse(BaseModel):
    """Weights and the portfolio's forecast statistics (annualised)."""

    objective: Objective
    weights: dict[str, float] = Field(description="Weight per ticker; they sum to 1.")
    expected_return: float = Field(description="Annualised arithmetic expected return.")
    volatility: float = Field(description="Annualised volatility.")
    sharpe: float | None = Field(description="(expected_return - risk_free_rate) / volatility.")
    risk_free_rate: float
    risk_contributions: dict[str, float] = Field(
        description="Each ticker's share of the volatility; they sum to it."
    )
    solver: SolverReport
    model: ModelRef
    as_of: date
    covariance: str = Field(description="How the covariance was formed.")
