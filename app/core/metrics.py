"""Prometheus metrics on an injected registry (tests build a fresh one per app).

Every name carries the ``quantserve_`` prefix and a base unit (``_seconds``,
``_timestamp_seconds``, ``_total`` for counters, ``_info`` for the model's identity), and
no label takes unbounded values: no ticker, request id or key is ever a label.

With several worker processes, ``PROMETHEUS_MULTIPROC_DIR`` must be set before
``prometheus_client`` is imported; counters and histograms are then summed over the
workers, and each gauge says how its workers' values combine (``multiprocess_mode``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.core.http_metrics import install_http_metrics
from training.drift import MIN_NEW_DAYS

# Fine enough to read a millisecond p99, wide enough for a cold optimizer solve.
LATENCY_BUCKETS_SECONDS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

# From a bar's arrival to serving the features built from it: the stream's trigger,
# the feature job, the server's poll (lifecycle.poll_interval_seconds, 10 s by default)
# and the reload (load, verify, forecast). Half a second to ten minutes.
SERVING_LAG_BUCKETS_SECONDS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)

# Why a model failed to load (the ``reason`` label of the load-failure counter).
LOAD_FAILURE_REASONS = ("missing", "features", "invalid", "error")

# The audit-trail write that failed (the ``stage`` label): the row written before an
# admin action (``intent``), the record of a success (``result``), or of a failed request
# (``failure_record``). See ``app.services.audit``.
AUDIT_WRITE_STAGES = ("intent", "result", "failure_record")


class OptimizerSolveMetrics:
    """Solve time (histogram) and outcome (counter) of optimizations, by objective and status.

    ``labels(objective, status).observe(seconds)`` records both, so the outcome counter
    ``quantserve_optimizer_solves_total`` and the histogram's count never disagree.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.seconds = Histogram(
            "quantserve_optimizer_solve_seconds",
            "Wall time of one portfolio optimization, by objective and outcome.",
            ["objective", "status"],
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.outcomes = Counter(
            "quantserve_optimizer_solves",
            "Portfolio optimizations by objective and outcome (solver status, or error).",
            ["objective", "status"],
            registry=registry,
        )

    def labels(self, objective: str, status: str) -> _LabelledSolve:
        """The series of one objective and outcome."""
        return _LabelledSolve(
            self.seconds.labels(objective, status), self.outcomes.labels(objective, status)
        )


class _LabelledSolve:
    def __init__(self, seconds: Histogram, outcomes: Counter) -> None:
        self._seconds = seconds
        self._outcomes = outcomes

    def observe(self, seconds: float) -> None:
        self._seconds.observe(seconds)
        self._outcomes.inc()


class FeatureFreshnessMetrics:
    """When the served features' newest bar arrived, and how long it took to serve them.

    :meth:`served` is called each time the server publishes a serving state. The lag
    from a bar's arrival to this process serving it is observed once per arrival (a
    reload that brings no newer bar, such as a new model version, observes nothing),
    and only for bars that arrived after this process started: the lag of a table that
    was already there at start would measure the restart, not the pipeline.
    """

    def __init__(self, registry: CollectorRegistry, started_at: float | None = None) -> None:
        # When this process started: its metrics are made before it loads anything.
        self.started_at = time.time() if started_at is None else started_at
        self.last_bar_arrival = Gauge(
            "quantserve_features_last_bar_arrival_timestamp_seconds",
            "When the newest bar of the served features arrived (the features manifest's "
            "last_bar_arrived_at, or its created_at for a table the batch pipeline wrote); "
            "the stalest live worker.",
            ["model"],
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.serving_lag = Histogram(
            "quantserve_features_serving_lag_seconds",
            "From a bar's arrival to this worker serving the features built from it; one "
            "observation per worker and arrival.",
            ["model"],
            buckets=SERVING_LAG_BUCKETS_SECONDS,
            registry=registry,
        )
        self.last_serving_lag = Gauge(
            "quantserve_features_last_serving_lag_seconds",
            "The serving lag of the newest bar that arrived while the server ran (the "
            "slowest live worker).",
            ["model"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self._last_arrival: float | None = None

    def served(self, model: str, arrived_at: float, served_at: float) -> float | None:
        """Record that ``model`` now serves features whose newest bar arrived at ``arrived_at``.

        Both times are Unix seconds. Returns the lag it observed, None when it observed
        none (the same arrival as before, or one from before this process started).
        """
        self.last_bar_arrival.labels(model).set(arrived_at)
        # Declared at 0 from the first state served, so that a first slow arrival is an
        # increase for the alert on it.
        histogram = self.serving_lag.labels(model)
        if arrived_at == self._last_arrival:
            return None
        self._last_arrival = arrived_at
        if arrived_at < self.started_at:
            return None
        # Clocks of other hosts can run a little ahead: never a negative lag.
        lag = max(served_at - arrived_at, 0.0)
        histogram.observe(lag)
        self.last_serving_lag.labels(model).set(lag)
        return lag


class ServiceMetrics:
    """The service's own metrics, beside the HTTP ones (``app.core.http_metrics``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.optimizer_solve_seconds = OptimizerSolveMetrics(registry)
        self.model_info = Gauge(
            "quantserve_model_info",
            "1 for the model version that is serving, with its registry stage.",
            ["name", "version", "stage"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.model_ready = Gauge(
            "quantserve_model_ready",
            "1 when a model is loaded and serving, else 0.",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.model_inference_seconds = Histogram(
            "quantserve_model_inference_seconds",
            "Wall time of one call of the model's serving signature (one batch).",
            ["model", "version"],
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        # Micro-batching of TF Serving predicts (app.services.batching); powers of two
        # up to the 1,024 instances one request may carry.
        batch_buckets = tuple(float(2**k) for k in range(11))
        self.predict_batch_instances = Histogram(
            "quantserve_predict_batch_instances",
            "Instances (rows) in one model call of the TF Serving predict routes.",
            ["model"],
            buckets=batch_buckets,
            registry=registry,
        )
        self.predict_batch_requests = Histogram(
            "quantserve_predict_batch_requests",
            "Predict requests answered by one model call (1: nothing was merged).",
            ["model"],
            buckets=batch_buckets,
            registry=registry,
        )
        self.predict_queue_wait_seconds = Histogram(
            "quantserve_predict_queue_wait_seconds",
            "Time a predict request waited for its batch to start (0 when it skipped the queue).",
            ["model"],
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.predict_refused = Counter(
            "quantserve_predict_refused",
            "Predict requests refused because the model's batch queue was full "
            "(batching.max_enqueued_batches).",
            ["model"],
            registry=registry,
        )
        self.model_load_failures = Counter(
            "quantserve_model_load_failures",
            "Model loads that failed: missing (no version yet), features (the feature table "
            "is missing or unreadable), invalid (an "
            "artifact the pipeline rejects), error (anything else, such as a corrupt "
            "SavedModel).",
            ["reason"],
            registry=registry,
        )
        for reason in LOAD_FAILURE_REASONS:
            self.model_load_failures.labels(reason)
        # Hot reload (app.services.lifecycle): a refused version also counts above.
        self.model_reloads = Counter(
            "quantserve_model_reloads",
            "Model versions or features the server noticed while running and tried to "
            "serve: swapped (verified and serving) or refused (the last good one serves).",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("swapped", "refused"):
            self.model_reloads.labels(outcome)
        # The audit trail (app.services.audit): each action's series are declared at 0
        # when the log opens (declare_audit_action), so a first failure is an increase.
        self.audit_write_failures = Counter(
            "quantserve_audit_write_failures",
            "Audit rows that could not be committed, by action and stage: intent (an admin "
            "action refused), result (answered 503 audit-unavailable), failure_record (a "
            "failed request left unrecorded).",
            ["action", "stage"],
            registry=registry,
        )
        self.audit_write_seconds = Histogram(
            "quantserve_audit_write_seconds",
            "Time of one committed audit write (one transaction), by stage.",
            ["stage"],
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        for stage in AUDIT_WRITE_STAGES:
            self.audit_write_seconds.labels(stage)
        self.model_serving_version = Gauge(
            "quantserve_model_serving_version",
            "The model version number that serves (the highest over live workers).",
            ["model"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.model_last_check = Gauge(
            "quantserve_model_last_check_timestamp_seconds",
            "When the server last looked at the model store, registry and features (the "
            "stalest live worker): a value far behind the poll interval means a stuck poll.",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.model_data_cutoff = Gauge(
            "quantserve_model_data_cutoff_timestamp_seconds",
            "Latest date of the features the serving model forecasts from, the data's as-of "
            "date (00:00 UTC); years back while historical bars are replayed.",
            ["model"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.features = FeatureFreshnessMetrics(registry)
        self.feature_drift = Gauge(
            "quantserve_feature_drift_psi",
            "Population stability index of each feature's live rows against the training "
            "split (>0.25: a large shift): the rows dated after the model's training data "
            f"once {MIN_NEW_DAYS} trading days of them exist, else the latest quarter.",
            ["feature"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.feature_drift_rows = Gauge(
            "quantserve_feature_drift_rows",
            "Feature rows (dates x tickers) the drift PSI was computed on.",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.feature_drift_new_rows = Gauge(
            "quantserve_feature_drift_new_rows",
            "How many of those rows are dated after the serving model's training data: all "
            "of them when the PSI is on the newly arrived data, 0 while it is on the latest "
            f"quarter (fewer than {MIN_NEW_DAYS} trading days have arrived).",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.pipeline_last_run = Gauge(
            "quantserve_pipeline_last_run_timestamp_seconds",
            "When each pipeline step last wrote its output, read from its manifest.",
            ["step"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.pipeline_rows = Gauge(
            "quantserve_pipeline_rows",
            "Rows each pipeline step produced in its last run (ingest: valid prices; "
            "features: feature rows; train: training samples).",
            ["step"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.pipeline_quarantined_rows = Gauge(
            "quantserve_pipeline_quarantined_rows",
            "Rows each pipeline step rejected in its last run (ingest only, so far).",
            ["step"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )

    def declare_audit_action(self, action: str, stages: Iterable[str]) -> None:
        """Show ``action``'s failure series at 0 before any failure, one per stage it writes.

        A counter's first sample at 1 has no earlier value for ``increase()`` to compare
        with, so an alert on it would miss that failure.
        """
        for stage in stages:
            self.audit_write_failures.labels(action, stage)


def instrument_http(app: FastAPI, registry: CollectorRegistry) -> None:
    """HTTP request counts and latencies, exposed with the rest at ``/metrics``.

    A lean pure ASGI middleware (``app.core.http_metrics``) with the series
    prometheus-fastapi-instrumentator used to write, at a fraction of its per-request cost.
    """
    install_http_metrics(app, registry, LATENCY_BUCKETS_SECONDS)
