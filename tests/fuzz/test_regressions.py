"""The exact requests behind the defects schemathesis found (test_schemathesis.py), replayed.

Plain and fast: one app without a model, no fuzzer. Each failed before its fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import BacktestJobSettings, Settings
from app.main import create_app

PROBLEM = "application/problem+json"
TF_SERVING = "tensorflow-serving"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    empty: Path = tmp_path_factory.mktemp("nothing")
    settings = Settings(
        environment="test",
        data_dir=empty,
        models_dir=empty,
        backtests=BacktestJobSettings(max_concurrent=0),
    )
    with TestClient(create_app(settings, registry=CollectorRegistry())) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def openapi(client: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def _documented(openapi: dict[str, Any], method: str, path: str, status: int) -> list[str]:
    """The media types ``openapi`` documents for ``status`` of ``method path``."""
    responses = openapi["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} does not document {status}"
    return list(responses[str(status)].get("content", {}))


@pytest.mark.parametrize(
    ("method", "path", "template", "body", "status"),
    [
        ("POST", "/v1/forecasts", "/v1/forecasts", {"tickers": ["A"]}, 503),  # no model
        ("POST", "/v1/portfolios/optimize", "/v1/portfolios/optimize", {"tickers": ["A"]}, 422),
        ("GET", "/v1/audit?limit=0", "/v1/audit", None, 422),
        ("GET", "/v1/backtests/nope", "/v1/backtests/{job_id}", None, 404),
        ("GET", "/v1/backtests/nope/report", "/v1/backtests/{job_id}/report", None, 404),
        ("DELETE", "/v1/backtests/nope", "/v1/backtests/{job_id}", None, 404),
        (
            "GET",
            "/v1/models/forecaster/versions/0/evaluation",
            "/v1/models/{name}/versions/{version}/evaluation",
            None,
            422,
        ),
    ],
)
def test_problems_are_documented_as_problem_json(
    client: TestClient,
    openapi: dict[str, Any],
    method: str,
    path: str,
    template: str,
    body: Any,
    status: int,
) -> None:
    # Was application/json (text/html for the report) for every documented error, and
    # FastAPI's HTTPValidationError body for 422s: schemathesis' content_type_conformance.
    response = client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert _documented(openapi, method, template, status) == [PROBLEM]
    schema = openapi["paths"][template][method.lower()]["responses"][str(status)]["content"]
    assert schema[PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_no_operation_documents_fastapis_validation_body(openapi: dict[str, Any]) -> None:
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                content = response.get("content", {})
                if TF_SERVING in operation.get("tags", []):
                    # TensorFlow Serving's routes answer an invalid request with 400.
                    assert status != "422", (method, path)
                elif int(status) >= 400 and content:
                    assert list(content) == [PROBLEM], (method, path, status)
    assert "HTTPValidationError" not in openapi["components"]["schemas"]


@pytest.mark.parametrize(
    ("path", "body"),
    [("/v1/backtests", b"i\xd68"), ("/v1/forecasts", b"\x84\x80\x99")],
    ids=["backtests", "forecasts"],
)
def test_a_body_that_is_not_utf8_is_a_documented_422(
    client: TestClient, openapi: dict[str, Any], path: str, body: bytes
) -> None:
    # The bodies schemathesis sent: a bare 400 "There was an error parsing the body",
    # a status neither operation documents.
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "/problems/invalid-request"
    assert "not UTF-8" in problem["detail"]
    assert PROBLEM in _documented(openapi, "POST", path, 422)


def test_a_backtest_links_to_its_job(openapi: dict[str, Any]) -> None:
    links = openapi["paths"]["/v1/backtests"]["post"]["responses"]["202"]["links"]
    assert set(links) == {"follow", "equity", "report", "cancel"}
    for link in links.values():
        assert link["parameters"] == {"job_id": "$response.body#/id"}
        path, method = link["operationRef"].removeprefix("#/paths/").rsplit("/", 1)
        assert method in openapi["paths"][path.replace("~1", "/")]
