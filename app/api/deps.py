"""Dependencies of the route handlers, as ``Annotated`` aliases (override them in tests)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.core.config import Settings
from app.core.metrics import ServiceMetrics
from app.services.forecasts import ForecastService
from app.services.portfolios import PortfolioService
from app.services.serving import ServingState
from app.services.tfserving import TFServingService


def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_serving_state(request: Request) -> ServingState:
    """What the lifespan loaded."""
    state: ServingState = request.app.state.serving
    return state


def get_metrics(request: Request) -> ServiceMetrics:
    """The app's metrics."""
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


def get_forecast_service(
    state: Annotated[ServingState, Depends(get_serving_state)],
) -> ForecastService:
    """The forecast service; 503 problem while no model is loaded."""
    return state.require_forecasts()


def get_portfolio_service(
    state: Annotated[ServingState, Depends(get_serving_state)],
    settings: Annotated[Settings, Depends(get_app_settings)],
) -> PortfolioService:
    """The portfolio service, also while no model is loaded.

    Requests that bring their own expected returns and covariance (or returns) need
    no model; the others get a 503 problem from the service until one loads.
    """
    if state.portfolios is not None:
        return state.portfolios
    return PortfolioService(
        None,
        state.optimizer,
        settings.optimizer.correlation_lookback_days,
        not_ready_reason=state.not_ready_reason,
    )


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ServingStateDep = Annotated[ServingState, Depends(get_serving_state)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
ForecastServiceDep = Annotated[ForecastService, Depends(get_forecast_service)]
PortfolioServiceDep = Annotated[PortfolioService, Depends(get_portfolio_service)]


def get_tfserving_service(request: Request) -> TFServingService:
    """The TensorFlow Serving service the lifespan made (it holds a version cache)."""
    service: TFServingService = request.app.state.tfserving
    return service


TFServingDep = Annotated[TFServingService, Depends(get_tfserving_service)]
