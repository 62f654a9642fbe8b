"""The FastAPI application: ``create_app`` builds it, the lifespan loads the models."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool

from app.api.problems import exception_problem, install_problem_handlers
from app.api.routes import (
    admin,
    audit,
    backtests,
    forecasts,
    health,
    models,
    portfolios,
    tfserving,
)
from app.core.config import Settings, get_settings
from app.core.limits import BodySizeLimit
from app.core.metrics import ServiceMetrics, instrument_http
from app.core.middleware import RequestIdMiddleware
from app.core.security import (
    DEV_MODE_WARNING,
    AccessControl,
    MetricsKeyGuard,
    check_can_start,
    require_role,
)
from app.services.audit import AuditLog
from app.services.backtests import BacktestService
from app.services.batching import MicroBatcher
from app.services.lifecycle import ModelLifecycle
from app.services.model_registry import configure_tensorflow, persist_xla_executables
from app.services.tfserving import TFServingService
from app.web import routes as web
from app.web.assets import load_assets

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the serving model and features before the first request; never at import."""
    settings: Settings = app.state.settings
    metrics: ServiceMetrics = app.state.metrics
    # First: a server that cannot record optimize and admin actions must not start.
    app.state.audit = audit_log = await run_in_threadpool(
        AuditLog.open, settings.audit_url, metrics, settings.audit
    )
    # Back-test jobs: re-queues those a dead server left running, then runs queued ones
    # in worker processes (never in this process's event loop or thread pool).
    app.state.backtests = backtests_service = await run_in_threadpool(
        BacktestService.open, settings
    )
    # Handlers read lifecycle.current once per request: swaps never split a request.
    await run_in_threadpool(configure_tensorflow, settings.tensorflow_threads)
    if settings.batching.xla:
        persist_xla_executables(settings.xla_cache_dir)
    app.state.lifecycle = lifecycle = ModelLifecycle(settings, metrics)
    await run_in_threadpool(lifecycle.load)
    app.state.tfserving = TFServingService(settings.models_dir)
    app.state.batcher = batcher = MicroBatcher(settings.batching, metrics)
    # TensorFlow, the model and the feature table leave ~400k long-lived objects, and a
    # full collection over them takes ~170 ms: it showed up as a 100-140 ms p99 on
    # every endpoint. Freezing moves them out of the collector's sight.
    gc.collect()
    gc.freeze()
    lifecycle.start_polling()  # poll the store, registry and features
    yield
    await lifecycle.stop_polling()
    await batcher.close()  # answers what is still queued
    await run_in_threadpool(backtests_service.close)  # its running jobs are queued again
    await run_in_threadpool(audit_log.close)


def create_app(
    settings: Settings | None = None, registry: CollectorRegistry | None = None
) -> FastAPI:
    """Build the app. Tests pass their own settings and a fresh metrics registry.

    Raises ``MissingApiKeys`` when no API keys are configured and ``dev_mode`` is off.
    """
    settings = settings or get_settings()
    check_can_start(settings)
    if settings.dev_mode and not settings.api_keys:
        logger.warning(DEV_MODE_WARNING)
    registry = registry if registry is not None else CollectorRegistry()
    app = FastAPI(
        title="quantserve",
        version="0.1.0",
        summary="Forecasts from TensorFlow models and cvxpy-optimized allocations over REST.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = ServiceMetrics(registry)
    app.state.access = access = AccessControl.from_settings(settings)
    # Inside CORS (added next), so browsers can read the 413 and 401 problems too.
    app.add_middleware(
        BodySizeLimit, max_body_bytes=settings.limits.max_body_bytes, refuse=exception_problem
    )
    if settings.protect_metrics:
        app.add_middleware(MetricsKeyGuard, access=access, refuse=exception_problem)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["*"],
        )
    install_problem_handlers(app)
    # The dashboard's page and assets are open: the page calls the API with the user's key.
    app.state.web_assets = load_assets()
    app.include_router(web.router)
    # Roles nest (admin > trader > viewer); health probes are open.
    viewer, trader, admin_role = (Depends(require_role(r)) for r in ("viewer", "trader", "admin"))
    app.include_router(health.router)
    for module in (models, forecasts, tfserving):
        app.include_router(module.router, dependencies=[viewer])
    app.include_router(portfolios.router, dependencies=[trader])
    app.include_router(backtests.router, dependencies=[viewer])  # GET: follow, read
    app.include_router(backtests.trader_router, dependencies=[trader])  # POST, DELETE
    app.include_router(audit.router, dependencies=[admin_role])  # GET /v1/audit
    app.include_router(admin.router, dependencies=[admin_role])  # reload, promote, rollback
    instrument_http(app, registry)
    # Added last, so outermost: the request id is set before anything else logs.
    app.add_middleware(RequestIdMiddleware)
    return app
