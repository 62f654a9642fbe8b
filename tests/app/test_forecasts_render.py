"""``POST /v1/forecasts`` answers bytes rendered once per model: the same JSON pydantic renders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import Settings
from app.main import create_app
from app.schemas.forecasts import ForecastResponse
from app.services.errors import UnknownTicker
from app.services.feature_store import FeatureStore
from app.services.forecasts import ForecastService
from app.services.model_registry import load_model
from tests.training.synthetic import build_model_store


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny version of "forecaster" over tickers T0, T1 and T2."""
    return build_model_store(tmp_path_factory.mktemp("render"), versions=1)


@pytest.fixture(scope="module")
def service(root: Path) -> ForecastService:
    model = load_model(root / "models", "forecaster")
    return ForecastService(model, FeatureStore.load(root / "data" / "features"))


@pytest.fixture(scope="module")
def client(root: Path) -> Iterator[TestClient]:
    settings = Settings(environment="test", data_dir=root / "data", models_dir=root / "models")
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        yield client


@pytest.mark.parametrize("tickers", [None, ["T0", "T1", "T2"], ["T2", "T0"], ["T1"], []])
def test_the_joined_bytes_are_what_pydantic_renders(
    service: ForecastService, tickers: list[str] | None
) -> None:
    model = service.response(tickers)
    rendered = service.response_json(tickers)
    assert rendered == model.model_dump_json().encode()
    # and they parse back to the same numbers, float for float
    assert ForecastResponse.model_validate_json(rendered) == model
    assert json.loads(rendered) == model.model_dump(mode="json")
    expected = service.tickers if tickers is None else tickers
    assert [f["ticker"] for f in json.loads(rendered)["forecasts"]] == expected


def test_all_tickers_are_rendered_once_not_per_call(service: ForecastService) -> None:
    assert service.response_json() is service.response_json()
    assert len(json.loads(service.response_json())["forecasts"]) == 3


def test_unknown_tickers_raise_as_before(service: ForecastService) -> None:
    with pytest.raises(UnknownTicker) as raised:
        service.response_json(["T0", "NOPE", "ALSO"])
    assert raised.value.unknown == ["NOPE", "ALSO"]
    assert raised.value.available == ["T0", "T1", "T2"]


def test_the_http_body_is_the_rendered_one(client: TestClient) -> None:
    served: ForecastService = client.app.state.lifecycle.current.forecasts  # type: ignore[attr-defined]
    for body, tickers in (({}, None), ({"tickers": ["T2", "T0"]}, ["T2", "T0"])):
        response = client.post("/v1/forecasts", json=body)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.content == served.response(tickers).model_dump_json().encode()
        assert int(response.headers["content-length"]) == len(response.content)
        ForecastResponse.model_validate_json(response.content)


def test_an_unknown_ticker_is_still_a_404_problem(client: TestClient) -> None:
    response = client.post("/v1/forecasts", json={"tickers": ["T0", "NOPE"]})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["unknown_tickers"] == ["NOPE"]
    assert problem["available_tickers"] == ["T0", "T1", "T2"]


def test_the_openapi_schema_still_describes_the_response(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/forecasts"]["post"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ForecastResponse"}
    assert {"404", "422", "503"} <= set(operation["responses"])
