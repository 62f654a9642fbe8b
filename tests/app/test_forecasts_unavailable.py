"""A ticker whose latest features are incomplete is never dropped from forecasts silently.

T1's last row lacks a feature: it is forecast from its latest complete window, with that
window's (older) date. T2 never has ``lookback`` complete rows in a row: it is listed as
unavailable with the reason, and a request naming it gets a problem saying why.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import Settings
from app.main import create_app
from app.schemas.forecasts import ForecastResponse
from app.services.errors import UnknownTicker
from app.services.feature_store import FeatureStore
from app.services.forecasts import ForecastService
from app.services.model_registry import LoadedModel, load_model
from tests.training.synthetic import build_model_store, write_feature_table
from training import schema
from training.features import load_features
from training.model import RETURN_OUTPUT

LOOKBACK = 5  # build_model_store's tiny versions


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny version of "forecaster" over features where T1 and T2 have gaps."""
    built = build_model_store(tmp_path_factory.mktemp("unavailable-store"), versions=1)
    root = tmp_path_factory.mktemp("unavailable")
    shutil.copytree(built / "models", root / "models")
    table = load_features(built / "data" / "features")
    column = schema.FEATURE_COLUMNS[0]
    t1 = table.index[table[schema.TICKER] == "T1"]
    t2 = table.index[table[schema.TICKER] == "T2"]
    table.loc[t1[-1], column] = np.nan
    table.loc[t2[:: LOOKBACK - 1], column] = np.nan  # never LOOKBACK complete rows in a row
    write_feature_table(table.drop(columns=[schema.YEAR]), root / "data" / "features")
    return root


@pytest.fixture(scope="module")
def dates(root: Path) -> list[date]:
    table = load_features(root / "data" / "features")
    return [d.date() for d in sorted(pd.to_datetime(table[schema.DATE].unique()))]


@pytest.fixture(scope="module")
def service(root: Path) -> ForecastService:
    model = load_model(root / "models", "forecaster")
    return ForecastService(model, FeatureStore.load(root / "data" / "features"))


@pytest.fixture(scope="module")
def client(root: Path) -> Iterator[TestClient]:
    settings = Settings(environment="test", data_dir=root / "data", models_dir=root / "models")
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        yield client


def test_a_missing_last_value_serves_the_latest_complete_window_with_its_date(
    service: ForecastService, dates: list[date]
) -> None:
    assert service.tickers == ["T0", "T1"]
    t0, t1 = service.get(["T0", "T1"])
    assert t0.as_of == dates[-1]
    assert t1.as_of == dates[-2]
    assert service.as_of == dates[-1]


def test_a_ticker_without_a_complete_window_is_listed_as_unavailable(
    service: ForecastService,
) -> None:
    assert list(service.unavailable) == ["T2"]
    assert f"{LOOKBACK} consecutive" in service.unavailable["T2"]
    listed = service.response().unavailable
    assert [(u.ticker, u.reason) for u in listed] == [("T2", service.unavailable["T2"])]
    # a request naming tickers lists none: a named unavailable ticker is an error
    assert service.response(["T0"]).unavailable == []


@pytest.mark.parametrize("tickers", [None, ["T1", "T0"], ["T0"], []])
def test_the_joined_bytes_are_still_what_pydantic_renders(
    service: ForecastService, tickers: list[str] | None
) -> None:
    model = service.response(tickers)
    rendered = service.response_json(tickers)
    assert rendered == model.model_dump_json().encode()
    assert ForecastResponse.model_validate_json(rendered) == model


def test_naming_an_unavailable_ticker_says_why(service: ForecastService) -> None:
    for call in (service.response_json, service.get, service.annualized):
        with pytest.raises(UnknownTicker) as raised:
            call(["T0", "T2", "NOPE"])
        assert raised.value.unknown == ["T2", "NOPE"]
        assert raised.value.unavailable == {"T2": service.unavailable["T2"]}
        assert service.unavailable["T2"] in str(raised.value)


@dataclass(frozen=True)
class _NaNForRow(LoadedModel):
    """The real model, but its expected return for batch row ``row`` is NaN."""

    row: int = 0

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        outputs = super().predict(features)
        outputs[RETURN_OUTPUT] = outputs[RETURN_OUTPUT].copy()
        outputs[RETURN_OUTPUT][self.row] = np.nan
        return outputs


def test_a_non_finite_forecast_is_listed_as_unavailable(root: Path) -> None:
    model = load_model(root / "models", "forecaster")
    poisoned = _NaNForRow(**{f.name: getattr(model, f.name) for f in fields(model)}, row=1)
    service = ForecastService(poisoned, FeatureStore.load(root / "data" / "features"))
    assert service.tickers == ["T0"]
    assert sorted(service.unavailable) == ["T1", "T2"]
    assert "not finite" in service.unavailable["T1"]
    assert service.response_json() == service.response().model_dump_json().encode()


def test_the_http_answer_lists_unavailable_tickers(client: TestClient, dates: list[date]) -> None:
    response = client.post("/v1/forecasts", json={})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [f["ticker"] for f in body["forecasts"]] == ["T0", "T1"]
    assert [f["as_of"] for f in body["forecasts"]] == [str(dates[-1]), str(dates[-2])]
    assert [u["ticker"] for u in body["unavailable"]] == ["T2"]
    assert body["as_of"] == str(dates[-1])


def test_an_http_request_naming_an_unavailable_ticker_is_a_problem_with_the_reason(
    client: TestClient,
) -> None:
    response = client.post("/v1/forecasts", json={"tickers": ["T0", "T2"]})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["unknown_tickers"] == ["T2"]
    assert problem["available_tickers"] == ["T0", "T1"]
    [entry] = problem["unavailable_tickers"]
    assert entry["ticker"] == "T2"
    assert f"{LOOKBACK} consecutive" in entry["reason"]
    assert entry["reason"] in problem["detail"]


def test_the_optimizer_uses_a_ticker_with_an_older_window(
    client: TestClient, dates: list[date]
) -> None:
    response = client.post(
        "/v1/portfolios/optimize", json={"tickers": ["T1", "T0"], "objective": "min_variance"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["inputs"] == "model"
    assert body["as_of"] == str(dates[-1])
    refused = client.post(
        "/v1/portfolios/optimize", json={"tickers": ["T0", "T2"], "objective": "min_variance"}
    )
    assert refused.status_code == 404
    assert json.loads(refused.content)["unavailable_tickers"][0]["ticker"] == "T2"
