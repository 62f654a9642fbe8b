"""Hot reload: notice new model versions, promotions and features, verify, swap atomically.

``ModelLifecycle`` owns the ``ServingState`` that serves. It compares a ``Fingerprint``
of what is on disk (the serving version by the registry or the store, that version's
files, the feature table) with the one that serves; when they differ it builds a whole
new state in a worker thread (load, verify, forecast every ticker) and only then swaps
it in with one attribute store. Handlers read ``current`` once per request, so a
request in flight finishes on the state it started with. A version that fails to load
or verify is refused: the last good state keeps serving, the failure is logged at ERROR
and counted, and the fingerprint is remembered so that the next polls do not retry it
until something on disk changes again (or an admin forces a reload).

Admin actions (``promote``, ``rollback``) load and verify the target version *before*
changing the registry, so a broken version is never promoted.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
from dataclasses import replace
from pathlib import Path

from app.core.config import Settings
from app.core.metrics import ServiceMetrics
from app.services._reload_result import RegistryChange, ReloadOutcome, ReloadResult
from app.services.errors import ModelVersionNotFound, ModelVersionRefused, RegistryConflict
from app.services.model_fingerprint import Fingerprint, read_fingerprint, rollback_target
from app.services.monitoring import publish
from app.services.serving import (
    ServingState,
    build_optimizer,
    build_serving_state,
    failure_reason,
    not_ready_reason,
    not_ready_state,
)
from optimizer import PortfolioOptimizer
from training.errors import ArtifactNotFound, PipelineError
from training.model_store import list_versions
from training.registry import ModelRegistry, RegistryError, Stage

logger = logging.getLogger(__name__)

__all__ = ["ModelLifecycle", "RegistryChange", "ReloadOutcome", "ReloadResult"]


class ModelLifecycle:
    """The serving state of one app, and the checks, swaps and admin actions that change it.

    Parameters
    ----------
    settings
        ``models_dir``, ``model_name``, ``data_dir`` and ``lifecycle.poll_interval_seconds``.
    metrics
        Where loads, reloads and the served model's facts are reported.
    optimizer
        Shared by every state (its compiled problems survive swaps); made from the
        settings when None.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: ServiceMetrics,
        optimizer: PortfolioOptimizer | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.optimizer = optimizer if optimizer is not None else build_optimizer(settings)
        self._current = not_ready_state(settings, self.optimizer, "the model is loading")
        self._serving: Fingerprint | None = None
        self._refused: Fingerprint | None = None
        # One check or admin action at a time: two threads building states at once
        # would race on which swaps last.
        self._lock = threading.Lock()
        self._poll_task: asyncio.Task[None] | None = None
        self._refreeze_pending = False

    @property
    def current(self) -> ServingState:
        """The state that serves now; read it once per request."""
        return self._current

    # -- loading and checking -------------------------------------------------------

    def load(self) -> ServingState:
        """The first load, at start; never raises.

        A failure leaves the server live but not ready with the reason in plain words
        (``/readyz`` says it; the log has the details) and counts in
        ``quantserve_model_load_failures_total``; the next change on disk that a check
        notices is tried.
        """
        with self._lock:
            self.metrics.model_last_check.set_to_current_time()
            fingerprint = self._fingerprint_or_none()
            try:
                state = self._build(fingerprint)
            except Exception as exc:
                failure = failure_reason(exc)
                version = fingerprint.version if fingerprint is not None else None
                reason = self._not_ready_reason(version, failure)
                self.metrics.model_load_failures.labels(failure).inc()
                # Once per start; a missing model is expected before the first pipeline.
                logger.log(
                    logging.WARNING if failure == "missing" else logging.ERROR,
                    "not ready: %s (models_dir=%s, data_dir=%s)",
                    exc,
                    self.settings.models_dir.resolve(),
                    self.settings.data_dir.resolve(),
                    exc_info=failure == "error",
                    extra={"load_failure": failure},
                )
                state = not_ready_state(self.settings, self.optimizer, reason)
                self._refused = fingerprint
            else:
                self._serving = fingerprint
            previous, self._current = self._current, state
            self._publish(previous, state)
            return state

    def check(self, *, force: bool = False) -> ReloadResult:
        """Rebuild and swap when the fingerprint changed (always when ``force``).

        Never raises for a broken version: the result says ``refused`` and carries the
        error. Runs in a worker thread (it loads TensorFlow models).
        """
        with self._lock:
            self._refreeze_if_pending()
            self.metrics.model_last_check.set_to_current_time()
            before = self._current
            try:
                fingerprint = read_fingerprint(self.settings)
            except OSError as exc:
                logger.warning("model store or features changed during the check: %s", exc)
                return ReloadResult(ReloadOutcome.UNCHANGED, before, before)
            if not force:
                if fingerprint in (self._serving, self._refused):
                    return ReloadResult(ReloadOutcome.UNCHANGED, before, before)
                if self._serving is not None and fingerprint.same_artifacts(self._serving):
                    self._relabel(fingerprint)
                    return ReloadResult(ReloadOutcome.UNCHANGED, self._current, before)
            try:
                state = self._build(fingerprint)
            except Exception as exc:
                refused = self._refuse(fingerprint, exc, remember=True)
                return ReloadResult(ReloadOutcome.REFUSED, self._current, before, refused)
            self._swap(state, fingerprint)
            return ReloadResult(ReloadOutcome.SWAPPED, state, before)

    def reload(self) -> ReloadResult:
        """A forced check (the admin reload): rebuild even if nothing changed on disk.

        Raises ModelVersionRefused when the serving version fails to load or verify.
        """
        result = self.check(force=True)
        if result.refused is not None:
            raise result.refused
        return result

    # -- admin actions --------------------------------------------------------------

    def promote(self, name: str, version: int, reason: str = "promoted") -> ReloadResult:
        """Load and verify ``version``, then make it production, then serve it.

        Raises ModelVersionNotFound for a model or version not in the store,
        ModelVersionRefused (the registry untouched) for a version that fails, and
        RegistryConflict when the registry cannot be written (a read-only store).
        """
        with self._lock:
            self._refreeze_if_pending()
            registry = ModelRegistry(self._model_dir(name, version))
            before = self._current
            fingerprint = read_fingerprint(self.settings, version)
            state = self._build_or_refuse(fingerprint)
            try:
                previous = registry.promote(version, reason)
            except RegistryError as exc:  # e.g. a store mounted read-only
                raise RegistryConflict(str(exc)) from exc
            self._swap(*_in_production(state, fingerprint))
            change = RegistryChange("promote", version, previous)
            return ReloadResult(ReloadOutcome.SWAPPED, self._current, before, None, change)

    def rollback(self, name: str, reason: str = "rolled back") -> ReloadResult:
        """Load and verify the version production replaced, then roll back, then serve it.

        Raises RegistryConflict when there is nothing to roll back to and
        ModelVersionRefused (the registry untouched) when that version fails.
        """
        with self._lock:
            self._refreeze_if_pending()
            registry = ModelRegistry(self._model_dir(name, None))
            before = self._current
            current, target = rollback_target(registry)
            fingerprint = read_fingerprint(self.settings, target)
            state = self._build_or_refuse(fingerprint)
            try:
                rolled_to = registry.rollback(reason)
            except RegistryError as exc:
                raise RegistryConflict(str(exc)) from exc
            change = RegistryChange("rollback", rolled_to, current)
            if rolled_to != target:
                # Another process changed the registry in between: serve what it says.
                logger.warning("rollback went to version %s, not %s", rolled_to, target)
                fingerprint = read_fingerprint(self.settings)
                state = self._build_or_refuse(fingerprint)
            self._swap(*_in_production(state, fingerprint))
            return ReloadResult(ReloadOutcome.SWAPPED, self._current, before, None, change)

    # -- polling --------------------------------------------------------------------

    def start_polling(self) -> None:
        """Start the poll task on the running event loop (not when the interval is 0)."""
        interval = self.settings.lifecycle.poll_interval_seconds
        if interval <= 0:
            logger.info("model store polling is disabled (lifecycle.poll_interval_seconds=0)")
            return
        self._poll_task = asyncio.get_running_loop().create_task(
            self._poll(interval), name="model-lifecycle-poll"
        )

    async def stop_polling(self) -> None:
        """Cancel the poll task; a check already running in its thread finishes alone."""
        task, self._poll_task = self._poll_task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                # Its own thread, not the request thread pool: a slow load never takes
                # a slot that a request needs.
                await asyncio.to_thread(self.check)
            except Exception:
                logger.exception("model lifecycle check failed; the next is in %s s", interval)

    # -- internals (called with the lock held) --------------------------------------

    def _build(self, fingerprint: Fingerprint | None) -> ServingState:
        if fingerprint is not None and fingerprint.problem is not None:
            raise PipelineError(fingerprint.problem)
        if fingerprint is not None and fingerprint.version is None:
            raise ArtifactNotFound(
                f"no model version under {self.settings.models_dir / self.settings.model_name}"
                "; run `quantserve pipeline` (or `quantserve train`) to build one"
            )
        # What did not change is reused: the feature table when only the model moved,
        # the loaded (and compiled) model when only the features did (a new day's data).
        current, served = self._current, self._serving
        store = model = None
        if fingerprint is not None and served is not None:
            store = current.store if fingerprint.features == served.features else None
            model = current.model if fingerprint.same_model(served) else None
        state = build_serving_state(
            self.settings,
            self.metrics,
            self.optimizer,
            fingerprint.version if fingerprint is not None else None,
            store=store,
            model=model,
        )
        if fingerprint is not None and fingerprint.stage is not None:
            state = _with_stage(state, fingerprint.stage)
        return state

    def _build_or_refuse(self, fingerprint: Fingerprint) -> ServingState:
        try:
            return self._build(fingerprint)
        except Exception as exc:
            raise self._refuse(fingerprint, exc, remember=False) from exc

    def _refuse(
        self, fingerprint: Fingerprint, exc: Exception, *, remember: bool
    ) -> ModelVersionRefused:
        """Count and log a refused version; the serving state stays."""
        failure = failure_reason(exc)
        serving = self._current.model.version if self._current.model is not None else None
        refused = ModelVersionRefused(
            self.settings.model_name, fingerprint.version, str(exc), failure, serving
        )
        self.metrics.model_reloads.labels(ReloadOutcome.REFUSED.value).inc()
        self.metrics.model_load_failures.labels(failure).inc()
        logger.error(
            "%s",
            refused,
            exc_info=failure == "error",
            extra={
                "model": self.settings.model_name,
                "model_version": fingerprint.version,
                "load_failure": failure,
            },
        )
        if remember:
            self._refused = fingerprint
        if not self._current.ready:
            # Still nothing to serve: /readyz and 503 bodies say why, as of now.
            previous = self._current
            reason = self._not_ready_reason(refused.version, failure)
            self._current = not_ready_state(self.settings, self.optimizer, reason)
            self._publish(previous, self._current)
        return refused

    def _swap(self, state: ServingState, fingerprint: Fingerprint) -> None:
        previous = self._current
        self._current = state  # the swap: one attribute store, atomic under the GIL
        self._serving, self._refused = fingerprint, None
        self.metrics.model_reloads.labels(ReloadOutcome.SWAPPED.value).inc()
        self._publish(previous, state)
        was = previous.model.version if previous.model is not None else None
        assert state.model is not None
        logger.info(
            "serving model %s version %s (was %s)",
            state.model.name,
            state.model.version,
            was,
            extra={"model": state.model.name, "model_version": state.model.version},
        )
        # The lifespan froze the first state's ~400k objects out of the collector's
        # sight (a full collection over them cost a 100-140 ms p99). Freeze the new
        # state's the same way now; the old state cannot be collected yet, because
        # requests in flight hold it, so the next check unfreezes, collects it and
        # freezes again (one ~170 ms collection per swap, in the check's thread).
        gc.freeze()
        self._refreeze_pending = True

    def _relabel(self, fingerprint: Fingerprint) -> None:
        """Only the serving version's stage changed (e.g. the serving candidate promoted)."""
        previous = self._current
        self._current = _with_stage(previous, fingerprint.stage or "unknown")
        self._serving = fingerprint
        self._publish(previous, self._current)

    def _publish(self, previous: ServingState, state: ServingState) -> None:
        """Set the model gauges for ``state``, retiring ``previous``'s identity series."""
        old, new = previous.monitoring, state.monitoring
        if old.model is not None:
            retired = (old.model.name, str(old.model.version), old.stage or "unknown")
            kept = (
                (new.model.name, str(new.model.version), new.stage or "unknown")
                if new.model is not None
                else None
            )
            if retired != kept:
                self.metrics.model_info.labels(*retired).set(0)
                # With several workers the series lives in a file and prometheus_client
                # cannot remove it: it stays at 0 (1 while another worker serves it).
                if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                    self.metrics.model_info.remove(*retired)
        publish(self.metrics, new)
        if new.model is not None:
            self.metrics.model_serving_version.labels(new.model.name).set(new.model.version)

    def _refreeze_if_pending(self) -> None:
        if self._refreeze_pending:
            self._refreeze_pending = False
            gc.unfreeze()
            gc.collect()
            gc.freeze()

    def _fingerprint_or_none(self) -> Fingerprint | None:
        try:
            return read_fingerprint(self.settings)
        except OSError as exc:
            logger.warning("could not fingerprint the model store: %s", exc)
            return None

    def _not_ready_reason(self, version: int | None, failure: str) -> str:
        """What ``/readyz`` and 503 bodies say: no exception text, which the log has."""
        return not_ready_reason(self.settings.model_name, version, failure)

    def _model_dir(self, name: str, version: int | None) -> Path:
        """The served model's folder; ModelVersionNotFound for another model or version."""
        model_dir = self.settings.models_dir / self.settings.model_name
        available = list_versions(model_dir)
        if name != self.settings.model_name or (version is not None and version not in available):
            raise ModelVersionNotFound(name, version, available, self.settings.model_name)
        return model_dir


def _with_stage(state: ServingState, stage: str) -> ServingState:
    return replace(state, monitoring=replace(state.monitoring, stage=stage))


def _in_production(
    state: ServingState, fingerprint: Fingerprint
) -> tuple[ServingState, Fingerprint]:
    """``state`` and ``fingerprint`` as they read once the registry made them production."""
    production = Stage.PRODUCTION.value
    return _with_stage(state, production), replace(fingerprint, stage=production)
