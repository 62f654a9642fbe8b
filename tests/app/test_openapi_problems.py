"""The OpenAPI document declares the refusals each operation can answer, and only those.

Every operation of ``/openapi.json`` is asked, on a real app with a key of each role,
what gets a refusal: no key (401), a viewer key, the lowest role (403), a body over
``limits.max_body_bytes`` (413, declared with ``Content-Length`` and streamed without
it) and a key whose rate limit is spent (429). Where the operation declares the status,
the app answers it, in the declared media type, with the declared headers; where it does
not, the app answers something else. Nothing here names an operation: one added
tomorrow is asked too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import ROLES, ApiKey, BacktestJobSettings, LimitSettings, Settings
from app.core.security import generate_key, hash_key
from app.main import create_app
from tests.app._problems import PROBLEM, assert_problem

KEYS = {role: generate_key() for role in ROLES}
ADMIN = {"X-API-Key": KEYS["admin"]}
MAX_BODY_BYTES = 1024
SLUGS = {401: "unauthorized", 403: "forbidden", 413: "body-too-large", 429: "rate-limited"}


@dataclass(frozen=True)
class Operation:
    """One method of one path of the OpenAPI document."""

    method: str
    path: str
    spec: dict[str, Any]

    @property
    def url(self) -> str:
        """The path with every parameter given ``1`` (a valid int and str alike)."""
        return re.sub(r"\{[^}]+\}", "1", self.path)

    def declares(self, status: int) -> bool:
        return str(status) in self.spec["responses"]

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@contextmanager
def _client(root: Path, limits: LimitSettings) -> Iterator[TestClient]:
    settings = Settings(
        environment="test",
        data_dir=root,
        models_dir=root,
        dev_mode=False,
        limits=limits,
        backtests=BacktestJobSettings(max_concurrent=0),
        api_keys=[ApiKey(id=f"{r}-key", role=r, sha256=hash_key(k)) for r, k in KEYS.items()],
    )
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        yield client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app without a model or a rate limit, whose bodies may be 1 KiB."""
    limits = LimitSettings(rate_per_second=0, max_body_bytes=MAX_BODY_BYTES)
    with _client(tmp_path_factory.mktemp("refusals"), limits) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def operations(client: TestClient) -> list[Operation]:
    document = client.get("/openapi.json").json()
    found = [
        Operation(method.upper(), path, spec)
        for path, methods in document["paths"].items()
        for method, spec in methods.items()
    ]
    assert len(found) >= 25
    return found


def _assert_declared(operation: Operation, response: Any, status: int) -> None:
    """``response`` is ``status``, in the media type and with the headers declared for it."""
    where = str(operation)
    assert response.status_code == status, (where, response.text)
    declared = operation.spec["responses"][str(status)]
    media_type = response.headers["content-type"]
    assert list(declared["content"]) == [media_type], where
    for header in declared.get("headers", {}):
        assert header in response.headers, (where, header)
    if media_type == PROBLEM:
        assert declared["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
        assert_problem(response, status, SLUGS[status])
    else:  # TensorFlow Serving's routes answer in its own shape, which its clients parse
        assert declared["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
        assert set(response.json()) == {"error"}, where


def test_401_is_declared_where_a_request_without_a_key_gets_it(
    client: TestClient, operations: list[Operation]
) -> None:
    protected = 0
    for operation in operations:
        response = client.request(operation.method, operation.url)
        if operation.declares(401):
            protected += 1
            _assert_declared(operation, response, 401)
            assert "WWW-Authenticate" in operation.spec["responses"]["401"]["headers"]
        else:
            assert response.status_code != 401, str(operation)
    assert protected >= 24  # all but the health probes


def test_403_is_declared_where_a_viewer_key_gets_it(
    client: TestClient, operations: list[Operation]
) -> None:
    viewer = {"X-API-Key": KEYS[ROLES[0]]}
    refused = 0
    for operation in operations:
        response = client.request(operation.method, operation.url, headers=viewer)
        if operation.declares(403):
            refused += 1
            _assert_declared(operation, response, 403)
            needed = response.json()["required_role"]
            assert needed in operation.spec["responses"]["403"]["description"], str(operation)
        else:
            assert response.status_code != 403, str(operation)
    assert refused >= 7  # portfolios, back-test submit and cancel, audit, admin


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "streamed"])
def test_413_is_declared_on_every_operation_with_a_body(
    client: TestClient, operations: list[Operation], streamed: bool
) -> None:
    body = b"[" + b"0," * MAX_BODY_BYTES + b"0]"
    with_bodies = [o for o in operations if "requestBody" in o.spec]
    assert len(with_bodies) >= 7
    # The limit refuses any oversize body, before routing; a body is declared only here.
    assert not [str(o) for o in operations if o.declares(413) and o not in with_bodies]
    for operation in with_bodies:
        content = iter([body]) if streamed else body  # an iterator goes chunked
        headers = {**ADMIN, "Content-Type": "application/json"}
        response = client.request(operation.method, operation.url, content=content, headers=headers)
        _assert_declared(operation, response, 413)


def test_429_is_declared_with_retry_after_where_the_rate_limit_applies(
    tmp_path: Path, operations: list[Operation]
) -> None:
    limits = LimitSettings(rate_per_second=0.001, burst=1)  # one token, the next in 1000 s
    with _client(tmp_path, limits) as client:
        assert client.get("/v1/models", headers=ADMIN).status_code == 200  # the one token
        limited = 0
        for operation in operations:
            response = client.request(operation.method, operation.url, headers=ADMIN)
            if operation.declares(429):
                limited += 1
                _assert_declared(operation, response, 429)
                assert "Retry-After" in operation.spec["responses"]["429"]["headers"]
            else:
                assert response.status_code != 429, str(operation)
        assert limited >= 24
