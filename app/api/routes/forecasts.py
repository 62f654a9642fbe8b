"""Forecasts of expected return and volatility per ticker."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import ForecastServiceDep, SettingsDep
from app.schemas.forecasts import ForecastRequest, ForecastResponse
from app.schemas.problems import Problem
from app.services.limits import check_tickers

router = APIRouter(prefix="/v1", tags=["forecasts"])


@router.post(
    "/forecasts",
    response_model=ForecastResponse,
    responses={404: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem}},
)
async def create_forecasts(
    body: ForecastRequest, service: ForecastServiceDep, settings: SettingsDep
) -> Response:
    """Expected return and volatility for each ticker at the latest feature date."""
    # async: it only joins bytes rendered when the model loaded (ForecastService), so
    # it runs on the event loop; a sync handler would cost a thread-pool round trip.
    if body.tickers is not None:
        check_tickers(len(body.tickers), settings.limits)
    return Response(service.response_json(body.tickers), media_type="application/json")
