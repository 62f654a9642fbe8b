"""What the server holds while it runs: the loaded model, its forecasts, the optimizer.

A ``ServingState`` is immutable and built whole: ``build_serving_state`` loads one model
version, verifies it against the features and computes every forecast before anything
serves from it, and raises if any step fails. ``app.services.lifecycle`` decides when to
build one and swaps it in. The optimizer, with its cache of compiled problems, is made
once and shared by every state, so it survives swaps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np

from app.core.config import Settings
from app.core.metrics import ServiceMetrics
from app.services.compiled_model import CompiledSignature, CompileRefused
from app.services.errors import FeaturesUnavailable, ModelNotLoaded, ModelVerificationFailed
from app.services.feature_store import FeatureStore
from app.services.forecasts import ForecastService
from app.services.model_registry import LoadedModel, load_model
from app.services.monitoring import MonitoringFacts, monitoring_facts
from app.services.portfolios import PortfolioService
from app.services.tfserving import MAX_INSTANCES
from optimizer import PortfolioOptimizer
from training.errors import ArtifactNotFound, PipelineError
from training.model import SERVING_OUTPUTS

logger = logging.getLogger(__name__)

SIGNATURE_NAME = "serving_default"
INPUT_NAME = "features"


@dataclass(frozen=True)
class ServingState:
    """One consistent set of model, forecasts and services; ``model`` is None until one loads.

    Handlers take the state once per request, so a request that started before a swap
    finishes on the state it started with.
    """

    model: LoadedModel | None
    forecasts: ForecastService | None
    portfolios: PortfolioService | None
    optimizer: PortfolioOptimizer
    monitoring: MonitoringFacts = field(default_factory=MonitoringFacts)
    """What the metrics report: model identity, data cutoff, drift, pipeline runs."""
    not_ready_reason: str | None = None
    """Why nothing serves, shown to callers: plain words, no paths (``not_ready_reason``)."""
    store: FeatureStore | None = None
    """The feature table the forecasts came from (reused when only the model changes)."""

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


def build_optimizer(settings: Settings) -> PortfolioOptimizer:
    """The one optimizer of the process (its compiled-problem cache outlives model swaps)."""
    return PortfolioOptimizer(
        solver=settings.optimizer.solver,
        fallback_solvers=settings.optimizer.fallback_solvers,
        cache_size=settings.optimizer.cache_size,
        time_limit_seconds=settings.limits.solver_time_limit_seconds,
        instances_per_problem=settings.optimizer.instances_per_problem,
    )


def build_serving_state(
    settings: Settings,
    metrics: ServiceMetrics,
    optimizer: PortfolioOptimizer,
    version: int | None = None,
    store: FeatureStore | None = None,
    model: LoadedModel | None = None,
) -> ServingState:
    """Load ``version`` (the serving version when None), verify it, forecast; raise on failure.

    ``store`` is reused when given (the features did not change), else read from
    ``settings.features_dir``. ``model``, a served state's model, is reused when given
    (only the features changed: a new day of data): it is verified against the new
    features but neither loaded nor compiled again, so a new feature table serves within
    a second. Raises whatever the load raised (``ArtifactNotFound``, a TensorFlow error
    for a corrupt SavedModel) or ``ModelVerificationFailed``.
    """
    # The model first: a version that cannot load is reported as such, features or not.
    loaded = model or load_model(settings.models_dir, settings.model_name, version)
    store = store if store is not None else FeatureStore.load(settings.features_dir)
    if model is not None:
        verify_model(model, store)
        timed = model if isinstance(model, _TimedModel) else _timed(model, metrics)
    else:
        verify_model(loaded, store)
        if settings.batching.xla:
            loaded = compile_model(loaded, store, settings.batching.allowed_batch_sizes)
        timed = _timed(loaded, metrics)
    forecasts = ForecastService(timed, store)
    if not forecasts.tickers:
        raise ModelVerificationFailed("no ticker has a finite forecast")
    portfolios = PortfolioService(
        forecasts, optimizer, settings.optimizer.correlation_lookback_days
    )
    facts = monitoring_facts(settings.data_dir, timed, store)
    return ServingState(timed, forecasts, portfolios, optimizer, facts, store=store)


def verify_model(model: LoadedModel, store: FeatureStore) -> None:
    """Raise ModelVerificationFailed unless ``model`` can serve forecasts from ``store``.

    Checks, in order: the ``serving_default`` signature takes ``features`` of shape
    ``(None, lookback_days, n_features)`` as its ``metadata.json`` says and returns every
    serving output; the store holds each metadata feature and at least one complete
    window; and a warm-up batch of those real windows gives finite values in every
    output. The warm-up call also pays the signature's first-call cost before any
    request does.
    """
    signature = model.saved_model.signatures.get(SIGNATURE_NAME)
    if signature is None:
        raise ModelVerificationFailed(f"the SavedModel has no {SIGNATURE_NAME!r} signature")
    _, inputs = signature.structured_input_signature
    spec = inputs.get(INPUT_NAME)
    if spec is None or len(inputs) != 1:
        raise ModelVerificationFailed(
            f"its {SIGNATURE_NAME!r} signature takes {sorted(inputs)}, not one {INPUT_NAME!r} input"
        )
    expected = [None, model.lookback_days, len(model.feature_columns)]
    if spec.shape.rank is None or spec.shape.as_list() != expected:
        raise ModelVerificationFailed(
            f"its signature takes {INPUT_NAME} of shape {spec.shape}, but metadata.json "
            f"says lookback_days={model.lookback_days} and {len(model.feature_columns)} "
            f"features, i.e. {expected}"
        )
    missing_outputs = sorted(set(SERVING_OUTPUTS) - set(signature.structured_outputs))
    if missing_outputs:
        raise ModelVerificationFailed(f"its signature lacks the outputs {missing_outputs}")
    missing_features = sorted(set(model.feature_columns) - set(store.table.columns))
    if missing_features:
        raise ModelVerificationFailed(
            f"the features at {store.path} lack the model's columns {missing_features}"
        )
    windows = store.latest_windows(model.lookback_days, model.feature_columns)
    if not len(windows):
        raise ModelVerificationFailed(
            f"no ticker has {model.lookback_days} complete rows of features at {store.path}"
        )
    # build_windows keeps complete (finite) windows only, so a non-finite output is the
    # model's fault, never the data's.
    for name, values in model.predict(windows.features).items():
        bad = ~np.isfinite(values)
        if bad.any():
            rows = bad.reshape(len(windows), -1).any(axis=1)
            tickers = sorted({str(t) for t in windows.tickers[rows]})
            raise ModelVerificationFailed(
                f"the warm-up batch of {len(windows)} real windows gives non-finite "
                f"{name} for {', '.join(tickers)}"
            )


def compile_model(
    model: LoadedModel, store: FeatureStore, batch_sizes: Sequence[int]
) -> LoadedModel:
    """``model`` with its signature compiled for ``batch_sizes``, warm; as is if refused.

    Checked on the store's latest real windows against the SavedModel's signature (see
    ``app.services.compiled_model``). A refusal is logged and the version still serves,
    through the signature as loaded: slower, never wrong.
    """
    windows = store.latest_windows(model.lookback_days, model.feature_columns)
    signature = model.saved_model.signatures[SIGNATURE_NAME]
    try:
        compiled = CompiledSignature.compile(
            signature, windows.features, batch_sizes, largest=MAX_INSTANCES
        )
    except CompileRefused as exc:
        logger.warning("model %s version %s serves without XLA: %s", model.name, model.version, exc)
        return model
    logger.info(
        "model %s version %s compiled with XLA in %.1f s; ms per call by batch size: %s",
        model.name,
        model.version,
        compiled.compile_seconds,
        ", ".join(f"{size}: {cost * 1000:.2f}" for size, cost in sorted(compiled.costs.items())),
    )
    return replace(model, compiled=compiled)


def not_ready_state(settings: Settings, optimizer: PortfolioOptimizer, reason: str) -> ServingState:
    """A state without a model: live, not ready, and saying why (``/readyz``, 503 bodies)."""
    facts = monitoring_facts(settings.data_dir, None, None)
    return ServingState(None, None, None, optimizer, facts, not_ready_reason=reason)


def not_ready_reason(model_name: str, version: int | None, failure: str) -> str:
    """Why nothing serves, in plain words fit for anyone (``/readyz`` is open).

    ``version`` is the version that failed (None when the store has none) and
    ``failure`` its :func:`failure_reason` label. The exception's text stays out: it
    holds absolute paths and library internals, so the log gets it instead.
    """
    if failure == "missing" and version is None:
        return (
            "no model version is loaded yet: run `quantserve pipeline` "
            "(or `quantserve train`) to build one"
        )
    if failure == "features":
        return (
            "the feature table is missing or cannot be read, so nothing serves yet: "
            "`quantserve features` (or `quantserve pipeline`) writes it; see the server "
            "log for the details"
        )
    why = {
        "missing": "a file it needs is missing; `quantserve pipeline` rebuilds it",
        "invalid": "it failed its checks",
    }.get(failure, "it failed to load")
    which = (
        f"model {model_name} version {version}" if version is not None else f"model {model_name}"
    )
    return f"{which} was refused ({why}), so nothing serves yet; see the server log for the details"


def failure_reason(exc: BaseException) -> str:
    """The ``reason`` label of ``quantserve_model_load_failures_total`` for ``exc``."""
    if isinstance(exc, FeaturesUnavailable):
        return "features"
    if isinstance(exc, ArtifactNotFound):
        return "missing"
    if isinstance(exc, PipelineError | ModelVerificationFailed):
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
