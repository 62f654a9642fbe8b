"""The server before any model exists: alive, not ready, and clear about why.

``/readyz`` is open, so its reason is plain words: no absolute path, no exception text.
The details (the exception, the folders) go to the log, once per failure.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
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


def _assert_no_internals(text: str, folder: Path, exc_type: type[BaseException]) -> None:
    """``text`` names neither ``folder`` (nor any absolute path in it) nor ``exc_type``."""
    assert str(folder) not in text
    assert folder.name not in text  # not even the temp folder's own name
    assert "models_dir=" not in text
    assert "data_dir=" not in text
    assert exc_type.__name__ not in text


def _load_failure(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    (record,) = [
        r
        for r in caplog.records
        if r.name == "app.services.lifecycle" and r.levelno >= logging.WARNING
    ]
    return record


def test_readyz_says_in_plain_words_that_no_model_is_built(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="app.services.lifecycle"),
        _client(tmp_path) as client,
    ):
        bodies = [client.get("/readyz") for _ in range(3)]
    assert {ready.status_code for ready in bodies} == {503}
    body = bodies[0].json()
    assert body == {
        "status": "not ready",
        "reason": "no model version is loaded yet: run `quantserve pipeline` "
        "(or `quantserve train`) to build one",
    }
    # The log has what the probe leaves out, once (at start), however often it is probed.
    record = _load_failure(caplog)
    assert record.levelno == logging.WARNING
    assert str(tmp_path / "models") in record.getMessage()
    assert record.load_failure == "missing"  # type: ignore[attr-defined]


def test_readyz_hides_a_corrupt_model_behind_the_server_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    version = tmp_path / "models" / "forecaster" / "1"
    version.mkdir(parents=True)
    (version / "metadata.json").write_text("{}")
    (version / "saved_model.pb").write_bytes(b"not a SavedModel")
    with (
        caplog.at_level(logging.WARNING, logger="app.services.lifecycle"),
        _client(tmp_path) as client,
    ):
        ready = client.get("/readyz")
        forecasts = client.post("/v1/forecasts", json={"tickers": ["AAPL", "MSFT"]})
        optimize = client.post("/v1/portfolios/optimize", json={"tickers": ["AAPL", "MSFT"]})
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "not ready",
        "reason": "model forecaster version 1 was refused (it failed to load), so nothing "
        "serves yet; see the server log for the details",
    }
    # The details are logged, at ERROR with the traceback, and kept out of the bodies.
    record = _load_failure(caplog)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.exc_info[0] is not None
    exc_type = record.exc_info[0]
    assert str(tmp_path / "models") in record.getMessage()
    _assert_no_internals(ready.text, tmp_path, exc_type)
    # Authenticated callers get the same words in their 503 problems: no paths either.
    for response in (forecasts, optimize):
        assert response.status_code == 503
        assert response.json()["type"] == "/problems/model-not-loaded"
        assert "model forecaster version 1 was refused" in response.json()["detail"]
        _assert_no_internals(response.text, tmp_path, exc_type)


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
            assert str(tmp_path) not in problem["detail"]
