"""The back-test jobs database locked by another process: a submission is a 503 that says
to retry, never a 500, and no job is queued that the caller was not told about."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import BacktestJobSettings, Settings
from app.main import create_app
from tests.app._problems import assert_problem

BODY = {
    "strategies": ["equal_weight"],
    "start": "2018-01-01",
    "end": "2019-06-30",
    "rebalance": "monthly",
}


def test_a_locked_jobs_database_is_a_503_to_retry(tmp_path: Path) -> None:
    settings = Settings(
        environment="test",
        data_dir=tmp_path / "data",
        models_dir=tmp_path / "models",
        backtests=BacktestJobSettings(max_concurrent=0),
    )
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        database = tmp_path / "data" / "backtests.db"
        with closing(sqlite3.connect(database, isolation_level=None)) as holder:
            holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
            response = client.post("/v1/backtests", json=BODY)
            holder.execute("ROLLBACK")

        problem = assert_problem(response, 503, "store-unavailable")
        assert response.headers["Retry-After"] == "5"
        assert "Retry after a few seconds" in problem["detail"]
        assert "sqlite" not in response.text.lower()
        assert str(tmp_path) not in response.text
        assert client.get("/v1/backtests").json()["backtests"] == []

        # The lock gone, the same submission is queued.
        assert client.post("/v1/backtests", json=BODY).status_code == 202
