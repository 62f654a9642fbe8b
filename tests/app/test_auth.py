"""API keys and roles: each role allowed and refused where it should be, on a real app.

The app serves a real tiny SavedModel, so every endpoint class answers 200 when the
role allows it: viewer (forecasts, models, TensorFlow Serving), trader (optimize) and
admin (audit, reload). Refusals are 401 (no or unknown key) and 403 (role too low) as
problem+json, or TensorFlow Serving's ``{"error": ...}`` on its routes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import ROLES as CONFIG_ROLES
from app.core.config import ApiKey, LimitSettings, Settings, get_settings
from app.core.logging import JsonFormatter
from app.core.security import (
    DEV_MODE_WARNING,
    KEY_PREFIX,
    MissingApiKeys,
    Principal,
    generate_key,
    hash_key,
)
from app.main import create_app
from tests.training.synthetic import build_model_store

PROBLEM = "application/problem+json"
ROLES = ("viewer", "trader", "admin")
KEYS = {role: generate_key() for role in ROLES}
NO_RATE_LIMIT = LimitSettings(rate_per_second=0)


def _api_keys() -> list[ApiKey]:
    return [ApiKey(id=f"{role}-key", role=role, sha256=hash_key(key)) for role, key in KEYS.items()]


def _settings(data_dir: Path, models_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "data_dir": data_dir,
        "models_dir": models_dir,
        "dev_mode": False,
        "api_keys": _api_keys(),
        "limits": NO_RATE_LIMIT,
    }
    return Settings(**(values | overrides))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny exported version of "forecaster" with its features (tickers T0..T2)."""
    return build_model_store(tmp_path_factory.mktemp("auth"), versions=1)


@pytest.fixture(scope="module")
def client(root: Path) -> Iterator[TestClient]:
    settings = _settings(root / "data", root / "models")
    with TestClient(create_app(settings, registry=CollectorRegistry())) as test_client:
        assert test_client.get("/readyz").status_code == 200
        yield test_client


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with no model: apps on it start fast and serve health, metrics, audit."""
    return tmp_path_factory.mktemp("nothing")


def _optimize_body() -> dict[str, Any]:
    rng = np.random.default_rng(3)
    returns = rng.normal(0.0005, 0.01, size=(250, 3)) @ (np.eye(3) + 0.3)
    tickers = ["A", "B", "C"]
    return {
        "tickers": tickers,
        "expected_returns": dict(zip(tickers, returns.mean(axis=0) * 252, strict=True)),
        "covariance": (np.cov(returns, rowvar=False) * 252).tolist(),
    }


# One endpoint of each class: (method, path, body, the lowest role allowed).
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("POST", "/v1/forecasts", {"tickers": ["T0", "T1"]}, "viewer"),
    ("GET", "/v1/models", None, "viewer"),
    ("GET", "/v1/models/forecaster/metadata", None, "viewer"),
    ("POST", "/v1/portfolios/optimize", _optimize_body(), "trader"),
    ("GET", "/v1/audit", None, "admin"),
]


def _call(
    client: TestClient, method: str, path: str, body: dict[str, Any] | None, key: str | None
) -> Any:
    headers = {"X-API-Key": key} if key is not None else {}
    return client.request(method, path, json=body, headers=headers)


def _is_tf_serving(path: str) -> bool:
    return path.startswith("/v1/models/")


def _assert_refused(response: Any, path: str, status: int, slug: str) -> str:
    """Check the refusal's status and shape; return its message."""
    assert response.status_code == status, (path, response.text)
    if _is_tf_serving(path):  # TensorFlow Serving's error shape on its routes
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert set(body) == {"error"}
        return str(body["error"])
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == f"/problems/{slug}"
    assert problem["status"] == status
    assert problem["instance"] == path
    return str(problem["detail"])


@pytest.mark.parametrize(("method", "path", "body", "lowest"), ENDPOINTS, ids=lambda v: v)
@pytest.mark.parametrize("role", ROLES)
def test_each_role_is_allowed_exactly_where_its_rank_reaches(
    client: TestClient,
    role: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    lowest: str,
) -> None:
    response = _call(client, method, path, body, KEYS[role])
    if ROLES.index(role) >= ROLES.index(lowest):
        assert response.status_code == 200, (role, path, response.text)
        return
    message = _assert_refused(response, path, 403, "forbidden")
    assert f"needs the {lowest} role" in message
    assert f"'{role}-key' has the {role} role" in message
    if not _is_tf_serving(path):
        problem = response.json()
        assert (problem["required_role"], problem["role"], problem["key_id"]) == (
            lowest,
            role,
            f"{role}-key",
        )


@pytest.mark.parametrize(("method", "path", "body", "lowest"), ENDPOINTS, ids=lambda v: v)
def test_no_key_is_401_with_a_bearer_challenge(
    client: TestClient, method: str, path: str, body: dict[str, Any] | None, lowest: str
) -> None:
    response = _call(client, method, path, body, None)
    message = _assert_refused(response, path, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "X-API-Key" in message
    assert "Bearer" in message


def test_an_unknown_key_is_401_and_never_echoed(client: TestClient) -> None:
    guess = generate_key()
    for path in ("/v1/models", "/v1/models/forecaster/metadata"):
        response = client.get(path, headers={"X-API-Key": guess})
        message = _assert_refused(response, path, 401, "unauthorized")
        assert "not known" in message
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert guess not in response.text
        assert hash_key(guess) not in response.text


def test_admin_reload_is_refused_to_a_trader_and_done_for_an_admin(client: TestClient) -> None:
    refused = client.post("/v1/admin/reload", headers={"X-API-Key": KEYS["trader"]})
    _assert_refused(refused, "/v1/admin/reload", 403, "forbidden")
    assert refused.json()["required_role"] == "admin"
    done = client.post("/v1/admin/reload", headers={"X-API-Key": KEYS["admin"]})
    assert done.status_code == 200, done.text
    assert done.json()["serving"]["version"] == 1


def test_the_principal_reaches_the_audit_trail_by_key_id(client: TestClient) -> None:
    trader, admin = ({"X-API-Key": KEYS[role]} for role in ("trader", "admin"))
    done = client.post("/v1/portfolios/optimize", json=_optimize_body(), headers=trader)
    assert done.status_code == 200
    page = client.get(
        "/v1/audit",
        params={"key_id": "trader-key", "action": "portfolios.optimize", "limit": 1},
        headers=admin,
    )
    assert page.status_code == 200, page.text
    (event,) = page.json()["events"]
    assert (event["key_id"], event["status"]) == ("trader-key", 200)
    assert event["request_id"] == done.headers["X-Request-ID"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {KEYS['trader']}"},
        {"Authorization": f"bearer {KEYS['trader']}"},
        {"X-API-Key": KEYS["trader"]},
        {"x-api-key": KEYS["trader"]},
    ],
    ids=["bearer", "bearer-lowercase", "x-api-key", "x-api-key-lowercase"],
)
def test_both_header_forms_authenticate(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/v1/portfolios/optimize", json=_optimize_body(), headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "authorization",
    [f"Basic {KEYS['admin']}", "Bearer", "Bearer   ", KEYS["admin"]],
    ids=["basic-scheme", "bearer-without-key", "bearer-blank", "no-scheme"],
)
def test_a_malformed_authorization_header_is_401(client: TestClient, authorization: str) -> None:
    response = client.get("/v1/audit", headers={"Authorization": authorization})
    _assert_refused(response, "/v1/audit", 401, "unauthorized")


def test_health_probes_are_open_with_keys_configured(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_keys_never_reach_the_logs_or_responses(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    unknown = generate_key()
    caplog.set_level(logging.DEBUG)
    responses = [
        client.post("/v1/portfolios/optimize", json=_optimize_body(), headers={"X-API-Key": key})
        for key in (KEYS["viewer"], KEYS["trader"], unknown)
    ]
    responses.append(client.get("/v1/audit", headers={"Authorization": f"Bearer {unknown}"}))
    responses.append(client.get("/v1/audit", headers={"Authorization": f"Bearer {KEYS['admin']}"}))
    assert [r.status_code for r in responses] == [403, 200, 401, 401, 200]
    assert any(r.name == "app.access" for r in caplog.records)  # the access log was captured
    assert any("unknown API key" in r.getMessage() for r in caplog.records)
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    for secret in (*KEYS.values(), unknown):
        assert secret not in logged
        assert hash_key(secret) not in logged  # not even the hash of a presented key
        for response in responses:
            assert secret not in response.text
            assert all(secret not in value for value in response.headers.values())


def test_metrics_are_open_unless_protected(empty: Path) -> None:
    open_settings = _settings(empty, empty)
    with TestClient(create_app(open_settings, registry=CollectorRegistry())) as client:
        response = client.get("/metrics")
        assert response.status_code == 200
        assert "quantserve_" in response.text

    protected = _settings(empty, empty, protect_metrics=True)
    with TestClient(create_app(protected, registry=CollectorRegistry())) as client:
        refused = client.get("/metrics")
        _assert_refused(refused, "/metrics", 401, "unauthorized")
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        unknown = client.get("/metrics", headers={"X-API-Key": generate_key()})
        _assert_refused(unknown, "/metrics", 401, "unauthorized")
        for key in KEYS.values():  # any role may scrape
            allowed = client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
            assert allowed.status_code == 200
            assert "quantserve_http_requests_total" in allowed.text
        assert client.get("/healthz").status_code == 200


def test_the_server_refuses_to_start_without_keys_unless_in_dev_mode(empty: Path) -> None:
    with pytest.raises(MissingApiKeys) as caught:
        create_app(_settings(empty, empty, api_keys=()), registry=CollectorRegistry())
    assert "quantserve keys create" in str(caught.value)
    assert "QUANTSERVE_DEV_MODE=1" in str(caught.value)


def test_quantserve_serve_fails_early_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, empty: Path
) -> None:
    def no_server(*args: object) -> None:
        raise AssertionError("the server must not start without keys")

    monkeypatch.setattr(os, "execv", no_server)  # gunicorn would replace this process
    monkeypatch.setenv("QUANTSERVE_DEV_MODE", "0")
    monkeypatch.setenv("QUANTSERVE_WORKERS", "2")
    monkeypatch.delenv("QUANTSERVE_API_KEYS", raising=False)
    monkeypatch.setenv("QUANTSERVE_DATA_DIR", str(empty))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["serve"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "serve refused: no API keys are configured" in result.output
    assert "QUANTSERVE_DEV_MODE=1" in result.output


def test_dev_mode_without_keys_warns_and_every_caller_is_admin(
    empty: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(empty, empty, api_keys=(), dev_mode=True)
    with caplog.at_level(logging.WARNING, logger="app.main"):
        app = create_app(settings, registry=CollectorRegistry())
    warnings = [r for r in caplog.records if r.name == "app.main" and r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [DEV_MODE_WARNING]
    with TestClient(app) as client:
        assert client.get("/v1/audit").status_code == 200  # admin without a key
        # Admitted: the reload runs, and fails only because the folder holds no model.
        reload = client.post("/v1/admin/reload")
        assert reload.status_code == 422
        assert reload.json()["type"] == "/problems/model-version-refused"
        assert client.get("/v1/models", headers={"X-API-Key": "anything"}).status_code == 200


def test_dev_mode_with_keys_still_requires_them(
    empty: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(empty, empty, dev_mode=True)
    with caplog.at_level(logging.WARNING, logger="app.main"):
        app = create_app(settings, registry=CollectorRegistry())
    assert DEV_MODE_WARNING not in caplog.messages
    with TestClient(app) as client:
        _assert_refused(client.get("/v1/models"), "/v1/models", 401, "unauthorized")
        ok = client.get("/v1/models", headers={"X-API-Key": KEYS["viewer"]})
        assert ok.status_code == 200


def test_roles_nest() -> None:
    allowed = {
        (held, needed)
        for held in CONFIG_ROLES
        for needed in CONFIG_ROLES
        if Principal(f"{held}-key", held).allows(needed)
    }
    assert allowed == {
        ("viewer", "viewer"),
        ("trader", "viewer"),
        ("trader", "trader"),
        ("admin", "viewer"),
        ("admin", "trader"),
        ("admin", "admin"),
    }


# -- keys: format, configuration, command line ------------------------------------------


def test_generated_keys_are_prefixed_random_and_hash_to_hex_sha256() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert key.startswith(KEY_PREFIX)
        assert len(key) == len(KEY_PREFIX) + 43  # 32 bytes in URL-safe base64
    # The FIPS 180-2 test vector: the stored form is plain lowercase hex SHA-256.
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_api_keys_from_the_environment_as_json_or_compact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob = hash_key("qs_alice"), hash_key("qs_bob")
    monkeypatch.setenv(
        "QUANTSERVE_API_KEYS",
        f'[{{"id": "alice", "role": "trader", "sha256": "{alice}"}},'
        f' {{"id": "bob", "role": "admin", "sha256": "{bob}"}}]',
    )
    from_json = Settings().api_keys
    monkeypatch.setenv("QUANTSERVE_API_KEYS", f" alice:trader:{alice} , bob:admin:{bob}\n")
    compact = Settings().api_keys
    expected = (
        ApiKey(id="alice", role="trader", sha256=alice),
        ApiKey(id="bob", role="admin", sha256=bob),
    )
    assert from_json == compact == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("alice:trader:{a},alice:admin:{b}", "repeat the id alice"),
        ("alice:trader:{a},bob:admin:{a}", "alice and bob have the same sha256"),
        ("alice:trader", "entry 1 is not id:role:sha256"),
        ("alice:owner:{a}", "api_keys.0.role"),
        ("alice:trader:qs_not_a_hash_but_a_key", "api_keys.0.sha256"),
        ('[{{"id": "alice"', "not valid JSON"),
    ],
    ids=["duplicate-id", "duplicate-hash", "short-entry", "unknown-role", "key-not-hash", "json"],
)
def test_bad_api_keys_are_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, value: str, fragment: str
) -> None:
    text = value.format(a=hash_key("qs_a"), b=hash_key("qs_b"))
    monkeypatch.setenv("QUANTSERVE_API_KEYS", text)
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = str(caught.value)
    assert fragment in message
    assert "qs_not_a_hash_but_a_key" not in message
    assert hash_key("qs_a") not in message


def test_keys_create_prints_the_key_once_and_entries_with_its_hash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = CliRunner().invoke(cli, ["keys", "create", "--id", "alice", "--role", "trader"])
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    (key,) = [line for line in lines if line.startswith(KEY_PREFIX)]
    digest = hash_key(key)
    assert result.output.count(key) == 1
    assert f"- {{id: alice, role: trader, sha256: {digest}}}" in lines
    (env_line,) = [line for line in lines if line.startswith("QUANTSERVE_API_KEYS=")]
    monkeypatch.setenv("QUANTSERVE_API_KEYS", env_line.split("=", 1)[1].strip("'"))
    assert Settings().api_keys == (ApiKey(id="alice", role="trader", sha256=digest),)

    refused = CliRunner().invoke(cli, ["keys", "create", "--id", "alice", "--role", "owner"])
    assert refused.exit_code == 2
    bad_id = CliRunner().invoke(cli, ["keys", "create", "--id", "a b", "--role", "viewer"])
    assert bad_id.exit_code == 2
    assert "invalid --id" in bad_id.output


def test_keys_hash_reads_the_key_from_stdin() -> None:
    key = generate_key()
    result = CliRunner().invoke(cli, ["keys", "hash"], input=f"{key}\n")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == hash_key(key)
    empty = CliRunner().invoke(cli, ["keys", "hash"], input="\n")
    assert empty.exit_code == 2
