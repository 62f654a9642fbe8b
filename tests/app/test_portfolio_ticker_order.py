"""Allocations from the model do not depend on the order the tickers are listed in.

The trailing risk estimate is cached per set of tickers and permuted into each request's
order; these tests solve the same request with the tickers in two orders on the real
pipeline's model (5 stocks) and compare weights ticker by ticker.
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
