"""End to end on real data: ingest -> Spark features -> TensorFlow SavedModel -> REST.

Runs the real pipeline (local Spark, a few epochs of real TensorFlow training) on a
slice of the embedded S&P 500 data set, then starts the app with ``TestClient`` (as a
context manager, so the lifespan loads the model) and calls every endpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import Settings
from app.main import create_app
from tests.conftest import PIPELINE_TICKERS

pytestmark = pytest.mark.slow

TICKERS = PIPELINE_TICKERS  # the slice the session's `pipeline_dir` fixture trains on
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def client(pipeline_dir: Path):
    settings = Settings(
        environment="test", data_dir=pipeline_dir / "data", models_dir=pipeline_dir / "models"
    )
    with TestClient(create_app(settings, registry=CollectorRegistry())) as test_client:
        yield test_client


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model"] == {"name": "forecaster", "version": 1}


def test_models_lists_versions_and_metadata(client: TestClient, pipeline_dir: Path) -> None:
    body = client.get("/v1/models").json()
    (model,) = body["models"]
    assert model["name"] == "forecaster"
    assert model["versions"] == [1]
    assert model["serving_version"] == 1
    metadata = model["metadata"]
    on_disk = json.loads(
        (pipeline_dir / "models" / "forecaster" / "1" / "metadata.json").read_text()
    )
    assert metadata == on_disk
    assert metadata["split"]["train"][0] >= "2015-12-01"  # after the 252-day warm-up


def test_forecasts_are_finite_dated_and_labelled(client: TestClient) -> None:
    response = client.post("/v1/forecasts", json={"tickers": ["AAPL", "XOM"]})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == {"name": "forecaster", "version": 1}
    assert body["as_of"] == "2018-12-31"
    assert body["horizons"] == {"expected_return_days": 5, "volatility_days": 21}
    assert [f["ticker"] for f in body["forecasts"]] == ["AAPL", "XOM"]
    for forecast in body["forecasts"]:
        assert forecast["as_of"] == "2018-12-31"
        assert np.isfinite(forecast["expected_log_return"])
        # 21-day volatility of a large-cap stock: between 1% and 40%.
        assert 0.01 < forecast["volatility"] < 0.4
        assert forecast["annualized_volatility"] == pytest.approx(
            forecast["volatility"] * np.sqrt(12)
        )
    everything = client.post("/v1/forecasts", json={}).json()
    assert [f["ticker"] for f in everything["forecasts"]] == sorted(TICKERS)


@pytest.mark.parametrize("objective", ["min_variance", "max_sharpe", "mean_variance"])
def test_optimize_respects_budget_and_bounds(client: TestClient, objective: str) -> None:
    request = {
        "tickers": TICKERS,
        "objective": objective,
        "risk_aversion": 2.0,
        "constraints": {"long_only": True, "min_weight": 0.05, "max_weight": 0.4},
    }
    if objective == "max_sharpe":
        # the model may forecast few positive returns; a low enough rate keeps it solvable
        request["risk_free_rate"] = -0.5
    response = client.post("/v1/portfolios/optimize", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    weights = np.array([body["weights"][t] for t in TICKERS])
    assert weights.sum() == pytest.approx(1.0, abs=1e-6)
    assert (weights >= 0.05 - 1e-6).all()
    assert (weights <= 0.4 + 1e-6).all()
    assert body["volatility"] > 0
    assert sum(body["risk_contributions"].values()) == pytest.approx(body["volatility"], rel=1e-5)
    assert body["solver"]["status"] == "optimal"
    assert body["solver"]["name"] in {"CLARABEL", "SCS"}
    assert body["model"] == {"name": "forecaster", "version": 1}
    assert body["as_of"] == "2018-12-31"


def test_min_variance_has_the_lowest_risk_of_any_objective(client: TestClient) -> None:
    """On the same served covariance, no other portfolio is less volatile."""

    def volatility(request: dict[str, object]) -> float:
        response = client.post("/v1/portfolios/optimize", json={"tickers": TICKERS, **request})
        assert response.status_code == 200, response.text
        return float(response.json()["volatility"])

    lowest = volatility({"objective": "min_variance"})
    others = [
        volatility({"objective": "mean_variance", "risk_aversion": 2.0}),
        volatility({"objective": "max_sharpe", "risk_free_rate": -0.5}),
        volatility({"objective": "min_variance", "constraints": {"max_weight": 0.25}}),
    ]
    assert all(lowest <= other + 1e-7 for other in others), (lowest, others)
    forecasts = client.post("/v1/forecasts", json={"tickers": TICKERS}).json()["forecasts"]
    # holding one stock alone is feasible, so min variance is at most the least volatile one
    assert lowest <= min(f["annualized_volatility"] for f in forecasts) + 1e-7


def test_unknown_ticker_is_a_404_problem_that_names_it(client: TestClient) -> None:
    response = client.post("/v1/forecasts", json={"tickers": ["AAPL", "NOPE"]})
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "/problems/unknown-ticker"
    assert body["unknown_tickers"] == ["NOPE"]
    assert "NOPE" in body["detail"]
    optimize = client.post("/v1/portfolios/optimize", json={"tickers": ["AAPL", "NOPE"]})
    assert optimize.status_code == 404
    assert optimize.json()["unknown_tickers"] == ["NOPE"]


def test_impossible_constraints_are_a_422_that_says_why(client: TestClient) -> None:
    response = client.post(
        "/v1/portfolios/optimize",
        json={"tickers": TICKERS, "constraints": {"max_weight": 0.1}},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "/problems/invalid-constraints"
    assert "max_weight" in body["detail"]
    assert "5" in body["detail"]


def test_bad_bodies_are_422_problems_with_field_errors(client: TestClient) -> None:
    cases = [
        {"tickers": ["AAPL"]},  # fewer than two
        {"tickers": ["AAPL", "AAPL"]},  # repeated
        {"tickers": TICKERS, "objective": "max_return"},
        {"tickers": TICKERS, "risk_aversion": -1},
        {"tickers": TICKERS, "leverage": 2},  # unknown field
    ]
    for body in cases:
        response = client.post("/v1/portfolios/optimize", json=body)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == PROBLEM
        problem = response.json()
        assert problem["type"] == "/problems/invalid-request"
        assert problem["errors"], body
    broken = client.post(
        "/v1/forecasts", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert broken.headers["content-type"] == PROBLEM


def test_unknown_routes_and_methods_are_problems(client: TestClient) -> None:
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    wrong_method = client.get("/v1/forecasts")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == PROBLEM


def test_metrics_expose_http_and_optimizer_series(client: TestClient) -> None:
    client.post("/v1/portfolios/optimize", json={"tickers": TICKERS})
    text = client.get("/metrics").text
    # Labels print sorted; no version was promoted, so the newest serves as a candidate.
    assert 'quantserve_model_info{name="forecaster",stage="candidate",version="1"} 1.0' in text
    assert "quantserve_model_ready 1.0" in text
    assert (
        'quantserve_optimizer_solve_seconds_count{objective="min_variance",status="optimal"}'
        in text
    )
    assert "quantserve_http_request_duration_seconds_bucket" in text
    assert 'le="0.001"' in text  # buckets fine enough for a millisecond p99


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/readyz", "/v1/models", "/v1/forecasts", "/v1/portfolios/optimize"} <= set(
        paths
    )
    assert client.get("/docs").status_code == 200


def test_max_sharpe_without_positive_excess_return_says_what_to_do(client: TestClient) -> None:
    response = client.post(
        "/v1/portfolios/optimize",
        json={"tickers": TICKERS, "objective": "max_sharpe", "risk_free_rate": 0.99},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "/problems/no-positive-excess-return"
    assert "min_variance" in body["detail"]
