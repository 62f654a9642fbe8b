"""The ``backtest_jobs`` table and the values read from it (see ``_backtest_store``).

Kept like the audit trail (``app.services._audit_table``: the same column types), in its
own database, ``<data_dir>/backtests.db`` by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    select,
    update,
)
from sqlalchemy.engine import RowMapping

from app.services._audit_table import JSON_TYPE, NulFreeString, UTCDateTime


class JobStatus(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

metadata = MetaData()

backtest_jobs = Table(
    "backtest_jobs",
    metadata,
    # The order of submission (the list's cursor); AUTOINCREMENT never reuses one.
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    # A NUL in an id asked for (PostgreSQL cannot compare it) matches no job.
    Column("id", NulFreeString(32), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("finished_at", UTCDateTime()),
    Column("heartbeat_at", UTCDateTime()),
    Column("key_id", String(64), nullable=False),
    Column("request", JSON_TYPE, nullable=False, comment="the validated request body"),
    Column("params", JSON_TYPE, nullable=False, comment="server settings the job runs with"),
    Column("output_dir", String(4096), nullable=False),
    Column("done", Integer, nullable=False, default=0),
    Column("total", Integer),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claim", String(32), comment="token of the current run; NULL unless running"),
    Column("owner_host", String(255)),
    Column("owner_pid", Integer),
    Column("owner", String(32), comment="the dispatcher running it (one per server process)"),
    Column("error", JSON_TYPE, comment="RFC 9457 problem of a failed job"),
    Column("metrics", JSON_TYPE, comment="metrics.json of a succeeded job"),
    Index("ix_backtest_jobs_status_seq", "status", "seq"),
    sqlite_autoincrement=True,
)


@dataclass(frozen=True)
class JobRecord:
    """One job as stored."""

    seq: int
    id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    key_id: str
    request: dict[str, Any]
    params: dict[str, Any]
    output_dir: Path
    done: int
    total: int | None
    attempts: int
    error: dict[str, Any] | None
    metrics: dict[str, Any] | None

    @property
    def fraction(self) -> float | None:
        """Rebalances done over all of them (1 once succeeded); None before the run starts."""
        if self.status is JobStatus.SUCCEEDED:
            return 1.0
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


@dataclass(frozen=True)
class Claim:
    """A job this process now runs, and the token its writes must carry."""

    job: JobRecord
    token: str


@dataclass(frozen=True)
class Owner:
    """A dispatcher: its host and process, and a token of its own (one per app)."""

    host: str
    pid: int
    token: str


@dataclass(frozen=True)
class JobPage:
    """Jobs newest first, and the cursor of the next (older) page, if there is one."""

    records: list[JobRecord]
    next_before: int | None


@dataclass(frozen=True)
class Recovery:
    """Running jobs found dead: the ones queued again, the ones failed for good."""

    requeued: list[str]
    failed: list[str]


def record_of(row: RowMapping) -> JobRecord:
    """The job a row of ``backtest_jobs`` holds."""
    return JobRecord(
        seq=int(row["seq"]),
        id=str(row["id"]),
        status=JobStatus(row["status"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        key_id=str(row["key_id"]),
        request=dict(row["request"]),
        params=dict(row["params"]),
        output_dir=Path(row["output_dir"]),
        done=int(row["done"]),
        total=None if row["total"] is None else int(row["total"]),
        attempts=int(row["attempts"]),
        error=row["error"],
        metrics=row.get("metrics"),
    )


def claimed_update(job_id: str, token: str) -> Any:
    """An UPDATE of the job, only while ``token``'s claim on it still runs."""
    return update(backtest_jobs).where(
        backtest_jobs.c.id == job_id,
        backtest_jobs.c.status == JobStatus.RUNNING,
        backtest_jobs.c.claim == token,
    )


def utc_now() -> datetime:
    """Now, timezone-aware in UTC (the table's timestamps)."""
    return datetime.now(UTC)


def job_row_or_none(connection: Connection, job_id: str) -> RowMapping | None:
    """The job's row, or None for an unknown id."""
    return (
        connection.execute(select(backtest_jobs).where(backtest_jobs.c.id == job_id))
        .mappings()
        .first()
    )


def job_row(connection: Connection, job_id: str) -> RowMapping:
    """The row of a job this transaction knows exists."""
    row = job_row_or_none(connection, job_id)
    if row is None:  # pragma: no cover - read in the transaction that wrote it
        raise RuntimeError(f"back-test job {job_id} vanished")
    return row
