"""The server loads the registry's production version, not merely the newest export."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import Settings
from app.main import create_app
from tests.training.synthetic import build_model_store
from training.registry import ModelRegistry


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny versions of "forecaster", none promoted."""
    return build_model_store(tmp_path_factory.mktemp("serving"), versions=2)


def _client(root: Path) -> TestClient:
    settings = Settings(environment="test", data_dir=root / "data", models_dir=root / "models")
    return TestClient(create_app(settings, registry=CollectorRegistry()))


def test_without_a_registry_the_newest_version_serves(root: Path) -> None:
    with _client(root) as client:
        assert client.get("/readyz").json()["model"]["version"] == 2


def test_the_production_version_serves_and_stages_are_listed(root: Path) -> None:
    ModelRegistry(root / "models" / "forecaster").promote(1)
    with _client(root) as client:
        assert client.get("/readyz").json()["model"]["version"] == 1
        (model,) = client.get("/v1/models").json()["models"]
        assert model["serving_version"] == 1
        assert [(s["version"], s["stage"]) for s in model["stages"]] == [
            (1, "production"),
            (2, "candidate"),
        ]
        forecast = client.post("/v1/forecasts", json={"tickers": ["T0"]}).json()
        assert forecast["model"] == {"name": "forecaster", "version": 1}
        quantiles = forecast["forecasts"][0]["log_return_quantiles"]
        assert quantiles["q05"] <= quantiles["q50"] <= quantiles["q95"]
