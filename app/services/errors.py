"""Errors the services raise; ``app.api.problems`` turns each into a problem response.

::

    ServiceError
     ├── ModelNotLoaded     no model version is loaded yet (or the features are missing)
     ├── UnknownTicker      a requested ticker has no features or forecast
     ├── ModelVerificationFailed  a loaded version fails a check before it may serve
     ├── ModelVersionRefused      a version was not swapped in; the last good one serves
     ├── ModelVersionNotFound     an admin action or a read names a model or version not in
     │                            the store
     ├── EvaluationNotFound       a model version has no walk-forward evaluation (yet)
     ├── RegistryConflict         the registry cannot do what was asked (nothing to roll back to)
     ├── LimitExceeded            a request asks for more than a configured limit allows
     ├── BacktestNotFound         no back-test job has the id asked for
     ├── BacktestConflict         the job's state does not allow it (cancel a finished job,
     │                            the report or equity curves of an unfinished one)
     └── BacktestQueueFull        backtests.max_queued jobs wait already; retry later

A back-test request that cannot run as asked raises the back-test library's own
``backtest.BacktestError`` (unknown strategy, bad dates, missing forecasts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class ServiceError(Exception):
    """Base class of the service errors."""


class ModelNotLoaded(ServiceError):
    """No model is serving; the message says how to build one."""


class UnknownTicker(ServiceError):
    """Tickers that the served data set does not hold, or holds without a forecast.

    ``unavailable`` maps each of ``unknown`` that has features but no forecast to why
    (no complete look-back window, a non-finite model output).
    """

    def __init__(
        self,
        unknown: Sequence[str],
        available: Sequence[str],
        unavailable: Mapping[str, str] | None = None,
    ) -> None:
        self.unknown = list(unknown)
        self.available = list(available)
        self.unavailable = dict(unavailable or {})
        names = ", ".join(self.unknown)
        reasons = "".join(f"; {t} has no forecast: {r}" for t, r in self.unavailable.items())
        super().__init__(
            f"unknown ticker{'s' if len(self.unknown) > 1 else ''}: {names}{reasons}; the "
            f"served data set holds {len(self.available)} tickers: {', '.join(self.available)}"
        )


class ModelVerificationFailed(ServiceError):
    """A loaded model version failed a check (signature, warm-up outputs, forecasts)."""


class FeaturesUnavailable(ServiceError):
    """The feature table is missing or cannot be read: no model can forecast from it."""


class ModelVersionRefused(ServiceError):
    """A model version that was not swapped in: the last good version keeps serving.

    ``failure`` is the ``reason`` label of ``quantserve_model_load_failures_total``:
    ``missing``, ``features`` (the feature table is missing or unreadable), ``invalid``
    (it loaded but failed verification, or the pipeline rejects an artifact) or ``error``
    (anything else, such as a corrupt SavedModel).
    """

    def __init__(
        self, name: str, version: int | None, reason: str, failure: str, serving: int | None
    ) -> None:
        self.name = name
        self.version = version
        self.reason = reason
        self.failure = failure
        self.serving = serving
        what = f"version {version} was refused" if version is not None else "could not load"
        still = f"version {serving} keeps serving" if serving is not None else "nothing serves"
        super().__init__(f"model {name} {what}: {reason}; {still}")


class ModelVersionNotFound(ServiceError):
    """A model this server does not serve, or a version not in the store.

    Named by an admin action (``served`` is the configured model), or by a read of any
    model in the store (``served`` is ``name``).
    """

    def __init__(
        self, name: str, version: int | None, available: Sequence[int], served: str
    ) -> None:
        self.name = name
        self.version = version
        self.available = list(available)
        if name != served:
            message = (
                f"this server serves model {served!r} only, not {name!r} "
                "(QUANTSERVE_MODEL_NAME chooses it)"
            )
        else:
            versions = ", ".join(map(str, self.available)) or "none"
            message = f"model {name} has no complete version {version} (versions: {versions})"
        super().__init__(message)


class EvaluationNotFound(ServiceError):
    """A complete model version without a readable ``evaluation/metrics.json``.

    The message says which commands write it (``quantserve evaluate`` evaluates the
    serving version only).
    """

    def __init__(self, name: str, version: int, message: str) -> None:
        self.name = name
        self.version = version
        super().__init__(message)


class RegistryConflict(ServiceError):
    """The registry cannot make the change asked for; the message says what to do instead."""


class LimitExceeded(ServiceError):
    """A request asks for more than a configured limit (``limits.*``) allows.

    ``limit`` names the setting (``limits.max_tickers``), ``value`` is its value and
    ``requested`` what the request asked for; the message says how to fit the limit.
    """

    def __init__(self, limit: str, value: float, requested: float, message: str) -> None:
        self.limit = limit
        self.value = value
        self.requested = requested
        super().__init__(message)


class BacktestNotFound(ServiceError):
    """No back-test job has this id."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            f"no back-test job {job_id!r}; GET /v1/backtests lists them (ids come from the "
            "Location of POST /v1/backtests)"
        )


class BacktestConflict(ServiceError):
    """What was asked does not fit the job's state; the message says what does."""

    def __init__(self, job_id: str, status: str, message: str) -> None:
        self.job_id = job_id
        self.status = status
        super().__init__(message)


class BacktestQueueFull(ServiceError):
    """``backtests.max_queued`` jobs are waiting already."""

    def __init__(self, queued: int, limit: int) -> None:
        self.queued = queued
        self.limit = limit
        super().__init__(
            f"{queued} back-tests are queued, the most the server keeps waiting "
            f"(backtests.max_queued = {limit}); retry after the time in Retry-After, or "
            "cancel a queued one (DELETE /v1/backtests/{id})"
        )
