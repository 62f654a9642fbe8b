"""What the server holds while it runs: the loaded model, its forecasts, the optimizer."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.core.config import Settings
from app.services.errors import ModelNotLoaded
from app.services.feature_store import FeatureStore
from app.services.forecasts import ForecastService
from app.services.model_registry import LoadedModel, load_model
from app.services.portfolios import PortfolioService
from optimizer import PortfolioOptimizer
from training.errors import PipelineError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingState:
    """Loaded in the app's lifespan; ``model`` is None until a model and features exist."""

    model: LoadedModel | None
    forecasts: ForecastService | None
    portfolios: PortfolioService | None
    optimizer: PortfolioOptimizer
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


def load_serving_state(settings: Settings) -> ServingState:
    """Load the serving model version and the features; never raises for missing artifacts."""
    optimizer = PortfolioOptimizer(
        solver=settings.optimizer.solver,
        fallback_solvers=settings.optimizer.fallback_solvers,
        cache_size=settings.optimizer.cache_size,
    )
    try:
        model = load_model(settings.models_dir, settings.model_name)
        store = FeatureStore.load(settings.features_dir)
    except PipelineError as exc:
        reason = f"{exc} (models_dir={settings.models_dir}, data_dir={settings.data_dir})"
        logger.warning("not ready: %s", reason)
        return ServingState(None, None, None, optimizer, not_ready_reason=reason)
    forecasts = ForecastService(model, store)
    portfolios = PortfolioService(
        forecasts, optimizer, settings.optimizer.correlation_lookback_days
    )
    return ServingState(model, forecasts, portfolios, optimizer)
