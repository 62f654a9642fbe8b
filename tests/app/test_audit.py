"""The audit trail: a committed row per optimize request, read back from the real database.

Every test parametrized by ``backend`` runs twice: over a real SQLite file in ``tmp_path``
(the default), and over a database of its own on a real PostgreSQL server
(``tests/postgres.py``: Debian's, started for the run, reached as the Kubernetes
deployment reaches its own, ``postgresql+psycopg://`` with a password). Rows are read
back with each database's own driver (``sqlite3``, ``psycopg``), not the app's code, and
failures of the database are real too (a dropped table, a trigger that refuses writes:
SQLite's and PL/pgSQL's).

SQLite only: the WAL pragmas, the write turns (file locks), the stored JSON text hashing
to its fingerprint (PostgreSQL's jsonb re-orders keys), and a database made by the first
release (its SQLite schema; the PostgreSQL one gains its column in a test of its own).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import psycopg
import pytest
from fastapi import APIRouter, HTTPException, Request
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from psycopg.rows import dict_row
from pydantic import BaseModel, ValidationError
from sqlalchemy import insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import AuditDep
from app.core.config import ApiKey, AuditSettings, Settings
from app.core.security import DEV_PRINCIPAL_ID, hash_key
from app.main import create_app
from app.services._write_turns import WriteTurnTimeout, write_turns_for
from app.services.audit import KNOWN_ACTIONS, AuditLog, audit_events, create_audit_engine
from app.services.errors import UnknownTicker
from tests.postgres import PostgresCluster
from tests.training.synthetic import build_model_store

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = "application/problem+json"
OWN_TICKERS = ["ALPHA", "BETA", "GAMMA"]
OWN_MOMENTS: dict[str, Any] = {
    "expected_returns": {"ALPHA": 0.08, "BETA": 0.05, "GAMMA": 0.03},
    "covariance": [[0.04, 0.006, 0.002], [0.006, 0.02, 0.001], [0.002, 0.001, 0.01]],
}
OPTIMIZE = "/v1/portfolios/optimize"


def _client(
    data_dir: Path,
    models_dir: Path | None = None,
    audit_url: str | None = None,
    api_keys: tuple[ApiKey, ...] = (),
) -> TestClient:
    settings = Settings(
        environment="test",
        data_dir=data_dir,
        models_dir=models_dir or data_dir,
        audit=AuditSettings(url=audit_url),
        api_keys=api_keys,
    )
    return TestClient(create_app(settings, registry=CollectorRegistry()))


def _rows(db: Path, where: str = "1 = 1", *params: Any) -> list[dict[str, Any]]:
    """Rows as the file holds them, read with the standard library (not the app's code)."""
    with closing(sqlite3.connect(db)) as connection:
        connection.row_factory = sqlite3.Row
        found = connection.execute(
            f"SELECT * FROM audit_events WHERE {where} ORDER BY id", params
        ).fetchall()
    rows = [dict(row) for row in found]
    for row in rows:
        for column in ("inputs", "outputs", "model_versions"):
            row[column] = json.loads(row[column]) if row[column] is not None else None
    return rows


BACKENDS = ["sqlite", "postgresql"]


class AuditDatabase:
    """One test's audit database, read and changed with its own driver, not the app's code.

    SQLite through the standard ``sqlite3``, PostgreSQL through ``psycopg`` as the owner
    of the table. Rows come back alike: JSON decoded, ``occurred_at`` aware UTC. ``where``
    clauses take ``?`` placeholders on both.
    """

    def __init__(self, kind: str, url: str, app_url: str | None, file: Path | None) -> None:
        self.kind = kind
        self.url = url
        self.app_url = app_url
        """What the app is given as ``audit.url``: None for SQLite's default location."""
        self.file = file

    def __repr__(self) -> str:
        return f"AuditDatabase({self.kind})"

    def _execute(self, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        if self.file is not None:
            with closing(sqlite3.connect(self.file)) as lite, lite:
                lite.row_factory = sqlite3.Row
                return [dict(row) for row in lite.execute(statement, params).fetchall()]
        conninfo = make_url(self.url).set(drivername="postgresql")
        with psycopg.connect(
            conninfo.render_as_string(hide_password=False), autocommit=True, row_factory=dict_row
        ) as connection:
            # psycopg's placeholder is %s; with no parameters a % stays a plain character.
            query = statement.replace("?", "%s")
            cursor = connection.execute(query, params) if params else connection.execute(query)
            return cursor.fetchall() if cursor.description is not None else []

    def execute(self, *statements: str) -> None:
        """Run each statement, committed."""
        for statement in statements:
            self._execute(statement)

    def rows(self, where: str = "1 = 1", *params: Any) -> list[dict[str, Any]]:
        """Rows in id order, as the database holds them."""
        rows = self._execute(f"SELECT * FROM audit_events WHERE {where} ORDER BY id", params)
        for row in rows:
            if self.file is not None:
                for column in ("inputs", "outputs", "model_versions"):
                    text = row[column]
                    row[column] = json.loads(text) if text is not None else None
                row["occurred_at"] = datetime.fromisoformat(row["occurred_at"]).replace(tzinfo=UTC)
        return rows

    def by_request(self, request_id: str) -> list[dict[str, Any]]:
        return self.rows("request_id = ?", request_id)

    def refuse(self, operation: str) -> None:
        """Make every ``operation`` (INSERT or UPDATE) on the table fail, as a full disk would."""
        name = f"refuse_{operation.lower()}"
        if self.kind == "sqlite":
            self.execute(
                f"CREATE TRIGGER {name} BEFORE {operation} ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
            return
        self.execute(
            "CREATE OR REPLACE FUNCTION refuse_write() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$",
            f"CREATE TRIGGER {name} BEFORE {operation} ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION refuse_write()",
        )

    def allow(self, operation: str) -> None:
        """Undo :meth:`refuse`."""
        on_table = "" if self.kind == "sqlite" else " ON audit_events"
        self.execute(f"DROP TRIGGER refuse_{operation.lower()}{on_table}")

    def insert_at(self, *days_ago: float) -> None:
        """Rows that happened ``days_ago``, request ids ``age-<days>``."""
        now = datetime.now(UTC)
        for days in days_ago:
            at = now - timedelta(days=days)
            self._execute(
                "INSERT INTO audit_events (occurred_at, request_id, key_id, action, method, "
                "path, outcome) VALUES (?, ?, 'alice', 'portfolios.optimize', 'POST', '/v1/x', "
                "'success')",
                (at.replace(tzinfo=None).isoformat(sep=" ") if self.file else at, f"age-{days}"),
            )

    def ages(self) -> list[str]:
        return sorted(row["request_id"] for row in self.rows() if row["request_id"])

    def everything_stored(self) -> bytes:
        """All the database holds: SQLite's files, or every row of PostgreSQL's table as text."""
        if self.file is not None:
            files = [self.file.with_name(self.file.name + s) for s in ("", "-wal")]
            return b"".join(f.read_bytes() for f in files if f.exists())
        rows = self._execute("SELECT t::text AS row FROM audit_events t")
        return "\n".join(row["row"] for row in rows).encode()


def _database(kind: str, root: Path, request: pytest.FixtureRequest) -> AuditDatabase:
    if kind == "sqlite":
        return AuditDatabase(kind, f"sqlite:///{root / 'audit.db'}", None, root / "audit.db")
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    url = cluster.create_database()
    return AuditDatabase(kind, url, url, None)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AuditDatabase:
    """A new, empty audit database: SQLite at ``<tmp_path>/audit.db``, or on PostgreSQL."""
    return _database(request.param, tmp_path, request)


FAILURES_TOTAL = "quantserve_audit_write_failures_total"
WRITES = "quantserve_audit_write_seconds_count"


def _samples(client: TestClient, name: str, **match: str) -> dict[tuple[str, ...], float]:
    """The samples ``name`` has at ``/metrics`` (with the labels in ``match``), by the
    values of their other labels in name order: ``(action, stage)``, or ``(stage,)``."""
    text = client.get("/metrics").text
    return {
        tuple(value for label, value in sorted(sample.labels.items()) if label not in match): (
            sample.value
        )
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and match.items() <= sample.labels.items()
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny model version over synthetic tickers T0..T2."""
    return build_model_store(tmp_path_factory.mktemp("audit-store"), versions=1)


@pytest.fixture(scope="module", params=BACKENDS)
def model_db(request: pytest.FixtureRequest, store: Path) -> AuditDatabase:
    """The audit database of ``model_client``: SQLite's default, or one on PostgreSQL."""
    return _database(request.param, store / "data", request)


@pytest.fixture(scope="module")
def model_client(store: Path, model_db: AuditDatabase) -> Iterator[TestClient]:
    """The app with a model, over the default ``<data_dir>/audit.db`` or PostgreSQL."""
    with _client(store / "data", store / "models", model_db.app_url) as client:
        yield client


@pytest.fixture
def empty_root(tmp_path: Path) -> Path:
    """A data folder of its own: no model, and an audit database no other test writes."""
    return tmp_path


def test_a_successful_optimize_is_one_committed_row(
    model_db: AuditDatabase, model_client: TestClient
) -> None:
    body = {"tickers": ["T0", "T1", "T2"], "objective": "min_variance"}
    before = datetime.now(UTC)
    response = model_client.post(OPTIMIZE, json=body, headers={"X-Request-ID": "audit-ok-1"})
    after = datetime.now(UTC)
    assert response.status_code == 200, response.text
    assert response.headers["X-Request-ID"] == "audit-ok-1"

    (row,) = model_db.by_request("audit-ok-1")
    assert row["key_id"] == DEV_PRINCIPAL_ID  # no keys configured: development mode
    assert (row["action"], row["method"], row["path"]) == ("portfolios.optimize", "POST", OPTIMIZE)
    assert (row["status"], row["outcome"]) == (200, "success")
    assert row["inputs"]["tickers"] == ["T0", "T1", "T2"]
    assert row["inputs"]["objective"] == "min_variance"
    assert row["outputs"] == response.json()
    assert row["model_versions"] == {"forecaster": 1}
    # Stored as naive UTC text on SQLite, timestamptz on PostgreSQL; read back aware.
    assert before - timedelta(seconds=1) <= row["occurred_at"] <= after
    assert row["duration_ms"] > 0


def test_a_generated_request_id_is_the_one_recorded(
    model_db: AuditDatabase, model_client: TestClient
) -> None:
    response = model_client.post(OPTIMIZE, json={"tickers": OWN_TICKERS, **OWN_MOMENTS})
    assert response.status_code == 200, response.text
    (row,) = model_db.by_request(response.headers["X-Request-ID"])
    assert row["model_versions"] is None  # the request's own inputs: no model used
    assert row["outputs"]["weights"] == response.json()["weights"]


FAILURES = [
    pytest.param({"tickers": ["T0", "NOPE"]}, 404, "unknown-ticker", OPTIMIZE, id="unknown_ticker"),
    pytest.param(
        {"tickers": OWN_TICKERS, **OWN_MOMENTS, "constraints": {"max_volatility": 0.01}},
        422,
        "infeasible",
        OPTIMIZE,
        id="infeasible",
    ),
    pytest.param(
        {"tickers": OWN_TICKERS, **OWN_MOMENTS, "objective": "min_cvar"},
        422,
        "invalid-constraints",
        OPTIMIZE,
        id="invalid_constraints",
    ),
    pytest.param(
        {"tickers": OWN_TICKERS, **OWN_MOMENTS, "constraints": {"long_only": False}},
        422,
        "unbounded",
        "/v1/portfolios/frontier",
        id="unbounded_frontier",
    ),
    pytest.param(
        {"tickers": OWN_TICKERS, **OWN_MOMENTS, "n_points": 51},  # limits.max_frontier_points
        422,
        "limit-exceeded",
        "/v1/portfolios/frontier",
        id="over_a_limit",
    ),
]


@pytest.mark.parametrize(("body", "status", "outcome", "path"), FAILURES)
def test_a_failed_request_is_recorded_with_the_problem_answered(
    model_db: AuditDatabase,
    model_client: TestClient,
    body: dict[str, Any],
    status: int,
    outcome: str,
    path: str,
) -> None:
    response = model_client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    (row,) = model_db.by_request(response.headers["X-Request-ID"])
    assert (row["status"], row["outcome"]) == (status, outcome)
    assert row["action"] == "portfolios." + path.rsplit("/", 1)[1]
    assert row["outputs"] == response.json()
    assert row["inputs"]["tickers"] == body["tickers"]


def test_the_frontier_is_recorded_with_its_points(
    model_db: AuditDatabase, model_client: TestClient
) -> None:
    body = {"tickers": OWN_TICKERS, **OWN_MOMENTS, "n_points": 4}
    response = model_client.post("/v1/portfolios/frontier", json=body)
    assert response.status_code == 200, response.text
    (row,) = model_db.by_request(response.headers["X-Request-ID"])
    assert (row["action"], row["outcome"]) == ("portfolios.frontier", "success")
    assert len(row["outputs"]["points"]) == 4
    assert row["outputs"] == response.json()


def test_a_request_refused_before_the_handler_is_not_an_action(
    model_db: AuditDatabase, model_client: TestClient
) -> None:
    response = model_client.post(OPTIMIZE, json={"tickers": "T0"})
    assert response.status_code == 422
    assert model_db.by_request(response.headers["X-Request-ID"]) == []


def test_the_default_database_is_sqlite_in_wal_mode_with_full_sync(empty_root: Path) -> None:
    db = empty_root / "audit.db"
    with _client(empty_root) as client:
        assert db.exists()
        with closing(sqlite3.connect(db)) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        audit: AuditLog = client.app.state.audit  # type: ignore[attr-defined]
        with audit.engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA synchronous").scalar() == 2  # FULL
            assert pragma("PRAGMA busy_timeout").scalar() == 5000


def test_no_success_is_answered_without_a_committed_row(
    empty_root: Path, backend: AuditDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    with _client(empty_root, audit_url=backend.app_url) as client:
        assert client.post(OPTIMIZE, json={"tickers": OWN_TICKERS, **OWN_MOMENTS}).is_success
        # A success counts no failure: every series is declared, and 0; its write is timed.
        optimize = partial(_samples, client, FAILURES_TOTAL, action="portfolios.optimize")
        assert optimize() == {("failure_record",): 0.0, ("result",): 0.0}
        assert set(_samples(client, FAILURES_TOTAL).values()) == {0.0}
        assert _samples(client, WRITES) == {("intent",): 0, ("result",): 1, ("failure_record",): 0}
        backend.execute("DROP TABLE audit_events")

        response = client.post(OPTIMIZE, json={"tickers": OWN_TICKERS, **OWN_MOMENTS})
        assert response.status_code == 503
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["Retry-After"] == "5"
        problem = response.json()
        assert problem["type"] == "/problems/audit-unavailable"
        assert (problem["action"], problem["performed"]) == ("portfolios.optimize", False)
        assert "weights" not in problem
        assert optimize() == {("failure_record",): 0.0, ("result",): 1.0}

        # A failure is still answered as itself (it claims no success), and logged.
        with caplog.at_level(logging.ERROR, logger="app.services.audit"):
            infeasible = client.post(
                OPTIMIZE,
                json={"tickers": OWN_TICKERS, **OWN_MOMENTS, "constraints": {"max_weight": 0.1}},
            )
        assert infeasible.status_code == 422
        assert any("cannot record the failure" in r.getMessage() for r in caplog.records)
        assert optimize() == {("failure_record",): 1.0, ("result",): 1.0}
        # Only the action that failed is counted, and no failed write is timed.
        others = _samples(client, FAILURES_TOTAL)
        del (
            others[("portfolios.optimize", "result")],
            others[("portfolios.optimize", "failure_record")],
        )
        assert set(others.values()) == {0.0}
        assert _samples(client, WRITES) == {("intent",): 0, ("result",): 1, ("failure_record",): 0}


def _state_changing_router(done: list[str], db: AuditDatabase) -> APIRouter:
    """An admin-style action (it changes state), as the admin routes will call the log."""
    router = APIRouter()

    @router.post("/test/admin/flip")
    async def flip(request: Request, audit: AuditDep) -> dict[str, str]:
        async with audit.action(request, "admin.flip", inputs={"to": "on"}) as entry:
            row = db.rows("action = 'admin.flip'")[-1]
            done.append(row["outcome"])  # the row as it stands while acting
            if request.headers.get("X-Conflict"):
                raise HTTPException(409, "already on")
            entry.succeeded(outputs={"state": "on"})
        return {"state": "on"}

    return router


def test_a_state_change_is_recorded_before_it_is_made(
    empty_root: Path, backend: AuditDatabase
) -> None:
    db = backend
    done: list[str] = []
    client = _client(empty_root, audit_url=backend.app_url)
    client.app.include_router(_state_changing_router(done, db))  # type: ignore[attr-defined]
    with client:
        flip = partial(_samples, client, FAILURES_TOTAL, action="admin.flip")
        assert flip() == {}  # an action the log does not know yet
        ok = client.post("/test/admin/flip")
        assert ok.status_code == 200
        assert done == ["started"]
        # Declared at its first use, with the three writes a state change makes.
        assert flip() == {("failure_record",): 0.0, ("intent",): 0.0, ("result",): 0.0}
        (row,) = db.by_request(ok.headers["X-Request-ID"])
        assert (row["status"], row["outcome"], row["outputs"]) == (200, "success", {"state": "on"})

        conflict = client.post("/test/admin/flip", headers={"X-Conflict": "1"})
        assert conflict.status_code == 409
        (row,) = db.by_request(conflict.headers["X-Request-ID"])
        assert (row["status"], row["outcome"]) == (409, "conflict")

        # The start cannot be written: the action is not attempted.
        db.refuse("INSERT")
        done.clear()
        refused = client.post("/test/admin/flip")
        assert refused.status_code == 503
        assert refused.json()["performed"] is False
        assert done == []
        assert db.by_request(refused.headers["X-Request-ID"]) == []
        assert flip() == {("failure_record",): 0.0, ("intent",): 1.0, ("result",): 0.0}

        # The outcome cannot be written: the action happened, its row still says started.
        db.allow("INSERT")
        db.refuse("UPDATE")
        half = client.post("/test/admin/flip")
        assert half.status_code == 503
        assert half.json()["performed"] is True
        assert "was carried out" in half.json()["detail"]
        assert done == ["started"]
        (row,) = db.by_request(half.headers["X-Request-ID"])
        assert (row["status"], row["outcome"]) == (None, "started")
        assert flip() == {("failure_record",): 0.0, ("intent",): 1.0, ("result",): 1.0}
        # Committed writes: the starts of ok, conflict and half; the ends of ok and conflict.
        assert _samples(client, WRITES) == {("intent",): 3, ("result",): 1, ("failure_record",): 1}


def test_a_nul_character_is_recorded_not_refused(empty_root: Path, backend: AuditDatabase) -> None:
    # PostgreSQL's text and jsonb cannot hold U+0000, which JSON and URLs carry: a request
    # with one must still be recorded (there as U+FFFD), not answered 503 as if the
    # database were down, nor counted as a failed audit write, which pages someone.
    tickers = ["A\x00", "B", "C"]
    returns = dict(zip(tickers, OWN_MOMENTS["expected_returns"].values(), strict=True))
    body = {
        "tickers": tickers,
        "expected_returns": returns,
        "covariance": OWN_MOMENTS["covariance"],
    }
    with _client(empty_root, audit_url=backend.app_url) as client:
        optimized = client.post(OPTIMIZE, json=body)
        rollback = client.post("/v1/admin/models/x%00/rollback")
        cancel = client.delete("/v1/backtests/job%00")
        found = client.get("/v1/backtests/job%00")
        failures = _samples(client, FAILURES_TOTAL)
        listed = client.get("/v1/audit").json()["events"]
    assert optimized.status_code == 200, optimized.text
    assert rollback.status_code == 404, rollback.text
    assert (cancel.status_code, found.status_code) == (404, 404), (cancel.text, found.text)
    assert set(failures.values()) == {0.0}
    nul = "\x00" if backend.kind == "sqlite" else "\ufffd"
    (row,) = backend.by_request(optimized.headers["X-Request-ID"])
    assert row["inputs"]["tickers"] == [f"A{nul}", "B", "C"]
    assert f"A{nul}" in row["outputs"]["weights"]
    assert row["inputs_sha256"] == listed[-1]["inputs_sha256"]  # of the inputs as received
    (row,) = backend.by_request(rollback.headers["X-Request-ID"])
    assert (row["path"], row["status"], row["inputs"]) == (
        f"/v1/admin/models/x{nul}/rollback",
        404,
        {"name": f"x{nul}"},
    )
    (row,) = backend.by_request(cancel.headers["X-Request-ID"])
    assert (row["action"], row["status"]) == ("backtests.cancel", 404)


def test_a_failed_write_logs_no_request_body(
    empty_root: Path, backend: AuditDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    # The database driver's error quotes the statement's parameters (the request's
    # inputs) unless told not to: bodies never reach the logs (app/core/logging.py).
    secret = "BODY-SECRET-7f3a"
    tickers = [secret, "B", "C"]
    returns = dict(zip(tickers, OWN_MOMENTS["expected_returns"].values(), strict=True))
    body = {
        "tickers": tickers,
        "expected_returns": returns,
        "covariance": OWN_MOMENTS["covariance"],
    }
    with _client(empty_root, audit_url=backend.app_url) as client:
        backend.refuse("INSERT")
        with caplog.at_level(logging.DEBUG):
            refused = client.post(OPTIMIZE, json=body)
            infeasible = client.post(OPTIMIZE, json={**body, "constraints": {"max_weight": 0.1}})
    assert (refused.status_code, infeasible.status_code) == (503, 422)
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert "cannot record portfolios.optimize" in logged
    assert "cannot record the failure of portfolios.optimize" in logged
    assert secret not in logged


def test_every_route_action_is_declared_at_zero_from_the_start(empty_root: Path) -> None:
    # The actions the routes record, read from their source: a new one must join
    # KNOWN_ACTIONS, or its first failed write would be a series born at 1, which an
    # alert on increase() does not see.
    routes = "\n".join(p.read_text() for p in (ROOT / "app" / "api" / "routes").glob("*.py"))
    used = set(re.findall(r"audit\.(?:action|call)\(\s*request,\s*\"([^\"]+)\"", routes))
    assert len(used) >= 5
    assert used <= set(KNOWN_ACTIONS), used - set(KNOWN_ACTIONS)
    with _client(empty_root) as client:
        failures = _samples(client, FAILURES_TOTAL)
    admin = {a for a in KNOWN_ACTIONS if a.startswith("admin.")}
    assert failures == {
        **{(a, "intent"): 0.0 for a in admin},
        **{(a, s): 0.0 for a in KNOWN_ACTIONS for s in ("result", "failure_record")},
    }


class BacktestRequest(BaseModel):
    tickers: list[str]
    start: date


def _backtest(body: BacktestRequest) -> dict[str, Any]:
    """Stands for the back-test service (a later issue): blocking work returning the body."""
    if "NOPE" in body.tickers:
        raise UnknownTicker(["NOPE"], ["ALPHA", "BETA"])
    return {"tickers": body.tickers, "start": body.start.isoformat(), "total_return": 0.1}


def test_a_new_endpoint_is_audited_by_one_line(empty_root: Path, backend: AuditDatabase) -> None:
    router = APIRouter()

    @router.post("/test/backtests")
    async def run_backtest(
        body: BacktestRequest, request: Request, audit: AuditDep
    ) -> dict[str, Any]:
        return await audit.call(request, "backtests.run", partial(_backtest, body), inputs=body)

    client = _client(empty_root, audit_url=backend.app_url)
    client.app.include_router(router)  # type: ignore[attr-defined]
    with client:
        ok = client.post("/test/backtests", json={"tickers": ["ALPHA"], "start": "2020-01-02"})
        assert ok.status_code == 200, ok.text
        unknown = client.post("/test/backtests", json={"tickers": ["NOPE"], "start": "2020-01-02"})
        assert unknown.status_code == 404
    (row,) = backend.by_request(ok.headers["X-Request-ID"])
    assert (row["action"], row["status"], row["outcome"]) == ("backtests.run", 200, "success")
    assert row["inputs"] == {"tickers": ["ALPHA"], "start": "2020-01-02"}
    assert row["outputs"] == ok.json()
    (row,) = backend.by_request(unknown.headers["X-Request-ID"])
    assert (row["status"], row["outcome"]) == (404, "unknown-ticker")


def test_the_key_id_is_recorded_and_only_admins_read_the_trail(
    empty_root: Path, backend: AuditDatabase
) -> None:
    keys = {"alice": ("trader", "qs_alice-secret-key"), "root": ("admin", "qs_root-secret-key")}
    api_keys = tuple(
        ApiKey(id=key_id, role=role, sha256=hash_key(key)) for key_id, (role, key) in keys.items()
    )
    with _client(empty_root, audit_url=backend.app_url, api_keys=api_keys) as client:
        alice = {"X-API-Key": keys["alice"][1]}
        root = {"Authorization": f"Bearer {keys['root'][1]}"}
        body = {"tickers": OWN_TICKERS, **OWN_MOMENTS}
        assert client.post(OPTIMIZE, json=body, headers=alice).status_code == 200
        assert client.post(OPTIMIZE, json=body, headers=root).status_code == 200
        assert client.get("/v1/audit", headers=alice).status_code == 403
        assert client.get("/v1/audit").status_code == 401
        events = client.get("/v1/audit", params={"key_id": "alice"}, headers=root).json()["events"]
    assert [(e["key_id"], e["action"], e["status"]) for e in events] == [
        ("alice", "portfolios.optimize", 200)
    ]
    stored = backend.everything_stored()
    assert b"alice" in stored  # the rows are there to look into
    for _, key in keys.values():
        assert key.encode() not in stored
        assert hash_key(key).encode() not in stored


def _seed(audit: AuditLog, start: datetime) -> list[int]:
    """30 rows an hour apart: keys alice/bob, three actions."""
    actions = ["portfolios.optimize", "admin.promote", "backtests.run"]
    ids = []
    with audit.engine.begin() as connection:
        for i in range(30):
            result = connection.execute(
                insert(audit_events).values(
                    occurred_at=start + timedelta(hours=i),
                    request_id=f"seed-{i}",
                    key_id="alice" if i % 2 == 0 else "bob",
                    action=actions[i % 3],
                    method="POST",
                    path="/v1/x",
                    status=200,
                    outcome="success",
                    inputs={"i": i},
                )
            )
            assert result.inserted_primary_key is not None
            ids.append(int(result.inserted_primary_key[0]))
    return ids


def _ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [event["id"] for event in response.json()["events"]]


def test_get_audit_filters_by_time_key_and_action(empty_root: Path, backend: AuditDatabase) -> None:
    start = datetime(2025, 3, 1, tzinfo=UTC)
    with _client(empty_root, audit_url=backend.app_url) as client:
        ids = _seed(client.app.state.audit, start)  # type: ignore[attr-defined]
        everything = client.get("/v1/audit")
        assert _ids(everything) == ids[::-1]
        first = everything.json()["events"][-1]
        assert first["occurred_at"] in ("2025-03-01T00:00:00Z", "2025-03-01T00:00:00+00:00")
        assert (first["key_id"], first["inputs"], first["request_id"]) == (
            "alice",
            {"i": 0},
            "seed-0",
        )

        assert _ids(client.get("/v1/audit", params={"key_id": "bob"})) == ids[1::2][::-1]
        admin = client.get("/v1/audit", params={"action": "admin.promote"})
        assert _ids(admin) == ids[1::3][::-1]
        assert _ids(client.get("/v1/audit", params={"action": "admin.*"})) == ids[1::3][::-1]
        assert _ids(client.get("/v1/audit", params={"action": "admin"})) == []
        both = client.get("/v1/audit", params={"key_id": "alice", "action": "backtests.run"})
        assert _ids(both) == ids[2::6][::-1]

        # since inclusive, until exclusive; an offset is honoured, no offset means UTC.
        window = client.get(
            "/v1/audit",
            params={"since": "2025-03-01T05:00:00Z", "until": "2025-03-01T12:00:00+02:00"},
        )
        assert _ids(window) == ids[5:10][::-1]
        naive = client.get("/v1/audit", params={"since": "2025-03-02T04:00:00"})
        assert _ids(naive) == ids[28:][::-1]

        # A NUL, which PostgreSQL's text cannot hold, matches nothing rather than failing.
        assert _ids(client.get("/v1/audit", params={"key_id": "al\x00ice"})) == []
        assert _ids(client.get("/v1/audit", params={"action": "admin\x00*"})) == []

        for bad in ({"limit": 0}, {"limit": 1001}, {"cursor": "abc"}, {"since": "yesterday"}):
            problem = client.get("/v1/audit", params=bad)
            assert problem.status_code == 422, bad
            assert problem.json()["type"] == "/problems/invalid-request"


def test_get_audit_pages_with_a_cursor_that_new_rows_do_not_shift(
    empty_root: Path, backend: AuditDatabase
) -> None:
    with _client(empty_root, audit_url=backend.app_url) as client:
        audit: AuditLog = client.app.state.audit  # type: ignore[attr-defined]
        ids = _seed(audit, datetime(2025, 3, 1, tzinfo=UTC))
        seen: list[int] = []
        params: dict[str, Any] = {"limit": 7}
        while True:
            page = client.get("/v1/audit", params=params).json()
            seen += [event["id"] for event in page["events"]]
            if len(seen) == 7:  # rows arriving mid-walk belong before the first page
                _seed(audit, datetime(2025, 4, 1, tzinfo=UTC))
            if page["next_cursor"] is None:
                break
            assert page["next_cursor"] == seen[-1]
            params["cursor"] = page["next_cursor"]
        assert seen == ids[::-1]


def _walk(client: TestClient, limit: int = 7) -> list[int]:
    """Every id ``GET /v1/audit`` lists, page by page (newest first)."""
    seen: list[int] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        page = client.get("/v1/audit", params=params).json()
        seen += [event["id"] for event in page["events"]]
        if page["next_cursor"] is None:
            return seen
        params["cursor"] = page["next_cursor"]


def test_concurrent_requests_from_threads_all_land(
    empty_root: Path, backend: AuditDatabase
) -> None:
    errors: list[BaseException] = []
    with _client(empty_root, audit_url=backend.app_url) as client:

        def hammer(worker: int) -> None:
            try:
                for i in range(8):
                    response = client.post(
                        OPTIMIZE,
                        json={"tickers": OWN_TICKERS, **OWN_MOMENTS},
                        headers={"X-Request-ID": f"thread-{worker}-{i}"},
                    )
                    assert response.status_code == 200, response.text
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=hammer, args=(w,)) for w in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        listed = _walk(client)
    assert errors == []
    rows = backend.rows("request_id LIKE ?", "thread-%")
    assert sorted(row["request_id"] for row in rows) == sorted(
        f"thread-{w}-{i}" for w in range(6) for i in range(8)
    )
    # Ids are unique, and each thread's requests, made one after another, in its order.
    ids = [row["id"] for row in rows]
    assert len(set(ids)) == len(ids) == 48
    for worker in range(6):
        mine = [row for row in rows if row["request_id"].startswith(f"thread-{worker}-")]
        assert [row["request_id"] for row in mine] == [f"thread-{worker}-{i}" for i in range(8)]
    # The API lists every row once, newest first, across pages.
    assert listed == sorted(ids, reverse=True)


# One process of the several-process test: opens the log when told to (so all race to
# create the table), then records 40 actions from 8 threads at once, as a gunicorn worker
# would.
_WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from fastapi import Request
    from app.services.audit import AuditLog

    url, name, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
    time.sleep(max(0.0, start_at - time.time()))
    log = AuditLog.open(url)

    async def one(i: int) -> None:
        scope = {"type": "http", "method": "POST", "path": "/v1/portfolios/optimize",
                 "headers": [], "query_string": b"", "state": {}}
        async with log.action(Request(scope), "portfolios.optimize", inputs={"i": i}) as entry:
            entry.succeeded(outputs={"writer": name, "i": i})

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(40)))

    asyncio.run(main())
    log.close()
    """
)
WRITERS = ("a", "b", "c")


def test_several_processes_write_one_database_and_every_row_lands(
    tmp_path: Path, backend: AuditDatabase
) -> None:
    # SQLite: a folder that does not exist yet, which the first writer creates.
    url = f"sqlite:///{tmp_path / 'shared' / 'audit.db'}" if backend.file else backend.url
    database = AuditDatabase(backend.kind, url, url, tmp_path / "shared" / "audit.db")
    if backend.kind != "sqlite":
        database = backend
    start_at = time.time() + 4.0  # after every interpreter has imported
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, name, str(start_at)],
            env=env,
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in WRITERS
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr
    rows = database.rows()
    assert len(rows) == 40 * len(WRITERS)
    assert len({row["id"] for row in rows}) == len(rows)
    for name in WRITERS:
        mine = [row["outputs"]["i"] for row in rows if row["outputs"]["writer"] == name]
        assert sorted(mine) == list(range(40))
    # Read back through the app's own query, page by page: each row once, newest first.
    log = AuditLog.open(url)
    try:
        listed: list[int] = []
        before: int | None = None
        while True:
            page = log.query(limit=17, before_id=before)
            listed += [record.id for record in page.records]
            if page.next_before_id is None:
                break
            before = page.next_before_id
    finally:
        log.close()
    assert listed == sorted((row["id"] for row in rows), reverse=True)


def test_rows_become_visible_in_id_order_under_concurrent_writers(
    backend: AuditDatabase,
) -> None:
    # A reader resuming after the last id it saw (an export, or a page walk while rows
    # arrive) relies on this: once a row is visible, no row with a smaller id appears
    # later. PostgreSQL draws ids from a sequence at insert time, not at commit, so
    # without the audit log's insert lock a slower transaction commits a smaller id
    # after a larger one; SQLite's write turns order commits already.
    log = AuditLog.open(backend.url)
    stop = threading.Event()
    snapshots: list[tuple[int, set[int]]] = []
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(60):
                _record(log, {"i": worker * 1000 + i}, {"ok": True})
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    def read() -> None:
        while not stop.is_set():
            with log.engine.connect() as connection:
                ids = set(connection.execute(select(audit_events.c.id)).scalars())
            if ids:
                snapshots.append((max(ids), ids))

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    reader.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    reader.join()
    try:
        with log.engine.connect() as connection:
            final = set(connection.execute(select(audit_events.c.id)).scalars())
    finally:
        log.close()
    assert errors == []
    assert len(final) == 240
    assert len(snapshots) > 10, "the reader did not overlap the writers"
    late = {
        missing
        for highest, seen in snapshots
        for missing in set(range(1, highest)) - seen
        if missing in final
    }
    assert late == set(), f"rows committed after a row with a larger id: {sorted(late)[:10]}"


def test_another_sqlalchemy_url_is_used(empty_root: Path) -> None:
    # PostgreSQL takes the same setting (postgresql+psycopg://...): every test taking
    # ``backend`` runs on it too.
    elsewhere = empty_root / "elsewhere" / "trail.db"
    with _client(empty_root, audit_url=f"sqlite:///{elsewhere}") as client:
        response = client.post(OPTIMIZE, json={"tickers": OWN_TICKERS, **OWN_MOMENTS})
        assert response.status_code == 200
    assert len(_rows(elsewhere, "request_id = ?", response.headers["X-Request-ID"])) == 1
    assert not (empty_root / "audit.db").exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="in-memory SQLite"):
        AuditLog.open(url)


def test_an_unusable_location_stops_the_start_with_a_clear_message(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RuntimeError, match="QUANTSERVE_AUDIT__URL"):
        AuditLog.open(f"sqlite:///{blocker / 'audit.db'}")
    # No PostgreSQL server listens on port 1: the start fails just as clearly, and the
    # message shows the URL without its password.
    with pytest.raises(RuntimeError, match=r"postgresql\+psycopg://quant:\*\*\*@") as caught:
        AuditLog.open("postgresql+psycopg://quant:s3cret@localhost:1/audit")
    assert "s3cret" not in str(caught.value)


def test_writers_to_one_file_take_turns_across_descriptors(tmp_path: Path) -> None:
    # Two WriteTurns on one file stand for two worker processes: each has its own open
    # file description, so flock orders them as it orders processes.
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    first, second = write_turns_for(url), write_turns_for(url)
    events: list[str] = []
    holding = threading.Event()

    def hold() -> None:
        with first.turn():
            events.append("first in")
            holding.set()
            time.sleep(0.3)
            events.append("first out")

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(5)
    with second.turn():
        events.append("second in")
    holder.join()
    first.close()
    second.close()

    assert events == ["first in", "first out", "second in"]
    assert (tmp_path / "audit.db.lock").exists()


def test_a_writer_waits_for_its_turn_no_longer_than_the_busy_timeout(tmp_path: Path) -> None:
    # Another process (here, descriptor) keeps the turn: the wait is bounded like
    # SQLite's own, so requests queued behind a stuck writer fail with 503, not hang.
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    stuck, waiting = write_turns_for(url, wait_seconds=0.3), write_turns_for(url, wait_seconds=0.3)
    outcome: list[object] = []

    def wait_for_turn() -> None:
        started = time.monotonic()
        try:
            with waiting.turn():
                outcome.append("got the turn")
        except WriteTurnTimeout as exc:
            outcome.append((exc, time.monotonic() - started))

    with stuck.turn():
        writer = threading.Thread(target=wait_for_turn)
        writer.start()
        writer.join(timeout=5)
        assert not writer.is_alive(), "the writer still waits for a turn that never comes"
    ((error, waited),) = outcome
    assert isinstance(error, SQLAlchemyError)  # so the audit answers 503
    assert 0.25 <= waited < 2
    assert "0.3 s" in str(error)
    # Threads of one process wait on the same bound.
    with waiting.turn():
        other = threading.Thread(target=wait_for_turn)
        other.start()
        other.join(timeout=5)
    assert isinstance(outcome[-1], tuple)
    # And the turn is free again once the writer is done.
    with waiting.turn():
        pass
    stuck.close()
    waiting.close()


def test_other_databases_take_no_turns() -> None:
    # PostgreSQL locks rows: a second writer must not wait for the first.
    turns = write_turns_for("postgresql+psycopg://quantserve@db.invalid/quantserve")
    entered = threading.Event()

    def write() -> None:
        with turns.turn():
            entered.set()

    with turns.turn():
        writer = threading.Thread(target=write)
        writer.start()
        assert entered.wait(5), "the second writer waited for the first"
    writer.join()


# -- stored size, fingerprint, retention, older databases ------------------------------


def _compact(value: Any) -> bytes:
    """The compact UTF-8 JSON a fingerprint is taken of, written with the standard library."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _raw(db: Path, row_id: int, column: str) -> str:
    """A column's text exactly as the file holds it."""
    with closing(sqlite3.connect(db)) as connection:
        (text,) = connection.execute(
            f"SELECT {column} FROM audit_events WHERE id = ?", (row_id,)
        ).fetchone()
    return str(text)


def _echo_router() -> APIRouter:
    """An audited endpoint that answers its body back: inputs and outputs of one size."""
    router = APIRouter()

    @router.post("/test/echo")
    async def echo(body: dict[str, Any], request: Request, audit: AuditDep) -> dict[str, Any]:
        return await audit.call(request, "test.echo", lambda: body, inputs=body)

    return router


@pytest.mark.parametrize("tickers", [10, 20_000], ids=["small", "over_64KiB"])
def test_bodies_are_stored_whole_up_to_the_cap_and_always_fingerprinted(
    empty_root: Path, backend: AuditDatabase, tickers: int
) -> None:
    body = {"tickers": [f"T{i}-é" for i in range(tickers)], "objective": "min_variance"}
    whole = _compact(body)
    client = _client(empty_root, audit_url=backend.app_url)
    client.app.include_router(_echo_router())  # type: ignore[attr-defined]
    with client:
        response = client.post("/test/echo", json=body)
        assert response.status_code == 200
        (event,) = client.get("/v1/audit", params={"action": "test.echo"}).json()["events"]
    db = empty_root / "audit.db"
    (row,) = backend.by_request(response.headers["X-Request-ID"])
    sha256 = hashlib.sha256(whole).hexdigest()
    assert row["inputs_sha256"] == event["inputs_sha256"] == sha256
    if len(whole) <= AuditSettings().max_stored_bytes:  # 64 KiB by default
        assert row["inputs"] == row["outputs"] == body
        if backend.kind == "sqlite":  # PostgreSQL's jsonb keeps no text to hash
            # The stored text is what was fingerprinted: anyone can check it with sha256sum.
            assert hashlib.sha256(_raw(db, row["id"], "inputs").encode()).hexdigest() == sha256
        return
    assert len(whole) > 64 * 1024
    note = {
        "truncated": True,
        "sha256": sha256,
        "size_bytes": len(whole),
        "note": "not stored: larger than audit.max_stored_bytes (65536 bytes); sha256 is "
        "of its whole compact UTF-8 JSON",
    }
    assert row["inputs"] == row["outputs"] == event["inputs"] == note
    for column in ("inputs", "outputs"):
        assert len(json.dumps(row[column])) < 400
    assert response.json() == body  # the client still gets its whole answer


def test_a_real_optimize_stores_its_inputs_with_their_fingerprint(empty_root: Path) -> None:
    with _client(empty_root) as client:
        response = client.post(OPTIMIZE, json={"tickers": OWN_TICKERS, **OWN_MOMENTS})
        assert response.status_code == 200
    db = empty_root / "audit.db"
    (row,) = _rows(db, "request_id = ?", response.headers["X-Request-ID"])
    assert row["inputs"]["tickers"] == OWN_TICKERS  # whole: the validated body, defaults too
    stored = _raw(db, row["id"], "inputs")
    assert row["inputs_sha256"] == hashlib.sha256(stored.encode()).hexdigest()


def _record(log: AuditLog, inputs: Any, outputs: Any) -> None:
    """One action recorded straight through the log, as a route would."""
    scope = {"type": "http", "method": "POST", "path": "/v1/x", "headers": [], "state": {}}

    async def one() -> None:
        async with log.action(Request(scope), "portfolios.optimize", inputs=inputs) as entry:
            entry.succeeded(outputs=outputs)

    anyio.run(one)


def test_the_cap_is_a_setting_and_holds_at_its_byte(backend: AuditDatabase) -> None:
    log = AuditLog.open(backend.url, settings=AuditSettings(max_stored_bytes=1024))
    at_cap = {"pad": "x" * (1024 - len(_compact({"pad": ""})))}
    over = {"pad": at_cap["pad"] + "x"}
    assert (len(_compact(at_cap)), len(_compact(over))) == (1024, 1025)
    try:
        _record(log, at_cap, over)
        _record(log, None, None)  # no inputs: NULL, and no fingerprint
    finally:
        log.close()
    first, empty = backend.rows()
    assert first["inputs"] == at_cap
    assert first["inputs_sha256"] == hashlib.sha256(_compact(at_cap)).hexdigest()
    assert first["outputs"]["truncated"] is True
    assert first["outputs"]["sha256"] == hashlib.sha256(_compact(over)).hexdigest()
    assert first["outputs"]["size_bytes"] == 1025
    assert (empty["inputs"], empty["inputs_sha256"], empty["outputs"]) == (None, None, None)
    with pytest.raises(ValidationError):
        AuditSettings(max_stored_bytes=10)


def test_rows_past_the_retention_are_deleted_at_start_and_newer_ones_kept(
    backend: AuditDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    url = backend.url
    AuditLog.open(url).close()  # the table, from a start without retention
    backend.insert_at(400, 31, 30.01, 29.99, 1, 0)
    AuditLog.open(url).close()  # no retention: nothing is ever deleted
    assert len(backend.ages()) == 6

    with caplog.at_level(logging.INFO, logger="app.services.audit"):
        log = AuditLog.open(url, settings=AuditSettings(retention_days=30))
        log.close()  # waits for the start's pass
    assert backend.ages() == ["age-0", "age-1", "age-29.99"]
    assert any("deleted 3 rows older than" in r.getMessage() for r in caplog.records)


def test_the_write_path_starts_a_pass_at_most_once_per_interval(backend: AuditDatabase) -> None:
    url = backend.url
    AuditLog.open(url).close()  # the table
    settings = AuditSettings(retention_days=7)
    # Built without open(), so no pass has run at start: the writes start them.
    log = AuditLog(create_audit_engine(url), settings=settings, purge_every=timedelta(0))
    try:
        backend.insert_at(8, 6)
        _record(log, {"i": 1}, {"ok": True})  # starts a pass in the background
        deadline = time.monotonic() + 10
        while "age-8" in backend.ages() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert backend.ages() == ["age-6"]
    finally:
        log.close()
    # With the default interval (an hour), a second write within it starts no pass.
    hourly = AuditLog(create_audit_engine(url), settings=settings)
    try:
        _record(hourly, {"i": 2}, {"ok": True})
        first = hourly._purging
        assert first is not None
        first.join()
        backend.insert_at(9)
        _record(hourly, {"i": 3}, {"ok": True})
        assert hourly._purging is first
        assert "age-9" in backend.ages()
    finally:
        hourly.close()


def test_a_pass_deletes_in_batches_until_none_is_left(backend: AuditDatabase) -> None:
    AuditLog.open(backend.url).close()  # the table
    # Built without open(): no pass starts in the background, this test runs its own.
    log = AuditLog(create_audit_engine(backend.url), settings=AuditSettings(retention_days=1))
    try:
        backend.insert_at(5, 4, 3, 2, 2, 0.5)
        assert log.purge_expired(batch_size=2) == 5
        assert backend.ages() == ["age-0.5"]
        assert log.purge_expired(batch_size=2) == 0
    finally:
        log.close()


# The table as the first release created it, before inputs_sha256.
_FIRST_RELEASE_SCHEMA = """
CREATE TABLE audit_events (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    occurred_at DATETIME NOT NULL,
    request_id VARCHAR(128),
    key_id VARCHAR(64) NOT NULL,
    action VARCHAR(64) NOT NULL,
    method VARCHAR(16) NOT NULL,
    path VARCHAR(2048) NOT NULL,
    status INTEGER,
    outcome VARCHAR(64) NOT NULL,
    inputs JSON,
    model_versions JSON,
    outputs JSON,
    duration_ms FLOAT
);
CREATE INDEX ix_audit_events_action_id ON audit_events (action, id);
CREATE INDEX ix_audit_events_key_id_id ON audit_events (key_id, id);
CREATE INDEX ix_audit_events_occurred_at ON audit_events (occurred_at);
INSERT INTO audit_events (occurred_at, request_id, key_id, action, method, path, status,
    outcome, inputs, outputs, duration_ms)
VALUES ('2025-01-31 12:00:00.000000', 'old-row', 'alice', 'portfolios.optimize', 'POST',
    '/v1/portfolios/optimize', 200, 'success', '{"tickers":["A"]}', '{"weights":{"A":1.0}}', 1.5);
"""


def test_a_database_of_the_first_release_opens_and_gains_the_fingerprint_column(
    empty_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = empty_root / "audit.db"
    with closing(sqlite3.connect(db)) as connection:
        connection.executescript(_FIRST_RELEASE_SCHEMA)
    for start in range(2):  # the second start finds the column and changes nothing
        caplog.clear()
        with (
            caplog.at_level(logging.WARNING, logger="app.services.audit"),
            _client(empty_root) as client,
        ):
            response = client.post(OPTIMIZE, json={"tickers": OWN_TICKERS, **OWN_MOMENTS})
            assert response.status_code == 200, response.text
            events = client.get("/v1/audit").json()["events"]
        added = [r for r in caplog.records if "added the column inputs_sha256" in r.getMessage()]
        assert len(added) == (1 if start == 0 else 0)
        assert [e["request_id"] for e in events][-1] == "old-row"
        assert events[-1]["inputs"] == {"tickers": ["A"]}
        assert events[-1]["inputs_sha256"] is None  # recorded before the column existed
        assert events[0]["inputs_sha256"] == _rows(db)[-1]["inputs_sha256"]
        assert events[0]["inputs_sha256"] is not None
    (old,) = _rows(db, "request_id = 'old-row'")
    assert (old["status"], old["outputs"]) == (200, {"weights": {"A": 1.0}})


def test_a_postgresql_table_without_the_fingerprint_column_gains_it(
    empty_root: Path, postgres: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.create_database()
    trail = AuditDatabase("postgresql", url, url, None)
    AuditLog.open(url).close()
    # The table as the first release left it: no inputs_sha256, one row.
    trail.execute(
        "ALTER TABLE audit_events DROP COLUMN inputs_sha256",
        "INSERT INTO audit_events (occurred_at, request_id, key_id, action, method, path, "
        "status, outcome, inputs) VALUES (now(), 'old-row', 'alice', 'portfolios.optimize', "
        """'POST', '/v1/portfolios/optimize', 200, 'success', '{"tickers": ["A"]}')""",
    )
    for start in range(2):  # the second start finds the column and changes nothing
        caplog.clear()
        with (
            caplog.at_level(logging.WARNING, logger="app.services.audit"),
            _client(empty_root, audit_url=url) as client,
        ):
            response = client.post(OPTIMIZE, json={"tickers": OWN_TICKERS, **OWN_MOMENTS})
            assert response.status_code == 200, response.text
        added = [r for r in caplog.records if "added the column inputs_sha256" in r.getMessage()]
        assert len(added) == (1 if start == 0 else 0)
    old, *new = trail.rows()
    assert (old["request_id"], old["inputs"], old["inputs_sha256"]) == (
        "old-row",
        {"tickers": ["A"]},
        None,
    )
    assert [len(row["inputs_sha256"]) for row in new] == [64, 64]


def test_the_app_applies_the_configured_retention_and_cap(
    tmp_path: Path, backend: AuditDatabase
) -> None:
    """The settings reach the log the lifespan opens: old rows go, big bodies are capped."""
    url = backend.url
    AuditLog.open(url).close()
    backend.insert_at(90, 1)
    settings = Settings(
        environment="test",
        data_dir=tmp_path,
        models_dir=tmp_path,
        audit=AuditSettings(url=url, retention_days=30, max_stored_bytes=1024),
    )
    returns = np.random.default_rng(0).normal(0.0004, 0.01, size=(100, 3)).round(6).tolist()
    body = {"tickers": ["ALPHA", "BETA", "GAMMA"], "returns": returns, "periods_per_year": 252}
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        assert client.post(OPTIMIZE, json=body).status_code == 200
    aged = [r for r in backend.ages() if r.startswith("age-")]
    assert aged == ["age-1"]  # the 90-day-old row was deleted at start
    (optimize,) = backend.rows("action = ?", "portfolios.optimize")[-1:]
    assert optimize["inputs"]["truncated"] is True  # the body is more than 1 KiB
