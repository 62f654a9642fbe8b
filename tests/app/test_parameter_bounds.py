"""Numeric query and path parameters are bounded at the edge: a huge one is a 4xx, never a 500.

Found by fuzzing with schemathesis: ``GET /v1/audit?cursor=1606429250434622291968``
reached SQLite, whose integers are 64-bit, and answered 500. Every integer parameter in
the OpenAPI schema is sent past that range here, so a new route cannot bring it back.
The TensorFlow Serving routes take their version as text (their own error shape): see
``tests/app/test_tfserving.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import Settings
from app.main import create_app

PROBLEM = "application/problem+json"
PAST_INT64 = 1606429250434622291968  # the value schemathesis found; > 2**63 - 1
LARGEST_ROW_ID = 2**63 - 1  # SQLite's largest integer, the highest cursor there can be
HUGE_VALUES = [str(PAST_INT64), "9" * 5000]  # 5,000 digits: past Python's int(str) limit


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app over an empty data folder: its audit and back-test databases, no model."""
    root = tmp_path_factory.mktemp("bounds")
    settings = Settings(environment="test", data_dir=root, models_dir=root / "models")
    app = create_app(settings, registry=CollectorRegistry())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _integer_parameters(openapi: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(method, path, location, name)`` of every integer parameter in the schema."""
    found = []
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
                if "integer" in types:
                    found.append((method, path, parameter["in"], parameter["name"]))
    return found


def _url(path: str, location: str, name: str, value: str) -> tuple[str, dict[str, str]]:
    """``path`` with ``name`` set to ``value`` (other path parameters: 1) and its query."""
    segments = []
    for segment in path.split("/"):
        if segment == f"{{{name}}}" and location == "path":
            segment = value
        elif segment.startswith("{"):
            segment = "1"
        segments.append(segment)
    return "/".join(segments), ({name: value} if location == "query" else {})


def test_every_integer_parameter_refuses_a_huge_value_with_a_4xx(client: TestClient) -> None:
    parameters = _integer_parameters(client.app.openapi())  # type: ignore[attr-defined]
    # At least the two cursors and limits; a parameter renamed away would hide them.
    assert {(p[1], p[3]) for p in parameters} >= {
        ("/v1/audit", "cursor"),
        ("/v1/audit", "limit"),
        ("/v1/backtests", "cursor"),
        ("/v1/backtests", "limit"),
    }
    for method, path, location, name in parameters:
        for value in HUGE_VALUES:
            url, params = _url(path, location, name, value)
            response = client.request(method.upper(), url, params=params)
            where = f"{method.upper()} {path} {location}.{name}={value[:25]}"
            assert 400 <= response.status_code < 500, (where, response.text[:300])
            assert response.headers["content-type"] == PROBLEM, where


@pytest.mark.parametrize("path", ["/v1/audit", "/v1/backtests"])
@pytest.mark.parametrize("value", HUGE_VALUES)
def test_a_huge_cursor_is_a_422_problem_naming_it(
    client: TestClient, path: str, value: str
) -> None:
    response = client.get(path, params={"cursor": value})
    assert response.status_code == 422, response.text[:300]
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "/problems/invalid-request"
    assert [error["location"] for error in problem["errors"]] == ["query.cursor"]


@pytest.mark.parametrize("path", ["/v1/audit", "/v1/backtests"])
def test_the_largest_cursor_the_database_holds_is_accepted(client: TestClient, path: str) -> None:
    response = client.get(path, params={"cursor": LARGEST_ROW_ID})
    assert response.status_code == 200, response.text
    assert client.get(path, params={"cursor": LARGEST_ROW_ID + 1}).status_code == 422


def test_the_bounds_are_in_the_openapi_schema(client: TestClient) -> None:
    openapi = client.app.openapi()  # type: ignore[attr-defined]
    for path in ("/v1/audit", "/v1/backtests"):
        (cursor,) = (
            p for p in openapi["paths"][path]["get"]["parameters"] if p["name"] == "cursor"
        )
        (integer,) = (s for s in cursor["schema"]["anyOf"] if s.get("type") == "integer")
        assert (integer["minimum"], integer["maximum"]) == (1, LARGEST_ROW_ID)
