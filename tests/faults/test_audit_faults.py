"""The audit database locked by another process, or its disk full, under load: each
optimize is either recorded and answered 200, or answered 503 and not recorded at all.

The disk-full test mounts a small tmpfs (root and CAP_SYS_ADMIN, as on the CI machine);
it is skipped, saying so, where mounting is not allowed.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults._load import Load, Outcome, Request, Tally
from tests.faults.conftest import TICKERS, Keys, fault_seconds, headers

OPTIMIZE = "/v1/portfolios/optimize"
AUDITED = Request("POST", OPTIMIZE, {"tickers": TICKERS}, expected=frozenset({200, 503}))
NOT_AUDITED = Request("POST", "/v1/forecasts", {"tickers": TICKERS})
PROBLEM = "application/problem+json"


def _recorded(database: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return connection.execute(
            "SELECT request_id, status, outcome FROM audit_events WHERE action = ?",
            ("portfolios.optimize",),
        ).fetchall()


def _check_every_answer_against_the_trail(load: Load, database: Path) -> Tally:
    """Every 200 has its committed row, no 503 has one, and no row is partial."""
    optimizes = [o for o in load.outcomes() if o.request.path == OPTIMIZE]
    answered = {_request_id(o) for o in optimizes if o.status == 200}
    refused = [o for o in optimizes if o.status == 503]
    rows = _recorded(database)
    assert all(row["status"] == 200 and row["outcome"] == "success" for row in rows), [
        dict(r) for r in rows if r["status"] != 200
    ]
    assert {row["request_id"] for row in rows} == answered
    assert len(rows) == len(answered)
    for outcome in refused:
        assert outcome.headers["content-type"] == PROBLEM
        assert outcome.headers["retry-after"] == "5"
        assert outcome.body["type"] == "/problems/audit-unavailable"
        assert outcome.body["performed"] is False
        assert "weights" not in outcome.body
    assert refused, "the fault was never felt: no optimize was refused"
    return load.tally()


def _request_id(outcome: Outcome) -> str:
    return outcome.headers["x-request-id"]


def test_a_locked_audit_database_refuses_with_503_and_records_no_partial_row(
    serve, root: Path, keys: Keys, report
) -> None:
    database = root / "data" / "audit.db"
    with (
        serve() as server,
        Load(server.url, [AUDITED, NOT_AUDITED], headers=headers(keys.trader)) as load,
    ):
        time.sleep(fault_seconds())
        # Another process takes SQLite's write lock and keeps it past the writers' 5 s wait.
        holder = sqlite3.connect(database, timeout=30, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        locked_at = time.monotonic()
        time.sleep(max(fault_seconds(), 7.0))
        holder.execute("ROLLBACK")
        holder.close()
        released_at = time.monotonic()
        time.sleep(fault_seconds())

    tally = _check_every_answer_against_the_trail(load, database)
    report("audit database locked", tally)
    assert tally.failed == 0, tally.failures[:5]
    # Refused only while the lock was held; recorded again after.
    refused = [o for o in load.outcomes() if o.status == 503]
    # A writer waits at most 5 s for its turn, then 5 s for SQLite's lock.
    assert all(locked_at <= o.ended <= released_at + 10 for o in refused)
    after = load.outcomes(since=released_at + 0.5)
    assert [o.status for o in after if o.request.path == OPTIMIZE].count(200) > 3
    assert {o.status for o in after} == {200}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs (room for SQLite's 4 MiB write-ahead log), unmounted at the end."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """A file that takes every free byte of ``disk``."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError) as full:  # noqa: PT011  # the errno is checked below
            _write_until_full(fd)
    finally:
        os.close(fd)
    assert full.value.errno == errno.ENOSPC
    return filler


def _write_until_full(fd: int) -> None:
    while True:
        os.write(fd, b"\0" * 65536)


def test_a_full_disk_refuses_with_503_and_records_no_partial_row(
    serve, keys: Keys, small_disk: Path, report
) -> None:
    database = small_disk / "audit.db"
    with (
        serve(QUANTSERVE_AUDIT__URL=f"sqlite:///{database}") as server,
        Load(server.url, [AUDITED, NOT_AUDITED], headers=headers(keys.trader)) as load,
    ):
        time.sleep(fault_seconds())
        filler = _fill(small_disk)
        full_at = time.monotonic()
        time.sleep(fault_seconds())
        filler.unlink()
        freed_at = time.monotonic()
        time.sleep(fault_seconds())

    tally = _check_every_answer_against_the_trail(load, database)
    report("audit disk full", tally)
    assert tally.failed == 0, tally.failures[:5]
    refused = [o for o in load.outcomes() if o.status == 503]
    assert all(full_at <= o.ended for o in refused)
    after = load.outcomes(since=freed_at + 0.5)
    assert [o.status for o in after if o.request.path == OPTIMIZE].count(200) > 3
    assert {o.status for o in after} == {200}
