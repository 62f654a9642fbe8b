"""Forecasts of expected return and volatility per ticker."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ForecastServiceDep
from app.schemas.forecasts import (
    ForecastRequest,
    ForecastResponse,
    ReturnQuantiles,
    TickerForecast,
)
from app.schemas.models import ModelRef
from app.schemas.problems import Problem
from training import schema

router = APIRouter(prefix="/v1", tags=["forecasts"])

UNITS = {
    "expected_log_return": "log return over the next 5 trading days",
    "log_return_quantiles": "quantiles of the log return over the next 5 trading days",
    "volatility": "standard deviation of daily log returns summed over the next 21 trading "
    "days (square root of the 21-day realized variance), not annualised",
    "annualized_expected_return": "arithmetic return per year (252 trading days)",
    "annualized_volatility": "volatility per year (252 trading days)",
}


@router.post(
    "/forecasts",
    responses={404: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem}},
)
def create_forecasts(body: ForecastRequest, service: ForecastServiceDep) -> ForecastResponse:
    """Expected return and volatility for each ticker at the latest feature date."""
    forecasts = service.get(body.tickers)
    return ForecastResponse(
        model=ModelRef(name=service.model.name, version=service.model.version),
        as_of=service.as_of,
        horizons={
            "expected_return_days": schema.RETURN_HORIZON_DAYS,
            "volatility_days": schema.VOLATILITY_HORIZON_DAYS,
        },
        units=UNITS,
        forecasts=[
            TickerForecast(
                ticker=f.ticker,
                as_of=f.as_of,
                expected_log_return=f.expected_log_return,
                log_return_quantiles=ReturnQuantiles(
                    q05=f.log_return_quantiles[0],
                    q50=f.log_return_quantiles[1],
                    q95=f.log_return_quantiles[2],
                ),
                volatility=f.volatility,
                annualized_expected_return=f.annualized_expected_return,
                annualized_volatility=f.annualized_volatility,
            )
            for f in forecasts
        ],
    )
