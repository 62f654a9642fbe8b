"""Dependencies of the route handlers, as ``Annotated`` aliases (override them in tests).

Every one is ``async def``: they only read ``app.state``, and FastAPI runs a plain
``def`` dependency in the thread pool, a round trip that cost about 90 µs of CPU per
dependency per request here (docs/benchmarks.md). Keep new ones async unless they block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.core.config import Settings
from app.core.metrics import ServiceMetrics
from app.services.audit import AuditLog
from app.services.backtests import BacktestService
from app.services.batching import MicroBatcher
from app.services.forecasts import ForecastService
from app.services.lifecycle import ModelLifecycle
from app.services.portfolios import PortfolioService
from app.services.serving import ServingState
from app.services.tfserving import TFServingService


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_lifecycle(request: Request) -> ModelLifecycle:
    """The model lifecycle the lifespan made: it owns the serving state and swaps it."""
    lifecycle: ModelLifecycle = request.app.state.lifecycle
    return lifecycle


async def get_serving_state(request: Request) -> ServingState:
    """The state that serves now, read once per request (FastAPI caches it per request).

    A request keeps this state to its end even if a new model version is swapped in
    meanwhile.
    """
    lifecycle: ModelLifecycle = request.app.state.lifecycle
    return lifecycle.current


async def get_metrics(request: Request) -> ServiceMetrics:
    """The app's metrics."""
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


async def get_forecast_service(
    state: Annotated[ServingState, Depends(get_serving_state)],
) -> ForecastService:
    """The forecast service; 503 problem while no model is loaded."""
    return state.require_forecasts()


async def get_portfolio_service(
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
LifecycleDep = Annotated[ModelLifecycle, Depends(get_lifecycle)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
ForecastServiceDep = Annotated[ForecastService, Depends(get_forecast_service)]
PortfolioServiceDep = Annotated[PortfolioService, Depends(get_portfolio_service)]


async def get_tfserving_service(request: Request) -> TFServingService:
    """The TensorFlow Serving service the lifespan made (it holds a version cache)."""
    service: TFServingService = request.app.state.tfserving
    return service


TFServingDep = Annotated[TFServingService, Depends(get_tfserving_service)]


@dataclass(frozen=True)
class Predictor:
    """What a ``:predict`` needs: the TF Serving service, the batcher, the serving state.

    One dependency rather than three: on the hottest route each dependency FastAPI
    resolves costs ~20 µs, a tenth of a one-instance predict's CPU.
    """

    service: TFServingService
    batcher: MicroBatcher
    """One per app, a queue per model version."""
    state: ServingState


async def get_predictor(request: Request) -> Predictor:
    """The service, batcher and current serving state, read once for the request."""
    app_state = request.app.state
    return Predictor(app_state.tfserving, app_state.batcher, app_state.lifecycle.current)


PredictorDep = Annotated[Predictor, Depends(get_predictor)]


async def get_audit(request: Request) -> AuditLog:
    """The audit trail the lifespan opened."""
    audit: AuditLog = request.app.state.audit
    return audit


AuditDep = Annotated[AuditLog, Depends(get_audit)]


async def get_backtests(request: Request) -> BacktestService:
    """The back-test jobs the lifespan opened (their store and dispatcher)."""
    backtests: BacktestService = request.app.state.backtests
    return backtests


BacktestServiceDep = Annotated[BacktestService, Depends(get_backtests)]
