"""The server before any model exists: alive, not ready, and clear about why."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import Settings
from app.main import create_app


def _client(tmp_path: Path) -> TestClient:
    settings = Settings(
        environment="test", data_dir=tmp_path / "data", models_dir=tmp_path / "models"
    )
    return TestClient(create_app(settings, registry=CollectorRegistry()))


def test_without_a_model_the_server_is_live_but_not_ready(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "quantserve pipeline" in ready.json()["reason"]
        models = client.get("/v1/models").json()["models"]
        assert models == [
            {
                "name": "forecaster",
                "versions": [],
                "stages": [],
                "serving_version": None,
                "metadata": None,
            }
        ]
        assert "quantserve_model_ready 0.0" in client.get("/metrics").text


def test_forecasts_and_allocations_are_503_problems_until_a_model_loads(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        for path, body in [
            ("/v1/forecasts", {"tickers": ["AAPL", "MSFT"]}),
            ("/v1/portfolios/optimize", {"tickers": ["AAPL", "MSFT"]}),
        ]:
            response = client.post(path, json=body)
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"] == "30"
            problem = response.json()
            assert problem["type"] == "/problems/model-not-loaded"
            assert problem["instance"] == path
            assert "quantserve pipeline" in problem["detail"]
