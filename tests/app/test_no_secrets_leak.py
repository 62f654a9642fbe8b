"""No API key, nor its SHA-256, in a log record, a response, or the audit trail.

Keys are configured (one per role, and one to run out of its rate limit); requests carry
them in ``X-API-Key``, in ``Authorization: Bearer`` and, wrongly, in the query string,
next to keys that look real but are unknown, and set off the errors a caller can meet:
401, 403, 404, 422 and 429, and successes that write audit rows. Every log record (all
loggers, at DEBUG, formatted by the app's JSON formatter, and the record's raw fields
too), every response's status line, headers and body, ``/metrics`` and every file the
app wrote in its data folder (the audit and back-test databases, WAL included) are then
searched for each key and each key's hex SHA-256.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import ApiKey, LimitSettings, Settings
from app.core.logging import JsonFormatter
from app.core.security import generate_key, hash_key
from app.main import create_app

ROLES = ("viewer", "trader", "admin")
KEYS = {role: generate_key() for role in (*ROLES, "flood")}
WRONG_KEYS = [generate_key(), generate_key()]  # well-formed, never configured
OPTIMIZE = "/v1/portfolios/optimize"
OWN_INPUTS: dict[str, Any] = {
    "tickers": ["ALPHA", "BETA", "GAMMA"],
    "expected_returns": {"ALPHA": 0.08, "BETA": 0.05, "GAMMA": 0.03},
    "covariance": [[0.04, 0.006, 0.002], [0.006, 0.02, 0.001], [0.002, 0.001, 0.01]],
}
BURST = 5


# The test client's own loggers: they log its requests, URLs and all, on the client's side.
CLIENT_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2")


class _Records(logging.Handler):
    """Keeps every record but the client's, and its line as the app's formatter writes it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines = io.StringIO()
        self.raw: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in CLIENT_LOGGERS:
            return
        self.lines.write(self.format(record) + "\n")
        self.raw.append(repr(record.__dict__))

    def text(self) -> str:
        return self.lines.getvalue() + "\n".join(self.raw)


@pytest.fixture
def logs() -> Iterator[_Records]:
    """Every record of every logger while the test runs."""
    handler = _Records()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


def _settings(data_dir: Path) -> Settings:
    roles = {"viewer": "viewer", "trader": "trader", "admin": "admin", "flood": "viewer"}
    return Settings(
        environment="test",
        data_dir=data_dir,
        models_dir=data_dir,
        dev_mode=False,
        protect_metrics=True,
        # Each key may make BURST requests at once, then about one a second.
        limits=LimitSettings(rate_per_second=1, burst=BURST),
        api_keys=[
            ApiKey(id=f"{name}-key", role=role, sha256=hash_key(KEYS[name]))  # type: ignore[arg-type]
            for name, role in roles.items()
        ],
    )


def _shown(response: Any) -> str:
    """All a client sees of a response: status, headers, body."""
    headers = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
    return f"{response.status_code}\n{headers}\n{response.text}"


def test_no_key_or_its_hash_is_logged_answered_or_recorded(tmp_path: Path, logs: _Records) -> None:
    data = tmp_path / "data"
    seen: list[str] = []
    statuses: set[int] = set()
    with TestClient(create_app(_settings(data), registry=CollectorRegistry())) as client:

        def call(method: str, url: str, expected: int, **kwargs: Any) -> Any:
            response = client.request(method, url, **kwargs)
            assert response.status_code == expected, (method, url, response.text)
            seen.append(_shown(response))
            statuses.add(expected)
            return response

        viewer, trader, admin = (KEYS[role] for role in ROLES)
        # Valid keys, both header forms: successes, and audit rows.
        call("GET", "/v1/backtests", 200, headers={"X-API-Key": viewer})
        call("POST", OPTIMIZE, 200, json=OWN_INPUTS, headers={"X-API-Key": trader})
        call("POST", OPTIMIZE, 200, json=OWN_INPUTS, headers={"Authorization": f"Bearer {admin}"})
        # Unknown keys that look real, in either header, and a malformed Authorization.
        for wrong in WRONG_KEYS:
            call("GET", "/v1/backtests", 401, headers={"X-API-Key": wrong})
            call(
                "POST", OPTIMIZE, 401, json=OWN_INPUTS, headers={"Authorization": f"Bearer {wrong}"}
            )
        call("GET", "/v1/backtests", 401, headers={"Authorization": f"Basic {viewer}"})
        # Keys in the query string are not read (401), nor written anywhere, even when a
        # header key lets the request through to the audit trail.
        call("GET", f"/v1/backtests?api_key={viewer}", 401)
        call("POST", f"{OPTIMIZE}?api_key={admin}&token={WRONG_KEYS[0]}", 200,
             json=OWN_INPUTS, headers={"X-API-Key": trader})  # fmt: skip
        # 403: a role too low, named by key id.
        call("POST", OPTIMIZE, 403, json=OWN_INPUTS, headers={"X-API-Key": viewer})
        call("GET", f"/v1/audit?key={admin}", 403, headers={"Authorization": f"Bearer {trader}"})
        # 422: a bad body and a bad parameter, with keys in the query string beside them.
        call("POST", f"{OPTIMIZE}?key={viewer}", 422, json={"tickers": "x"},
             headers={"X-API-Key": trader})  # fmt: skip
        call("GET", f"/v1/audit?limit=0&api_key={trader}", 422, headers={"X-API-Key": admin})
        # A failed action, recorded with the problem it was answered with.
        infeasible = {**OWN_INPUTS, "constraints": {"max_weight": 0.1}}
        call("POST", OPTIMIZE, 422, json=infeasible, headers={"X-API-Key": trader})
        # 404: no such route, no such job.
        call("GET", f"/v1/nothing-here?api_key={viewer}", 404, headers={"X-API-Key": viewer})
        call("GET", "/v1/backtests/no-such-job", 404, headers={"Authorization": f"Bearer {viewer}"})
        # 429: one key over its rate limit (the others keep theirs).
        for _ in range(BURST):
            client.get("/v1/backtests", headers={"X-API-Key": KEYS["flood"]})
        call("GET", "/v1/backtests", 429, headers={"X-API-Key": KEYS["flood"]})
        # The audit trail as an admin reads it, and the metrics as Prometheus scrapes them.
        events = call("GET", "/v1/audit", 200, headers={"X-API-Key": admin}).json()["events"]
        call("GET", "/metrics", 200, headers={"Authorization": f"Bearer {viewer}"})
        call("GET", "/metrics", 401, headers={"X-API-Key": WRONG_KEYS[1]})

    assert statuses >= {200, 401, 403, 404, 422, 429}
    assert {e["key_id"] for e in events} == {"trader-key", "admin-key"}
    assert all("?" not in e["path"] for e in events)
    stored = b"".join(path.read_bytes() for path in sorted(data.rglob("*")) if path.is_file())
    assert b"trader-key" in stored  # the audit rows are there to be searched
    logged = logs.text()
    assert "refused an unknown API key" in logged  # the records are there to be searched
    answered = "\n".join(seen)
    for secret in [*KEYS.values(), *WRONG_KEYS]:
        for form in (secret, hash_key(secret)):
            assert form not in logged, "a key or its hash was logged"
            assert form not in answered, "a key or its hash was in a response"
            assert form.encode() not in stored, "a key or its hash was stored"
