"""Bodies of ``POST /v1/forecasts``."""

from __future__ import annotations

from collections import Counter
from datetime import date

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core.config import TICKERS_CEILING
from app.schemas.models import ModelRef

MAX_TICKERS = TICKERS_CEILING
"""A hard ceiling on tickers per request; ``limits.max_tickers`` (422 limit-exceeded) governs."""


LISTED_NAMES = 10
"""Most names an error message lists: the detail of 100,000 unknown names was 0.8 MB."""


def _listed(names: list[str]) -> str:
    """``names`` for an error message: the first few, and how many more."""
    shown = ", ".join(names[:LISTED_NAMES]) or "-"
    more = len(names) - LISTED_NAMES
    return f"{shown} and {more:,} more" if more > 0 else shown


def _unique_tickers(tickers: list[str]) -> list[str]:
    cleaned = [t.strip() for t in tickers]
    if any(not t for t in cleaned):
        raise ValueError("tickers must be non-empty strings")
    # Counted once: list.count per ticker took 4 s for 10,000 tickers, on the event loop.
    duplicates = sorted(t for t, n in Counter(cleaned).items() if n > 1)
    if duplicates:
        raise ValueError(f"tickers must be unique; repeated: {_listed(duplicates)}")
    return cleaned


class ForecastRequest(BaseModel):
    """Which tickers to forecast; all served tickers when ``tickers`` is omitted."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"tickers": ["AAPL", "MSFT"]}]}
    )

    tickers: list[str] | None = Field(
        None,
        min_length=1,
        max_length=MAX_TICKERS,
        description="Distinct tickers; at most limits.max_tickers (500 by default).",
    )

    @field_validator("tickers")
    @classmethod
    def _check_tickers(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _unique_tickers(value)


class ReturnQuantiles(BaseModel):
    """Quantiles of the forward 5-day log return: a 90% interval and its median."""

    q05: float
    q50: float
    q95: float


class TickerForecast(BaseModel):
    """One ticker's forecast."""

    ticker: str
    as_of: date = Field(description="Date of the latest features the forecast uses.")
    expected_log_return: float = Field(description="Forward 5-day log return.")
    log_return_quantiles: ReturnQuantiles = Field(
        description="5%, 50% and 95% quantiles of the forward 5-day log return."
    )
    volatility: float = Field(
        description="Forward 21-day volatility: square root of the sum of the next 21 squared "
        "daily log returns (not annualised)."
    )
    annualized_expected_return: float = Field(
        description="Arithmetic annual return: expected_log_return * 252/5 + "
        "annualized_volatility^2 / 2."
    )
    annualized_volatility: float = Field(description="volatility * sqrt(252/21).")


class UnavailableForecast(BaseModel):
    """A served ticker without a forecast, and why."""

    ticker: str
    reason: str = Field(
        description="Why: no look-back window with every feature known, or a non-finite "
        "model output."
    )


class ForecastResponse(BaseModel):
    """Forecasts with the model that made them and what the numbers mean."""

    model: ModelRef
    as_of: date | None = Field(
        description="The latest forecast's date; a ticker whose latest features are "
        "incomplete is forecast from an older window, with its own as_of."
    )
    horizons: dict[str, int] = Field(
        description="Trading days: expected_return_days (5) and volatility_days (21)."
    )
    units: dict[str, str]
    unavailable: list[UnavailableForecast] = Field(
        default_factory=list,
        description="Tickers in the feature table without a forecast, and why (when no "
        "tickers are named; naming one is a 404 unknown-ticker problem).",
    )
    # forecasts stays last: ForecastService joins pre-rendered fragments after it.
    forecasts: list[TickerForecast]
