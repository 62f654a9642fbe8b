"""HTTP metrics as one pure ASGI middleware, and the ``/metrics`` endpoint.

The series are the ones prometheus-fastapi-instrumentator exposed before (same names,
labels and buckets), so dashboards and alerts read them unchanged:

- ``quantserve_http_requests_total`` (``method``, ``status``, ``handler``);
- ``quantserve_http_request_duration_seconds`` (``method``, ``handler``);
- ``quantserve_http_request_duration_highr_seconds`` (all requests together);
- ``quantserve_http_request_size_bytes`` and ``quantserve_http_response_size_bytes``
  (``handler``; summaries: count and sum).

It replaced the instrumentator because of what that cost on every request (about
60-80 µs of CPU, measured in-process on ``/v1/forecasts``; see docs/benchmarks.md): a
second routing pass over every route to find the route template, a ``Request`` and a
``Response`` object built only to read two headers, and an ``asyncio.gather`` of no
coroutines. Here the template comes from ``scope["route"]``, which the router already
set, and each combination of labels is looked up once.

``handler`` is the route template (``/v1/models/{name}:predict``), ``none`` when no
route matched; ``method`` is one of the standard methods or ``other``, so neither label
takes values a client can invent.
"""

from __future__ import annotations

import os
import time
from typing import Final

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    Summary,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METRICS_PATH: Final = "/metrics"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """The HTTP series on one registry, with each label combination's children cached.

    ``prometheus_client``'s ``labels()`` takes a lock and builds a key on every call;
    the cache makes a request's five observations plain method calls.
    """

    def __init__(self, registry: CollectorRegistry, buckets: tuple[float, ...]) -> None:
        self.requests = Counter(
            "quantserve_http_requests",
            "Total number of requests by method, status and handler.",
            ["method", "status", "handler"],
            registry=registry,
        )
        self.request_size = Summary(
            "quantserve_http_request_size_bytes",
            "Content length of incoming requests by handler (the Content-Length header; "
            "0 without one).",
            ["handler"],
            registry=registry,
        )
        self.response_size = Summary(
            "quantserve_http_response_size_bytes",
            "Body bytes of outgoing responses by handler.",
            ["handler"],
            registry=registry,
        )
        self.duration_all = Histogram(
            "quantserve_http_request_duration_highr_seconds",
            "Latency of all requests together (no labels).",
            buckets=buckets,
            registry=registry,
        )
        self.duration = Histogram(
            "quantserve_http_request_duration_seconds",
            "Latency by method and handler.",
            ["method", "handler"],
            buckets=buckets,
            registry=registry,
        )
        self._series: dict[tuple[str, str, int], _Series] = {}

    def observe(
        self,
        method: str,
        handler: str,
        status: int,
        seconds: float,
        request_bytes: int,
        response_bytes: int,
    ) -> None:
        """Record one answered request."""
        key = (method, handler, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self, method, handler, status)
        series.requests.inc()
        series.request_size.observe(request_bytes)
        series.response_size.observe(response_bytes)
        series.duration.observe(seconds)
        self.duration_all.observe(seconds)


class _Series:
    """The children of one (method, handler, status)."""

    __slots__ = ("duration", "request_size", "requests", "response_size")

    def __init__(self, metrics: HttpMetrics, method: str, handler: str, status: int) -> None:
        self.requests = metrics.requests.labels(method, str(status), handler)
        self.request_size = metrics.request_size.labels(handler)
        self.response_size = metrics.response_size.labels(handler)
        self.duration = metrics.duration.labels(method, handler)


class HttpMetricsMiddleware:
    """Count and time every HTTP request but the scrapes themselves."""

    def __init__(
        self, app: ASGIApp, metrics: HttpMetrics, excluded: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.excluded = excluded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app starts a response
        response_bytes = 0

        async def send_observed(message: Message) -> None:
            nonlocal status, response_bytes
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                response_bytes += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            # The router puts the matched route in the scope; no route, no template.
            route = scope.get("route")
            handler: str = getattr(route, "path", None) or "none"
            if handler not in self.excluded:
                method = scope["method"]
                self.metrics.observe(
                    method if method in _METHODS else "other",
                    handler,
                    status,
                    time.perf_counter() - started,
                    _content_length(scope),
                    response_bytes,
                )


def _content_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


def metrics_endpoint(registry: CollectorRegistry) -> Response:
    """The exposition of ``registry``, or of every worker's files in multiprocess mode."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def install_http_metrics(
    app: FastAPI, registry: CollectorRegistry, buckets: tuple[float, ...]
) -> HttpMetrics:
    """Add the middleware and ``GET /metrics`` (outside the OpenAPI schema)."""
    metrics = HttpMetrics(registry, buckets)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics, excluded=frozenset({METRICS_PATH}))

    def scrape() -> Response:
        return metrics_endpoint(registry)

    # sync: reading every worker's files is blocking I/O, so it runs in the thread pool.
    app.add_api_route(METRICS_PATH, scrape, methods=["GET"], include_in_schema=False)
    return metrics
