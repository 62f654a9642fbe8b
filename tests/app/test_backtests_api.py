"""Back-tests over HTTP: real app, real SQLite jobs table, real worker processes.

Two servers share one data folder, one after the other, as a restart would:

1. a server that only queues (``backtests.max_concurrent: 0``, as an API-only replica
   would run): submissions, refusals, the queue limit, cancelling, listing, auditing;
2. the same folder after its job was left ``running`` by a worker that died (its row and
   its half-written staging folder written as a dead worker leaves them), started with
   one worker process: the job is queued again at start and runs to success, and a job
   already started ``max_attempts`` times is failed instead.

The jobs back-test the embedded S&P 500 set over 2018-01..2019-06, monthly.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, insert, select, update

from app.core.config import BacktestJobSettings, Settings
from app.main import create_app
from app.services._backtest_store import BacktestStore, JobStatus, Owner, backtest_jobs
from app.services.errors import BacktestQueueFull
from backtest import (
    METRICS_FILE,
    REPORT_FILE,
    RETURNS_FILE,
    STRATEGY_NAMES,
    VOL_TARGET_SUFFIX,
    WEIGHTS_FILE,
)
from tests.app._problems import assert_problem
from tests.postgres import PostgresCluster

PROBLEM = "application/problem+json"
BACKTESTS = "/v1/backtests"
PERIOD: dict[str, Any] = {
    "start": "2018-01-01",
    "end": "2019-06-30",
    "rebalance": "monthly",
    "cost_bps": 10,
}
CAPPED_MEAN_VARIANCE: dict[str, Any] = {
    "name": "capped_mv",
    "objective": "mean_variance",
    "risk_aversion": 5,
    "constraints": {
        "max_weight": 0.3,
        "groups": {"tech": {"tickers": ["AAPL", "MSFT"], "max_weight": 0.3}},
    },
    "inputs": {"expected_returns": "trailing_mean", "lookback_days": 126},
    "transaction_costs_bps": 10,
}
BODY: dict[str, Any] = {
    "strategies": ["equal_weight", "min_variance", CAPPED_MEAN_VARIANCE],
    **PERIOD,
}
OUTPUT_FILES = {METRICS_FILE, RETURNS_FILE, WEIGHTS_FILE, REPORT_FILE}
FINAL = {"succeeded", "failed", "cancelled"}


class _Server:
    """An app over ``root`` whose lifespan runs until ``stop`` (a restart stops one)."""

    def __init__(self, root: Path, max_concurrent: int, max_queued: int = 8) -> None:
        settings = Settings(
            environment="test",
            data_dir=root / "data",
            models_dir=root / "models",
            backtests=BacktestJobSettings(
                max_concurrent=max_concurrent,
                max_queued=max_queued,
                poll_interval_seconds=0.2,
            ),
        )
        self.client = TestClient(create_app(settings, registry=CollectorRegistry()))
        self.client.__enter__()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.client.__exit__(None, None, None)


def _wait_until_final(client: TestClient, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"{BACKTESTS}/{job_id}").json()
        if job["status"] in FINAL:
            return job
        assert time.monotonic() < deadline, f"still {job['status']} after {timeout} s: {job}"
        time.sleep(0.5)


def _audit_rows(root: Path, action: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(root / "data" / "audit.db")) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute(
            "SELECT * FROM audit_events WHERE action = ? ORDER BY id", (action,)
        ).fetchall()
    return [dict(row) for row in rows]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data and models folders both servers share; no model is trained."""
    return tmp_path_factory.mktemp("backtests")


@pytest.fixture(scope="module")
def queueing(root: Path) -> Iterator[_Server]:
    """The first server: it queues jobs (at most two waiting) and runs none."""
    server = _Server(root, max_concurrent=0, max_queued=2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def submitted(queueing: _Server) -> Any:
    """The back-test both servers see: queued by the first, run by the second."""
    return queueing.client.post(BACKTESTS, json=BODY)


# -- the queueing server -------------------------------------------------------------


def test_a_backtest_is_accepted_with_its_location(queueing: _Server, submitted: Any) -> None:
    assert submitted.status_code == 202, submitted.text
    accepted = submitted.json()
    location = f"{BACKTESTS}/{accepted['id']}"
    assert submitted.headers["Location"] == accepted["location"] == location
    assert accepted["status"] == "queued"

    job = queueing.client.get(location).json()
    assert job["status"] == "queued"
    assert job["attempts"] == 0
    assert job["progress"] == {"done": 0, "total": None, "fraction": None}
    for unset in ("started_at", "finished_at", "metrics", "report", "error"):
        assert job[unset] is None, unset
    assert job["request"]["strategies"][:2] == ["equal_weight", "min_variance"]
    assert job["request"]["strategies"][2]["constraints"]["groups"]["tech"]["max_weight"] == 0.3
    # Refused until it has succeeded.
    assert_problem(queueing.client.get(f"{location}/report"), 409, "backtest-conflict")


def test_an_unknown_strategy_name_is_refused_with_the_choices(queueing: _Server) -> None:
    body = {**BODY, "strategies": ["equal_weight", "magic_alpha"]}
    problem = assert_problem(queueing.client.post(BACKTESTS, json=body), 422, "invalid-backtest")
    assert "'magic_alpha'" in problem["detail"]
    for name in STRATEGY_NAMES:
        assert name in problem["detail"]
    assert VOL_TARGET_SUFFIX in problem["detail"]
    assert problem["strategies"] == list(STRATEGY_NAMES)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"name": "mv", "objective": "min_variance", "risk_aversion": 3},
            "risk_aversion applies only to objective 'mean_variance'",
        ),
        (
            {"name": "hrp_ward", "objective": "hrp", "linkage": "ward", "cvar_alpha": 0.9},
            "cvar_alpha applies only to objective 'min_cvar'",
        ),
        (
            {"name": "sharpe", "objective": "max_sharpe"},
            "objective 'max_sharpe' needs expected returns",
        ),
        (
            {"name": "min_variance", "objective": "min_variance"},
            "'min_variance' is the name of a catalog strategy",
        ),
    ],
    ids=["risk_aversion", "cvar_alpha", "no_returns", "catalog_name"],
)
def test_a_spec_is_checked_like_an_optimize_request(
    queueing: _Server, spec: dict[str, Any], message: str
) -> None:
    body = {**BODY, "strategies": ["equal_weight", spec]}
    problem = assert_problem(queueing.client.post(BACKTESTS, json=body), 422, "invalid-request")
    assert message in problem["detail"]


def test_bad_dates_are_refused_at_once(queueing: _Server) -> None:
    body = {**BODY, "start": "2019-06-30", "end": "2018-01-01"}
    problem = assert_problem(queueing.client.post(BACKTESTS, json=body), 422, "invalid-backtest")
    assert "start 2019-06-30 must be before end 2018-01-01" in problem["detail"]


def test_tickers_the_data_set_lacks_are_refused_at_once(queueing: _Server) -> None:
    body = {**BODY, "tickers": ["AAPL", "NOPE"], "strategies": ["equal_weight"]}
    problem = assert_problem(queueing.client.post(BACKTESTS, json=body), 404, "unknown-ticker")
    assert problem["unknown_tickers"] == ["NOPE"]
    spec = {**CAPPED_MEAN_VARIANCE, "constraints": {"asset_bounds": {"NOPE": {"max_weight": 0.1}}}}
    body = {**BODY, "strategies": [spec]}
    problem = assert_problem(queueing.client.post(BACKTESTS, json=body), 422, "invalid-backtest")
    assert (
        "strategies.0.constraints.asset_bounds names NOPE, not in the data set"
        in (problem["detail"])
    )


def test_forecast_strategies_without_forecasts_are_refused_at_once(queueing: _Server) -> None:
    body = {**BODY, "strategies": ["forecast_min_variance", "min_variance+vol_target"]}
    problem = assert_problem(queueing.client.post(BACKTESTS, json=body), 422, "missing-forecasts")
    assert (
        "forecast_min_variance, min_variance+vol_target need the walk-forward"
        in (problem["detail"])
    )
    assert "quantserve evaluate" in problem["detail"]


def test_an_unknown_id_is_404(queueing: _Server) -> None:
    for response in (
        queueing.client.get(f"{BACKTESTS}/0123abcd"),
        queueing.client.get(f"{BACKTESTS}/0123abcd/report"),
        queueing.client.delete(f"{BACKTESTS}/0123abcd"),
    ):
        problem = assert_problem(response, 404, "backtest-not-found")
        assert problem["id"] == "0123abcd"


def test_a_full_queue_is_429_and_a_queued_job_can_be_cancelled(
    root: Path, queueing: _Server, submitted: Any
) -> None:
    client = queueing.client
    second = client.post(BACKTESTS, json={**BODY, "strategies": ["equal_weight"]})
    assert second.status_code == 202, second.text  # two queued now: the limit

    full = client.post(BACKTESTS, json=BODY)
    problem = assert_problem(full, 429, "backtest-queue-full")
    assert int(full.headers["Retry-After"]) > 0
    assert (problem["limit"], problem["value"], problem["queued"]) == (
        "backtests.max_queued",
        2,
        2,
    )

    location = second.headers["Location"]
    cancelled = client.delete(location)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    job = client.get(location).json()
    assert job["status"] == "cancelled"
    assert job["finished_at"] is not None
    # Final: cancelling again is a conflict, and it never ran.
    problem = assert_problem(client.delete(location), 409, "backtest-conflict")
    assert problem["backtest_status"] == "cancelled"
    assert job["attempts"] == 0
    assert not (root / "data" / "backtests" / second.json()["id"]).exists()


def test_backtests_are_listed_newest_first(queueing: _Server, submitted: Any) -> None:
    first = queueing.client.get(BACKTESTS, params={"limit": 1}).json()
    (newest,) = first["backtests"]
    assert newest["strategies"] == ["equal_weight"]  # the one cancelled above
    assert newest["status"] == "cancelled"
    second = queueing.client.get(
        BACKTESTS, params={"limit": 1, "cursor": first["next_cursor"]}
    ).json()
    (older,) = second["backtests"]
    assert older["id"] == submitted.json()["id"]
    assert older["strategies"] == ["equal_weight", "min_variance", "capped_mv"]
    assert second["next_cursor"] is None


def test_submissions_and_cancellations_are_audited(root: Path, submitted: Any) -> None:
    created = _audit_rows(root, "backtests.create")
    by_status: dict[int, list[dict[str, Any]]] = {}
    for row in created:
        by_status.setdefault(row["status"], []).append(row)
    accepted = by_status[202]
    assert json.loads(accepted[0]["outputs"])["id"] == submitted.json()["id"]
    assert {r["outcome"] for r in accepted} == {"success"}
    assert json.loads(accepted[0]["inputs"])["strategies"][0] == "equal_weight"
    assert [r["outcome"] for r in by_status[429]] == ["backtest-queue-full"]
    assert "invalid-backtest" in {r["outcome"] for r in by_status[422]}
    assert "started" not in {r["outcome"] for r in created}

    cancels = _audit_rows(root, "backtests.cancel")
    assert [(r["status"], r["outcome"]) for r in cancels] == [
        (404, "backtest-not-found"),
        (200, "success"),
        (409, "backtest-conflict"),
    ]


# -- a restart: the second server runs what the first left ---------------------------


def _dead_pid() -> int:
    """The id of a process that ran and is gone, as a crashed server's would be."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture(scope="module")
def restarted(root: Path, queueing: _Server, submitted: Any) -> Iterator[dict[str, Any]]:
    """The submitted job as a worker that died mid-run left it, then a restart.

    Also a job that already died on every one of its three starts.
    """
    queueing.stop()
    job_id = submitted.json()["id"]
    database = root / "data" / "backtests.db"
    engine = create_engine(f"sqlite:///{database}")
    dead = {
        "status": "running",
        "owner_host": socket.gethostname(),
        "owner_pid": _dead_pid(),
        "owner": "0" * 32,
        "heartbeat_at": datetime.now(UTC) - timedelta(hours=1),
        "started_at": datetime.now(UTC) - timedelta(hours=1),
        "done": 17,
        "total": 76,
    }
    with engine.begin() as connection:
        connection.execute(
            update(backtest_jobs)
            .where(backtest_jobs.c.id == job_id)
            .values(**dead, attempts=1, claim="a" * 32)
        )
        row = (
            connection.execute(select(backtest_jobs).where(backtest_jobs.c.id == job_id))
            .mappings()
            .one()
        )
        exhausted_id = "e" * 32
        connection.execute(
            insert(backtest_jobs).values(
                {
                    **{k: v for k, v in row.items() if k not in ("seq", "id", "output_dir")},
                    **dead,
                    "id": exhausted_id,
                    "output_dir": str(Path(row["output_dir"]).with_name(exhausted_id)),
                    "attempts": 3,
                    "claim": "b" * 32,
                }
            )
        )
    engine.dispose()
    # The worker died while writing its folder beside its final place.
    staging = root / "data" / "backtests" / f".{job_id}.tmp-0123456789abcdef"
    staging.mkdir(parents=True)
    (staging / METRICS_FILE).write_text('{"strategies": {"equal_wei')

    server = _Server(root, max_concurrent=1)
    try:
        # Right after the start, before any job could finish.
        at_start = {
            "job": server.client.get(f"{BACKTESTS}/{job_id}").json(),
            "exhausted": server.client.get(f"{BACKTESTS}/{exhausted_id}").json(),
        }
        fresh = server.client.post(BACKTESTS, json={**BODY, "strategies": ["min_variance"]})
        assert fresh.status_code == 202, fresh.text
        yield {
            "client": server.client,
            "id": job_id,
            "at_start": at_start,
            "fresh": fresh.json()["id"],
        }
    finally:
        server.stop()


def test_a_job_left_running_by_a_dead_worker_is_queued_again_at_start(
    restarted: dict[str, Any],
) -> None:
    job = restarted["at_start"]["job"]
    assert job["status"] in ("queued", "running")
    assert job["attempts"] == (1 if job["status"] == "queued" else 2)
    assert job["error"] is None


def test_a_job_that_died_on_every_attempt_is_failed(restarted: dict[str, Any]) -> None:
    job = restarted["at_start"]["exhausted"]
    assert job["status"] == "failed"
    assert job["attempts"] == 3
    assert job["finished_at"] is not None
    error = job["error"]
    assert error["type"] == "/problems/backtest-interrupted"
    assert error["status"] == 500
    assert "started 3 times" in error["detail"]
    assert "backtests.max_attempts" in error["detail"]


@pytest.fixture(scope="module")
def recovered(root: Path, restarted: dict[str, Any]) -> dict[str, Any]:
    """The re-queued job, polled to its end by the restarted server."""
    return _wait_until_final(restarted["client"], restarted["id"])


def test_the_requeued_job_succeeds_with_its_whole_folder(
    root: Path, restarted: dict[str, Any], recovered: dict[str, Any]
) -> None:
    assert recovered["status"] == "succeeded", recovered["error"]
    assert recovered["attempts"] == 2
    assert recovered["progress"]["done"] == recovered["progress"]["total"] > 0
    assert recovered["progress"]["fraction"] == 1.0
    # All four outputs, none of the dead run's half-written staging folder.
    output = root / "data" / "backtests" / restarted["id"]
    assert {p.name for p in output.iterdir()} == OUTPUT_FILES
    leftovers = [p.name for p in output.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    # The metrics answered are metrics.json's.
    on_disk = json.loads((output / METRICS_FILE).read_text())
    assert recovered["metrics"] == on_disk
    strategies = recovered["metrics"]["strategies"]
    assert set(strategies) == {"equal_weight", "min_variance", "capped_mv", "index"}
    assert strategies["capped_mv"]["failed_rebalances"] == 0
    assert "group_bounds" in strategies["capped_mv"]["description"]
    settings = recovered["metrics"]["settings"]
    assert (settings["start"], settings["rebalance"]) == ("2018-01-02", "monthly")
    assert settings["end"] <= "2019-06-30"


def test_the_report_is_html(restarted: dict[str, Any], recovered: dict[str, Any]) -> None:
    assert recovered["report"] == f"{BACKTESTS}/{restarted['id']}/report"
    response = restarted["client"].get(recovered["report"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.lstrip().lower().startswith("<!doctype html")
    assert "capped_mv" in response.text


def test_a_finished_job_cannot_be_cancelled(
    restarted: dict[str, Any], recovered: dict[str, Any]
) -> None:
    response = restarted["client"].delete(f"{BACKTESTS}/{restarted['id']}")
    problem = assert_problem(response, 409, "backtest-conflict")
    assert problem["backtest_status"] == "succeeded"


def test_a_job_submitted_to_a_running_server_succeeds(
    root: Path, restarted: dict[str, Any], recovered: dict[str, Any]
) -> None:
    job = _wait_until_final(restarted["client"], restarted["fresh"])
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 1
    output = root / "data" / "backtests" / job["id"]
    assert {p.name for p in output.iterdir()} == OUTPUT_FILES
    assert job["metrics"] == json.loads((output / METRICS_FILE).read_text())
    assert set(job["metrics"]["strategies"]) == {"equal_weight", "min_variance", "index"}
    listed = restarted["client"].get(BACKTESTS).json()["backtests"]
    assert [j["status"] for j in listed[:2]] == ["succeeded", "failed"]  # fresh, exhausted


# -- the store under several servers, on SQLite and on PostgreSQL (tests/postgres.py) ---


@pytest.fixture(params=["sqlite", "postgresql"])
def jobs_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new jobs database: a SQLite file, or a database on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'backtests.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.create_database()


@pytest.fixture
def two_stores(jobs_url: str) -> Iterator[tuple[BacktestStore, BacktestStore]]:
    """One jobs database opened twice, as two server processes open it."""
    stores = (BacktestStore.open(jobs_url), BacktestStore.open(jobs_url))
    yield stores
    for store in stores:
        store.close()


def _queue(store: BacktestStore, count: int, root: Path) -> list[str]:
    return [
        store.add(key_id="test", request=BODY, params={}, output_root=root, max_queued=100).id
        for _ in range(count)
    ]


def test_two_servers_never_claim_one_job_twice(
    tmp_path: Path, two_stores: tuple[BacktestStore, BacktestStore]
) -> None:
    queued = _queue(two_stores[0], 12, tmp_path)
    claimed: list[list[str]] = [[], []]

    def claim_all(position: int) -> None:
        owner = Owner("host", 1000 + position, f"{position:032d}")
        while (claim := two_stores[position].claim_next(owner)) is not None:
            claimed[position].append(claim.job.id)

    threads = [threading.Thread(target=claim_all, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    both = claimed[0] + claimed[1]
    assert sorted(both) == sorted(queued)  # each once, none twice
    for job_id in queued:
        job = two_stores[1].get(job_id)
        assert job is not None
        assert (job.status, job.attempts) == (JobStatus.RUNNING, 1)


def test_a_run_that_lost_its_claim_cannot_write(
    tmp_path: Path, two_stores: tuple[BacktestStore, BacktestStore]
) -> None:
    store, other = two_stores
    owner = Owner("host", 1, "1" * 32)
    cancelled, released = _queue(store, 2, tmp_path)
    first = store.claim_next(owner)
    assert first is not None
    assert first.job.id == cancelled
    # Cancelled by another server: the run's writes no longer match the row.
    other.cancel(cancelled)
    assert not store.holds(cancelled, first.token)
    assert not store.progress(cancelled, first.token, 3, 10)
    assert not store.succeed(cancelled, first.token, {"strategies": {}})
    job = store.get(cancelled)
    assert job is not None
    assert (job.status, job.metrics) == (JobStatus.CANCELLED, None)
    # A server that stops queues its running job again, its start not counted.
    second = store.claim_next(owner)
    assert second is not None
    assert second.job.id == released
    assert store.release(owner) == [released]
    job = store.get(released)
    assert job is not None
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 0)
    assert not store.succeed(released, second.token, {"strategies": {}})


def _submit_at_once(stores: list[BacktestStore], root: Path, max_queued: int) -> list[str]:
    """One job submitted through each store at the same moment; the ids accepted."""
    start = threading.Barrier(len(stores))
    accepted: list[str] = []

    def submit(store: BacktestStore) -> None:
        start.wait()
        try:
            job = store.add(
                key_id="test", request=BODY, params={}, output_root=root, max_queued=max_queued
            )
        except BacktestQueueFull:
            return
        accepted.append(job.id)

    threads = [threading.Thread(target=submit, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return accepted


def test_concurrent_submissions_never_pass_the_queue_limit(tmp_path: Path, jobs_url: str) -> None:
    # Six servers submit at once into a queue with room for two: each counts the queue
    # and inserts in one transaction, and no two may both count before either inserts.
    stores = [BacktestStore.open(jobs_url) for _ in range(6)]
    try:
        for round_ in range(3):
            accepted = _submit_at_once(stores, tmp_path, max_queued=2)
            assert len(accepted) == 2, round_
            queued = [job for job in stores[0].page(limit=100).records if job.status == "queued"]
            assert sorted(job.id for job in queued) == sorted(accepted)
            for job_id in accepted:  # empty the queue for the next round
                stores[0].cancel(job_id)
        assert len(stores[0].page(limit=100).records) == 6
    finally:
        for store in stores:
            store.close()


def test_the_api_queues_lists_and_cancels_on_either_database(tmp_path: Path, jobs_url: str) -> None:
    # An API-only server (no worker) over the jobs database of backtests.url.
    settings = Settings(
        environment="test",
        data_dir=tmp_path / "data",
        models_dir=tmp_path / "models",
        backtests=BacktestJobSettings(url=jobs_url, max_concurrent=0, max_queued=1),
    )
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        accepted = client.post(BACKTESTS, json=BODY)
        assert accepted.status_code == 202, accepted.text
        assert_problem(client.post(BACKTESTS, json=BODY), 429, "backtest-queue-full")
        location = accepted.headers["Location"]
        assert client.get(location).json()["status"] == "queued"
        listed = client.get(BACKTESTS).json()["backtests"]
        assert [job["id"] for job in listed] == [accepted.json()["id"]]
        cancelled = client.delete(location)
        assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    store = BacktestStore.open(jobs_url)
    try:
        job = store.get(accepted.json()["id"])
        assert job is not None
        assert (job.status, job.key_id) == (JobStatus.CANCELLED, "dev")
    finally:
        store.close()
    assert not (tmp_path / "data" / "backtests.db").exists()


def test_an_id_with_a_nul_finds_no_job(jobs_url: str) -> None:
    # PostgreSQL's text cannot hold NUL: the id must match nothing, not fail the query.
    store = BacktestStore.open(jobs_url)
    try:
        assert store.get("job\x00") is None
        assert store.cancel("job\x00") is None
    finally:
        store.close()
