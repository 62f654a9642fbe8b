"""Prometheus metrics on an injected registry (tests build a fresh one per app)."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_fastapi_instrumentator import Instrumentator

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


class ServiceMetrics:
    """The service's own metrics, beside the HTTP ones from the instrumentator."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.optimizer_solve_seconds = Histogram(
            "quantserve_optimizer_solve_seconds",
            "Wall time of one portfolio optimization, by objective and outcome.",
            ["objective", "status"],
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.model_info = Gauge(
            "quantserve_model_info",
            "1 for the model version that is serving.",
            ["name", "version"],
            registry=registry,
        )
        self.model_ready = Gauge(
            "quantserve_model_ready",
            "1 when a model is loaded and serving, else 0.",
            registry=registry,
        )


def instrument_http(app: FastAPI, registry: CollectorRegistry) -> None:
    """HTTP request counts and latencies, exposed with the rest at ``/metrics``."""
    Instrumentator(
        registry=registry,
        excluded_handlers=["/metrics"],
        should_group_status_codes=False,
    ).instrument(
        app,
        metric_namespace="quantserve",
        latency_highr_buckets=LATENCY_BUCKETS_SECONDS,
        latency_lowr_buckets=LATENCY_BUCKETS_SECONDS,
    ).expose(app, endpoint="/metrics", include_in_schema=False)
