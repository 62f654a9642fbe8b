"""A 405 lists in ``Allow`` every method the path answers (RFC 9110, 15.5.6), as a problem.

Paths of the real app served by several routes: ``/v1/backtests`` (GET from the viewer's
router, POST from the trader's), ``/v1/backtests/{job_id}`` (GET and DELETE, likewise),
and ``/v1/models/{name}:predict``, which TensorFlow Serving's status route
``/v1/models/{name}`` also matches (``{name}`` takes ``x:predict``). Starlette's 405
listed the methods of the first route matching the path only. Every method of the
``Allow`` header is then asked, and answered; every other one is refused with the same
header.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import BacktestJobSettings, Settings
from app.main import create_app
from tests.app._problems import assert_problem

METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")

ALLOWED = {
    "/v1/backtests": {"GET", "POST"},
    "/v1/backtests/nope": {"DELETE", "GET"},
    "/v1/models/forecaster:predict": {"GET", "POST"},
    "/healthz": {"GET"},
    "/openapi.json": {"GET", "HEAD"},  # a Starlette route: it answers HEAD too
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    empty: Path = tmp_path_factory.mktemp("no-model")
    settings = Settings(
        environment="test",
        data_dir=empty,
        models_dir=empty,
        dev_mode=True,  # 405 comes before any key is read
        backtests=BacktestJobSettings(max_concurrent=0),
    )
    with TestClient(create_app(settings, registry=CollectorRegistry())) as test_client:
        yield test_client


@pytest.mark.parametrize(("path", "allowed"), ALLOWED.items(), ids=list(ALLOWED))
def test_allow_lists_every_method_of_every_route_of_the_path(
    client: TestClient, path: str, allowed: set[str]
) -> None:
    for method in METHODS:
        response = client.request(method, path)
        if method in allowed:
            assert response.status_code != 405, (method, path, response.text)
            continue
        assert response.status_code == 405, (method, path)
        assert set(response.headers["Allow"].split(", ")) == allowed, (method, path)
        if method == "HEAD":
            continue  # no body
        problem = assert_problem(response, 405, "method-not-allowed")
        assert problem["allowed_methods"] == sorted(allowed)
        assert all(m in problem["detail"] for m in allowed), problem["detail"]
