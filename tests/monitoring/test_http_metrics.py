"""The HTTP series: labelled by route template, bounded labels, sizes and latencies counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from app.core.config import Settings
from app.core.http_metrics import install_http_metrics
from app.core.metrics import LATENCY_BUCKETS_SECONDS
from app.main import create_app


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(text: str, name: str, **labels: str) -> float:
    return _samples(text).get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The real app without a model (requests still route, and fail as they should)."""
    settings = Settings(
        environment="test", data_dir=tmp_path / "data", models_dir=tmp_path / "models"
    )
    with TestClient(create_app(settings, registry=CollectorRegistry())) as test_client:
        yield test_client


def test_requests_are_labelled_by_route_template_and_status(client: TestClient) -> None:
    client.get("/v1/models/foo")  # no such model: 404 from a matched route
    client.get("/v1/models/bar")
    client.get("/no/such/path")  # no route at all
    client.post("/healthz")  # 405
    client.get("/metrics")  # scrapes are not counted
    text = client.get("/metrics").text
    total = "quantserve_http_requests_total"
    assert _value(text, total, method="GET", status="404", handler="/v1/models/{name}") == 2
    assert _value(text, total, method="GET", status="404", handler="none") == 1
    assert _value(text, total, method="POST", status="405", handler="/healthz") == 1
    assert not [key for key in _samples(text) if ("handler", "/metrics") in key[1]]
    assert not [key for key in _samples(text) if ("handler", "/v1/models/foo") in key[1]]


def test_a_method_a_client_invents_is_not_a_label_value(client: TestClient) -> None:
    client.request("BREW", "/healthz")
    text = client.get("/metrics").text
    assert _value(
        text, "quantserve_http_requests_total", method="other", status="405", handler="/healthz"
    )
    assert "BREW" not in text


def test_sizes_and_latencies_are_recorded(client: TestClient) -> None:
    body = b'{"tickers": ["AAPL"]}'
    answer = client.post(
        "/v1/forecasts", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 503  # no model: still answered and measured
    text = client.get("/metrics").text
    handler = "/v1/forecasts"
    assert _value(text, "quantserve_http_request_size_bytes_sum", handler=handler) == len(body)
    assert _value(text, "quantserve_http_response_size_bytes_sum", handler=handler) == len(
        answer.content
    )
    count = _value(
        text, "quantserve_http_request_duration_seconds_count", method="POST", handler=handler
    )
    assert count == 1
    assert _value(text, "quantserve_http_request_duration_highr_seconds_count") >= 1
    inf = _value(
        text,
        "quantserve_http_request_duration_seconds_bucket",
        method="POST",
        handler=handler,
        le="+Inf",
    )
    assert inf == 1
    buckets = {
        labels
        for (name, labels) in _samples(text)
        if name == "quantserve_http_request_duration_seconds_bucket"
        and ("handler", handler) in labels
    }
    assert len(buckets) == len(LATENCY_BUCKETS_SECONDS) + 1


def test_an_unhandled_error_counts_as_a_500() -> None:
    app = FastAPI()

    @app.get("/boom/{n}")
    async def boom(n: int) -> None:
        raise RuntimeError("boom")

    registry = CollectorRegistry()
    install_http_metrics(app, registry, LATENCY_BUCKETS_SECONDS)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/boom/1").status_code == 500
        text = client.get("/metrics").text
    assert _value(
        text, "quantserve_http_requests_total", method="GET", status="500", handler="/boom/{n}"
    )
