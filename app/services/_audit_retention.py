"""Deleting audit rows older than ``audit.retention_days``, in the background.

A pass deletes in batches of ``PURGE_BATCH`` rows, each in its own write turn, so request
writes interleave with it; it starts when the log opens and then from the write path at
most once every ``PURGE_EVERY``. Closing the log stops a pass between batches.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from app.services._audit_table import audit_events
from app.services._write_turns import WriteTurns

logger = logging.getLogger("app.services.audit")

PURGE_EVERY: Final = timedelta(hours=1)
PURGE_BATCH: Final = 500


class RetentionPurge:
    """The retention of one audit log: passes over expired rows, one at a time.

    Parameters
    ----------
    engine, turns
        The log's database and its write turns.
    retention : timedelta or None
        Age past which rows are deleted; ``None`` keeps them for ever (no pass runs).
    every : timedelta
        Least time between the starts of two passes.
    """

    def __init__(
        self,
        engine: Engine,
        turns: WriteTurns,
        retention: timedelta | None,
        every: timedelta = PURGE_EVERY,
    ) -> None:
        self.engine = engine
        self.turns = turns
        self.retention = retention
        self.every_seconds = every.total_seconds()
        self.thread: threading.Thread | None = None
        """The running or last pass."""
        self._lock = threading.Lock()
        self._started: float | None = None  # time.monotonic() of the last pass's start
        self._closing = threading.Event()

    def purge_expired(self, now: datetime | None = None, batch_size: int = PURGE_BATCH) -> int:
        """Delete the rows older than the retention (none without one); how many were deleted.

        Blocking, in batches of ``batch_size`` rows, each its own write turn; stops early
        when the log is closing. Normally run by the background pass, not called directly.
        """
        if self.retention is None:
            return 0
        cutoff = (now or datetime.now(UTC)) - self.retention
        expired = select(audit_events.c.id).where(audit_events.c.occurred_at < cutoff)
        batch = delete(audit_events).where(
            audit_events.c.id.in_(expired.limit(batch_size).scalar_subquery())
        )
        deleted = 0
        while True:
            with self.turns.turn(), self.engine.begin() as connection:
                count = connection.execute(batch).rowcount
            deleted += count
            if count < batch_size or self._closing.is_set():
                break
        logger.info(
            "audit: deleted %d rows older than %s (audit.retention_days=%d)",
            deleted,
            cutoff.isoformat(),
            self.retention.days,
        )
        return deleted

    def maybe_start(self) -> None:
        """Start a background pass unless one runs or started within ``every``."""
        if self.retention is None or self._closing.is_set():
            return
        now = time.monotonic()
        with self._lock:
            if self.thread is not None and self.thread.is_alive():
                return
            if self._started is not None and now - self._started < self.every_seconds:
                return
            self._started = now
            self.thread = threading.Thread(target=self._run, name="audit-retention", daemon=True)
            self.thread.start()

    def stop(self) -> None:
        """Stop a running pass between batches and wait for it."""
        self._closing.set()
        with self._lock:
            running = self.thread
        if running is not None:
            running.join()

    def _run(self) -> None:
        try:
            self.purge_expired()
        except Exception:  # a thread must not die silently; the next pass retries
            logger.exception("audit: deleting the rows past audit.retention_days failed")
