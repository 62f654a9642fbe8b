"""Every back-test job, its state and its results: reads and conditional writes.

The table is ``backtest_jobs`` (``app.services._backtest_table``), kept like the audit
trail (``app.services._audit_table``: the same engine, SQLite WAL pragmas and write
turns) in its own database, ``<data_dir>/backtests.db`` by default, which every server
process and worker process shares.

A job's life, each step one conditional UPDATE so that concurrent processes agree::

    queued ──claim──▶ running ──▶ succeeded | failed
      │                  │ ╲
      └── cancel ──▶ cancelled   └── its server died or stopped ──▶ queued (again)

- **Claim** (``status='queued'`` → ``running``): only one process's UPDATE matches the
  row, so a job never runs twice at once. It draws a fresh ``claim`` token; every later
  write of that run is conditional on the token, so a run that lost its claim (cancelled,
  or taken as dead and re-queued) can no longer change the row.
- **Heartbeat**: the server running a job refreshes ``heartbeat_at``; a running job not
  heard of for ``stale_after_seconds``, or whose server process is gone from this host,
  is re-queued, and failed once it has been started ``max_attempts`` times.
- **Succeeded** is written after the job's output folder is in place, never before.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.engine import Engine

from app.services._audit_table import (
    create_database_engine,
    create_tables,
    serialize_inserts,
)
from app.services._backtest_table import (
    FINAL_STATUSES,
    Claim,
    JobPage,
    JobRecord,
    JobStatus,
    Owner,
    Recovery,
    backtest_jobs,
    claimed_update,
    job_row,
    job_row_or_none,
    metadata,
    record_of,
    utc_now,
)
from app.services._write_turns import WriteTurns, write_turns_for
from app.services.errors import BacktestQueueFull

__all__ = [
    "BacktestStore",
    "Claim",
    "JobPage",
    "JobRecord",
    "JobStatus",
    "Owner",
    "Recovery",
    "backtest_jobs",
]


class BacktestStore:
    """Reads and conditional writes of ``backtest_jobs``; every method blocks."""

    def __init__(self, engine: Engine, turns: WriteTurns | None = None) -> None:
        self.engine = engine
        self._turns = turns or WriteTurns(None)

    @classmethod
    def open(cls, url: str) -> BacktestStore:
        """Connect to ``url`` and create the table if it is missing."""
        engine = create_database_engine(url, setting="backtests.url", contents="the back-test jobs")
        create_tables(engine, tables=metadata)
        return cls(engine, write_turns_for(url))

    def close(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()
        self._turns.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._turns.turn(), self.engine.begin() as connection:
            yield connection

    # -- the API's side -----------------------------------------------------------

    def add(
        self,
        *,
        key_id: str,
        request: dict[str, Any],
        params: dict[str, Any],
        output_root: Path,
        max_queued: int,
    ) -> JobRecord:
        """Queue a new job, unless ``max_queued`` jobs wait already (BacktestQueueFull)."""
        job_id = uuid.uuid4().hex
        with self._write() as connection:
            # Other servers' adds wait here until this one commits, so they count the
            # queue with this job in it (on PostgreSQL; SQLite's writers take turns).
            serialize_inserts(connection, backtest_jobs)
            queued = connection.execute(
                select(func.count())
                .select_from(backtest_jobs)
                .where(backtest_jobs.c.status == JobStatus.QUEUED)
            ).scalar_one()
            if queued >= max_queued:
                raise BacktestQueueFull(int(queued), max_queued)
            connection.execute(
                insert(backtest_jobs).values(
                    id=job_id,
                    status=JobStatus.QUEUED,
                    created_at=utc_now(),
                    key_id=key_id,
                    request=request,
                    params=params,
                    output_dir=str(output_root / job_id),
                    done=0,
                    attempts=0,
                )
            )
            return record_of(job_row(connection, job_id))

    def get(self, job_id: str) -> JobRecord | None:
        """The job, or None."""
        with self.engine.connect() as connection:
            row = job_row_or_none(connection, job_id)
        return None if row is None else record_of(row)

    def page(self, limit: int, before: int | None = None) -> JobPage:
        """Jobs newest first (without their metrics), ``limit`` at most, older than ``before``."""
        columns = [c for c in backtest_jobs.c if c.name != "metrics"]
        statement = select(*columns).order_by(backtest_jobs.c.seq.desc()).limit(limit + 1)
        if before is not None:
            statement = statement.where(backtest_jobs.c.seq < before)
        with self.engine.connect() as connection:
            rows = connection.execute(statement).mappings().all()
        records = [record_of(row) for row in rows[:limit]]
        more = len(rows) > limit
        return JobPage(records, records[-1].seq if more and records else None)

    def cancel(self, job_id: str) -> tuple[JobRecord, JobStatus] | None:
        """Cancel a queued or running job; the job after, and its status before.

        A final job is returned unchanged (its status before is its status). A running
        job's worker notices at its next rebalance and stops without writing results.
        """
        with self._write() as connection:
            row = job_row_or_none(connection, job_id)
            if row is None:
                return None
            before = JobStatus(row["status"])
            if before not in FINAL_STATUSES:
                connection.execute(
                    update(backtest_jobs)
                    .where(backtest_jobs.c.id == job_id, backtest_jobs.c.status == before)
                    .values(status=JobStatus.CANCELLED, claim=None, finished_at=utc_now())
                )
                row = job_row(connection, job_id)
            return record_of(row), before

    # -- the dispatcher's side ----------------------------------------------------

    def claim_next(self, owner: Owner) -> Claim | None:
        """Take the oldest queued job for ``owner``, or None when none is queued."""
        token = uuid.uuid4().hex
        with self._write() as connection:
            for _ in range(10):  # another process may take the oldest first
                job_id = connection.execute(
                    select(backtest_jobs.c.id)
                    .where(backtest_jobs.c.status == JobStatus.QUEUED)
                    .order_by(backtest_jobs.c.seq)
                    .limit(1)
                ).scalar_one_or_none()
                if job_id is None:
                    return None
                now = utc_now()
                taken = connection.execute(
                    update(backtest_jobs)
                    .where(
                        backtest_jobs.c.id == job_id,
                        backtest_jobs.c.status == JobStatus.QUEUED,
                    )
                    .values(
                        status=JobStatus.RUNNING,
                        claim=token,
                        owner_host=owner.host,
                        owner_pid=owner.pid,
                        owner=owner.token,
                        attempts=backtest_jobs.c.attempts + 1,
                        started_at=now,
                        heartbeat_at=now,
                        done=0,
                        total=None,
                    )
                )
                if taken.rowcount == 1:
                    return Claim(record_of(job_row(connection, job_id)), token)
        return None

    def heartbeat(self, owner: Owner) -> None:
        """Say that ``owner`` is alive and running its jobs."""
        with self._write() as connection:
            connection.execute(
                update(backtest_jobs)
                .where(
                    backtest_jobs.c.owner == owner.token,
                    backtest_jobs.c.status == JobStatus.RUNNING,
                )
                .values(heartbeat_at=utc_now())
            )

    def release(self, owner: Owner) -> list[str]:
        """Queue again the jobs ``owner`` runs, as it stops; that start does not count."""
        with self._write() as connection:
            ids = list(
                connection.execute(
                    select(backtest_jobs.c.id).where(
                        backtest_jobs.c.owner == owner.token,
                        backtest_jobs.c.status == JobStatus.RUNNING,
                    )
                ).scalars()
            )
            connection.execute(
                update(backtest_jobs)
                .where(
                    backtest_jobs.c.owner == owner.token,
                    backtest_jobs.c.status == JobStatus.RUNNING,
                )
                .values(
                    status=JobStatus.QUEUED,
                    attempts=backtest_jobs.c.attempts - 1,
                    **_UNCLAIMED,
                )
            )
        return ids

    def recover(
        self,
        owner: Owner,
        *,
        is_dead: Callable[[str | None, int | None, str | None], bool],
        stale_before: datetime,
        max_attempts: int,
        exhausted: Callable[[str, int], dict[str, Any]],
    ) -> Recovery:
        """Queue again, or fail after ``max_attempts`` starts, the jobs whose run died.

        A running job's run is dead when ``is_dead(owner_host, owner_pid, owner)`` says
        so (its process is gone), or when its server was last heard of before
        ``stale_before``. ``owner``'s own jobs are never taken. ``exhausted(id, attempts)``
        is the problem a job failed for good records.
        """
        requeued: list[str] = []
        failed: list[str] = []
        with self._write() as connection:
            running = connection.execute(
                select(backtest_jobs).where(
                    backtest_jobs.c.status == JobStatus.RUNNING,
                    (backtest_jobs.c.owner != owner.token) | backtest_jobs.c.owner.is_(None),
                )
            ).mappings()
            for row in list(running):
                heard = row["heartbeat_at"]
                dead = is_dead(row["owner_host"], row["owner_pid"], row["owner"]) or (
                    heard is None or heard < stale_before
                )
                if not dead:
                    continue
                match = update(backtest_jobs).where(
                    backtest_jobs.c.id == row["id"],
                    backtest_jobs.c.status == JobStatus.RUNNING,
                    backtest_jobs.c.claim == row["claim"]
                    if row["claim"] is not None
                    else backtest_jobs.c.claim.is_(None),
                )
                if row["attempts"] >= max_attempts:
                    values: dict[str, Any] = {
                        "status": JobStatus.FAILED,
                        "finished_at": utc_now(),
                        "error": exhausted(row["id"], row["attempts"]),
                        "claim": None,
                    }
                    target = failed
                else:
                    values = {"status": JobStatus.QUEUED, **_UNCLAIMED}
                    target = requeued
                if connection.execute(match.values(**values)).rowcount == 1:
                    target.append(row["id"])
        return Recovery(requeued, failed)

    # -- the worker's side (conditional on its claim) -------------------------------

    def progress(self, job_id: str, token: str, done: int, total: int) -> bool:
        """Record ``done`` of ``total`` rebalances; False when the run lost its claim."""
        with self._write() as connection:
            result = connection.execute(
                claimed_update(job_id, token).values(done=done, total=total, heartbeat_at=utc_now())
            )
        return result.rowcount == 1

    def holds(self, job_id: str, token: str) -> bool:
        """Whether the run with ``token`` still holds the job (not cancelled, not re-queued)."""
        with self.engine.connect() as connection:
            found = connection.execute(
                select(backtest_jobs.c.seq).where(
                    backtest_jobs.c.id == job_id,
                    backtest_jobs.c.status == JobStatus.RUNNING,
                    backtest_jobs.c.claim == token,
                )
            ).first()
        return found is not None

    def succeed(self, job_id: str, token: str, metrics: dict[str, Any]) -> bool:
        """Mark the job succeeded with ``metrics``; call once its outputs are in place."""
        with self._write() as connection:
            result = connection.execute(
                claimed_update(job_id, token).values(
                    status=JobStatus.SUCCEEDED,
                    metrics=metrics,
                    finished_at=utc_now(),
                    claim=None,
                    done=backtest_jobs.c.total,
                )
            )
        return result.rowcount == 1

    def fail(self, job_id: str, token: str, problem: dict[str, Any]) -> bool:
        """Mark the job failed with ``problem`` (an RFC 9457 problem document)."""
        with self._write() as connection:
            result = connection.execute(
                claimed_update(job_id, token).values(
                    status=JobStatus.FAILED, error=problem, finished_at=utc_now(), claim=None
                )
            )
        return result.rowcount == 1

    def requeue(
        self,
        job_id: str,
        token: str,
        *,
        max_attempts: int,
        exhausted: Callable[[str, int], dict[str, Any]],
    ) -> bool:
        """Queue the job again after its worker process died (the start counts), or fail
        it with ``exhausted(id, attempts)`` once it was started ``max_attempts`` times."""
        with self._write() as connection:
            row = job_row_or_none(connection, job_id)
            if row is None:
                return False
            if row["attempts"] >= max_attempts:
                values: dict[str, Any] = {
                    "status": JobStatus.FAILED,
                    "finished_at": utc_now(),
                    "error": exhausted(job_id, row["attempts"]),
                    "claim": None,
                }
            else:
                values = {"status": JobStatus.QUEUED, **_UNCLAIMED}
            result = connection.execute(claimed_update(job_id, token).values(**values))
        return result.rowcount == 1


_UNCLAIMED: dict[str, Any] = {
    "claim": None,
    "owner_host": None,
    "owner_pid": None,
    "owner": None,
    "heartbeat_at": None,
    "done": 0,
    "total": None,
}
