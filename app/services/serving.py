"""What the server holds while it runs: the loaded model, its forecasts, the optimizer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np

from app.core.config import Settings
from app.core.metrics import ServiceMetrics
from app.services.errors import ModelNotLoaded
from app.services.feature_store import FeatureStore
from app.services.forecasts import ForecastService
from app.services.model_registry import LoadedModel, load_model
from app.services.monitoring import MonitoringFacts, monitoring_facts
from app.services.portfolios import PortfolioService
from optimizer import PortfolioOptimizer
from training.errors import ArtifactNotFound, PipelineError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingState:
    """Loaded in the app's lifespan; ``model`` is None until a model and features exist."""

    model: LoadedModel | None
    forecasts: ForecastService | None
    portfolios: PortfolioService | None
    optimizer: PortfolioOptimizer
    monitoring: MonitoringFacts = field(default_factory=MonitoringFacts)
    """What the metrics report: model identity, data cutoff, drift, pipeline runs."""
    not_ready_reason: str | None = None

    @property
    def ready(self) -> bool:
        """True once a model is loaded and forecasting."""
        return self.model is not None

    def require_forecasts(self) -> ForecastService:
        """The forecast service, or ModelNotLoaded saying how to get one."""
        if self.forecasts is None:
            raise ModelNotLoaded(self._why())
        return self.forecasts

    def require_portfolios(self) -> PortfolioService:
        """The portfolio service, or ModelNotLoaded saying how to get one."""
        if self.portfolios is None:
            raise ModelNotLoaded(self._why())
        return self.portfolios

    def _why(self) -> str:
        return self.not_ready_reason or "no model is loaded yet"


def load_serving_state(settings: Settings, metrics: ServiceMetrics) -> ServingState:
    """Load the serving model version and the features; never raises.

    A model that cannot be loaded leaves the server live but not ready, with the reason
    (``/readyz`` says it), and counts in ``quantserve_model_load_failures_total`` by
    reason: ``missing`` when no version or features exist yet, ``invalid`` when the
    pipeline's artifacts are unusable, ``error`` for anything else (a corrupt SavedModel).
    """
    optimizer = PortfolioOptimizer(
        solver=settings.optimizer.solver,
        fallback_solvers=settings.optimizer.fallback_solvers,
        cache_size=settings.optimizer.cache_size,
    )
    try:
        model = _timed(load_model(settings.models_dir, settings.model_name), metrics)
        store = FeatureStore.load(settings.features_dir)
        forecasts = ForecastService(model, store)
    except Exception as exc:
        reason = f"{exc} (models_dir={settings.models_dir}, data_dir={settings.data_dir})"
        failure = _failure_reason(exc)
        metrics.model_load_failures.labels(failure).inc()
        logger.warning(
            "not ready: %s", reason, exc_info=failure == "error", extra={"load_failure": failure}
        )
        facts = monitoring_facts(settings.data_dir, None, None)
        return ServingState(None, None, None, optimizer, facts, not_ready_reason=reason)
    portfolios = PortfolioService(
        forecasts, optimizer, settings.optimizer.correlation_lookback_days
    )
    facts = monitoring_facts(settings.data_dir, model, store)
    return ServingState(model, forecasts, portfolios, optimizer, facts)


def _failure_reason(exc: Exception) -> str:
    """The ``reason`` label of a load failure."""
    if isinstance(exc, ArtifactNotFound):
        return "missing"
    if isinstance(exc, PipelineError):
        return "invalid"
    return "error"


def _timed(model: LoadedModel, metrics: ServiceMetrics) -> LoadedModel:
    """``model`` with every call of its serving signature timed by model and version."""
    histogram = metrics.model_inference_seconds.labels(model.name, str(model.version))
    values = {f.name: getattr(model, f.name) for f in fields(model) if f.init}
    return _TimedModel(**values, observe=histogram.observe)


@dataclass(frozen=True)
class _TimedModel(LoadedModel):
    """A loaded model that reports the wall time of each call of its serving signature."""

    observe: Callable[[float], object] = field(default=lambda seconds: None, compare=False)

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        try:
            return super().predict(features)
        finally:
            self.observe(time.perf_counter() - started)
