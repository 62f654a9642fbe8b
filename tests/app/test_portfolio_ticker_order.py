"""Allocations from the model do not depend on the order the tickers are listed in.

The trailing risk estimate is cached per set of tickers and permuted into each request's
order; these tests solve the same request with the tickers in two orders on the real
pipeline's model (5 stocks) and compare weights ticker by ticker. An error about one
ticker of the estimate names that ticker, not its place in either order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import Settings
from app.main import create_app
from tests.conftest import PIPELINE_TICKERS
from tests.training.synthetic import build_model_store, synthetic_features, write_feature_table
from training import schema

RISK_MODELS: list[dict[str, Any]] = [
    {"method": "ledoit_wolf"},
    {"method": "ewma", "half_life": 63},
    {"method": "pca_factor", "n_factors": 2},
]


@pytest.fixture(scope="module")
def client(pipeline_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        environment="test",
        data_dir=pipeline_dir / "data",
        models_dir=pipeline_dir / "models",
        audit={"url": f"sqlite:///{tmp_path_factory.mktemp('audit') / 'audit.db'}"},
    )
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        yield client


@pytest.mark.parametrize("risk_model", RISK_MODELS, ids=lambda r: r["method"])
@pytest.mark.parametrize("objective", ["min_variance", "max_sharpe"])
def test_weights_are_the_same_whatever_the_ticker_order(
    client: TestClient, risk_model: dict[str, Any], objective: str
) -> None:
    def solve(tickers: list[str]) -> dict[str, Any]:
        response = client.post(
            "/v1/portfolios/optimize",
            json={
                "tickers": tickers,
                "objective": objective,
                "risk_model": risk_model,
                "constraints": {"max_weight": 0.5},
            },
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    forward = solve(PIPELINE_TICKERS)
    backward = solve(PIPELINE_TICKERS[::-1])

    assert list(backward["weights"]) == PIPELINE_TICKERS[::-1]
    for ticker in PIPELINE_TICKERS:
        assert backward["weights"][ticker] == pytest.approx(forward["weights"][ticker], abs=1e-6)
    assert backward["volatility"] == pytest.approx(forward["volatility"], rel=1e-6)
    assert backward["expected_return"] == pytest.approx(forward["expected_return"], rel=1e-6)


def test_one_estimate_serves_every_order_of_the_same_tickers(client: TestClient) -> None:
    portfolios = client.app.state.lifecycle.current.portfolios  # type: ignore[attr-defined]
    before = portfolios._trailing.cache_info()
    orders = [PIPELINE_TICKERS, PIPELINE_TICKERS[::-1], sorted(PIPELINE_TICKERS, key=len)]
    for tickers in orders:
        body = {"tickers": tickers, "risk_model": {"method": "ewma", "half_life": 21}}
        assert client.post("/v1/portfolios/optimize", json=body).status_code == 200

    after = portfolios._trailing.cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == len(orders) - 1


@pytest.fixture(scope="module")
def stale_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A tiny model over T0, T1 and T2, served with features in which T1's price never moves."""
    root = build_model_store(tmp_path_factory.mktemp("stale"), versions=1)
    features = synthetic_features(n_days=300)
    features.loc[features[schema.TICKER] == "T1", "log_return_1d"] = 0.0
    stale = root / "stale"
    write_feature_table(features, stale / "features")
    settings = Settings(environment="test", data_dir=stale, models_dir=root / "models")
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        yield client


@pytest.mark.parametrize(
    ("risk_model", "fragment"),
    [
        ({"method": "ledoit_wolf"}, "the returns of T1 are constant"),
        ({"method": "pca_factor", "n_factors": 1}, "the modelled volatility of T1 is zero"),
    ],
    ids=["ledoit_wolf", "pca_factor"],
)
def test_an_error_in_the_sorted_estimate_names_the_ticker_not_its_place(
    stale_client: TestClient, risk_model: dict[str, Any], fragment: str
) -> None:
    # T1's trailing returns are constant (stale data), so its correlation, or its
    # factor model's volatility, is refused. The estimate's columns are sorted (T1
    # second); the request lists T1 third, and a position applied to the wrong order
    # would name T0.
    response = stale_client.post(
        "/v1/portfolios/optimize", json={"tickers": ["T2", "T0", "T1"], "risk_model": risk_model}
    )

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "/problems/invalid-constraints"
    assert fragment in problem["detail"], problem["detail"]
    assert "asset" not in problem["detail"]
    assert problem["tickers"] == ["T1"]
