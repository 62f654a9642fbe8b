"""The audit trail: one row per optimize, back-test and admin request, committed before the answer.

A row holds when the action started (UTC), the request id (the ``X-Request-ID`` the
response carries), the id of the API key that asked (never the key), the action
(``portfolios.optimize``, ``admin.promote``, ...), method and path, the HTTP status
answered with its outcome (``success``, or the problem slug of the error, e.g.
``infeasible``), the request's inputs, the model versions used, the response's outputs
and the duration. The table is ``audit_events`` in any SQLAlchemy database:
SQLite in WAL mode at ``<data_dir>/audit.db`` by default, PostgreSQL by ``audit.url``.

Two ways to record, by what the action does:

- **Computations** (optimize, frontier) change nothing on the server: the
  row is written once, after the work and before the answer. When the write fails the
  caller gets ``503 /problems/audit-unavailable`` instead of the result, so no result
  leaves the server unrecorded, and a retry repeats nothing.
- **State changes** (``admin.*``: reload, promote, roll back; ``backtests.create`` and
  ``backtests.cancel``, which queue or stop a job) write the row *before*
  acting, with outcome ``started`` and no status, and complete it afterwards. If that
  first write fails the action is not attempted; if the last one fails the action did
  happen, the row still says ``started`` (an outcome to check), and the 503 says so.
  No admin action or job can take effect unrecorded, even when the process dies mid-way.

A failed action is recorded with the status and problem the app's exception handlers
answer it with (``outputs`` holds that problem document) and the error is re-raised.
Recording a failure is best effort: if the database is down as well, the error is
logged and the client still gets the original error, which claims no success.

Every write that fails is also counted, for alerting, in
``quantserve_audit_write_failures_total{action, stage}``: ``stage`` is ``intent`` (the
row before an admin action), ``result`` (the record of a success, or of an admin action's
end) or ``failure_record``. Committed writes are timed in ``quantserve_audit_write_seconds``.

Size and age: an ``inputs`` or ``outputs`` document over ``audit.max_stored_bytes`` is
stored as a note with its SHA-256 and size (``_audit_table.stored_json``), and
``inputs_sha256`` always holds the fingerprint of the whole inputs. With
``audit.retention_days`` set, rows older than that are deleted in a background thread at
start and then at most hourly (started from the write path), in small batches that take
write turns with the requests' writes; each pass logs how many rows it deleted.

Durability, locking and schema changes: see ``app.services._audit_table``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import anyio
from fastapi import Request
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from app.core.config import AuditSettings
from app.core.metrics import AUDIT_WRITE_STAGES, ServiceMetrics
from app.services._audit_answer import answer_to
from app.services._audit_records import AuditEntry, AuditPage, AuditRecord, AuditUnavailable
from app.services._audit_retention import PURGE_BATCH, PURGE_EVERY, RetentionPurge
from app.services._audit_table import (
    MAX_ROW_ID,
    audit_events,
    create_audit_engine,
    create_tables,
    serialize_inserts,
    stored_json,
)
from app.services._write_turns import WriteTurns, write_turns_for

logger = logging.getLogger(__name__)

STARTED: Final = "started"
SUCCESS: Final = "success"
# The status of a request whose client went away before it was answered (nginx's 499).
CLIENT_CLOSED_REQUEST: Final = 499
# The actions the routes record. Their failure series are declared at 0 when the log
# opens, so that even a first failed write is an increase an alert sees; an action not
# listed is declared on its first use.
KNOWN_ACTIONS: Final = (
    "portfolios.optimize",
    "portfolios.frontier",
    "backtests.create",
    "backtests.cancel",
    "admin.reload",
    "admin.promote",
    "admin.rollback",
)

T = TypeVar("T")


class AuditLog:
    """Records actions in the ``audit_events`` table and reads them back."""

    def __init__(
        self,
        engine: Engine,
        metrics: ServiceMetrics | None = None,
        turns: WriteTurns | None = None,
        settings: AuditSettings | None = None,
        purge_every: timedelta = PURGE_EVERY,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self._turns = turns or WriteTurns(None)
        settings = settings or AuditSettings()
        self.max_stored_bytes = settings.max_stored_bytes
        self._retention = RetentionPurge(
            engine,
            self._turns,
            timedelta(days=settings.retention_days) if settings.retention_days else None,
            purge_every,
        )
        self._write_seconds = (
            {stage: metrics.audit_write_seconds.labels(stage) for stage in AUDIT_WRITE_STAGES}
            if metrics is not None
            else {}
        )
        self._declared: set[tuple[str, bool]] = set()
        for action in KNOWN_ACTIONS:
            self._declare(action, _writes_intent(action))

    @classmethod
    def open(
        cls,
        url: str,
        metrics: ServiceMetrics | None = None,
        settings: AuditSettings | None = None,
        purge_every: timedelta = PURGE_EVERY,
    ) -> AuditLog:
        """Connect to ``url`` and create the table if it is missing (blocking: call in a thread).

        ``metrics``, when given, count the writes that fail and time those that commit.
        ``settings`` give the stored size cap and the retention (default: 64 KiB, for ever);
        with a retention, the first pass over expired rows starts now, in the background,
        and the write path starts another when ``purge_every`` has passed since the last.

        Raises
        ------
        RuntimeError
            The database cannot be opened or written (the message hides any password).
        """
        try:
            engine = create_audit_engine(url)
            create_tables(engine)
            turns = write_turns_for(url)
        except (ImportError, OSError, SQLAlchemyError) as exc:
            shown = make_url(url).render_as_string(hide_password=True)
            raise RuntimeError(
                f"cannot open the audit database {shown}: {exc}. The server records every "
                "optimize and admin action there and does not start without it: make the "
                "location writable, or point audit.url (QUANTSERVE_AUDIT__URL) elsewhere."
            ) from exc
        log = cls(engine, metrics, turns, settings, purge_every)
        log._maybe_purge()
        return log

    def close(self) -> None:
        """Stop a retention pass between batches, then close the pooled connections."""
        self._retention.stop()
        self.engine.dispose()
        self._turns.close()

    @asynccontextmanager
    async def action(
        self,
        request: Request,
        action: str,
        *,
        inputs: Any = None,
        record_intent: bool | None = None,
    ) -> AsyncIterator[AuditEntry]:
        """Record ``action`` for ``request``; the row is committed before the block's exit.

        Parameters
        ----------
        request
            The request being served: gives the request id, key id, method and path.
        action
            ``<resource>.<verb>``, e.g. ``portfolios.optimize`` or ``admin.promote``.
        inputs
            The request's inputs: a pydantic model or a JSON-able value, serialised in
            the database thread (a large body costs the event loop nothing).
        record_intent
            Write the row before the block runs (outcome ``started``) and complete it
            after. Default: for ``admin.*`` actions, which change the server's state.

        Raises
        ------
        AuditUnavailable
            The row could not be committed (before a state change: it was not made).
        """
        entry = AuditEntry(request, action, inputs)
        intent = _writes_intent(action) if record_intent is None else record_intent
        if (action, intent) not in self._declared:
            self._declare(action, intent)
        row_id: int | None = None
        if intent:
            try:
                row_id = await run_in_threadpool(self._insert, entry.values, STARTED)
            except SQLAlchemyError as exc:
                logger.error("audit: cannot record the start of %s: %s", action, exc)
                self._count_failure(action, "intent")
                raise AuditUnavailable(action, performed=False) from exc
        try:
            yield entry
        except Exception as exc:
            status, outcome, problem = await answer_to(request, exc)
            await self._record_failure(entry, row_id, entry._ended(status, outcome, problem))
            raise
        except BaseException:
            # Cancelled (the client went away): record that, even inside the cancellation.
            with anyio.CancelScope(shield=True):
                ended = entry._ended(CLIENT_CLOSED_REQUEST, "cancelled", None)
                await self._record_failure(entry, row_id, ended)
            raise
        ended = entry._ended(entry.status, SUCCESS, entry.outputs)
        try:
            await run_in_threadpool(self._write_end, entry.values, row_id, ended, "result")
        except SQLAlchemyError as exc:
            logger.error("audit: cannot record %s: %s", action, exc)
            self._count_failure(action, "result")
            raise AuditUnavailable(action, performed=intent) from exc

    async def call(
        self,
        request: Request,
        action: str,
        work: Callable[[], T],
        *,
        inputs: Any = None,
        model_versions: Callable[[T], Mapping[str, int] | None] | None = None,
    ) -> T:
        """Run ``work`` in a worker thread as ``action``; its result is the recorded output.

        The one-line way to audit an endpoint whose work is one blocking call returning the
        response body::

            return await audit.call(request, "portfolios.frontier", partial(run, body))
        """
        async with self.action(request, action, inputs=inputs) as entry:
            result = await run_in_threadpool(work)
            versions = model_versions(result) if model_versions is not None else None
            entry.succeeded(outputs=result, model_versions=versions)
        return result

    def query(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        key_id: str | None = None,
        action: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> AuditPage:
        """Records newest first (by id, the commit order), ``limit`` at most.

        ``since`` is inclusive and ``until`` exclusive (on ``occurred_at``); ``action``
        ending in ``*`` matches a prefix (``admin.*``); ``before_id`` is the previous
        page's ``next_before_id`` (keyset pagination: pages stay consistent while new
        rows arrive).
        """
        table = audit_events
        statement = select(table).order_by(table.c.id.desc()).limit(limit + 1)
        if since is not None:
            statement = statement.where(table.c.occurred_at >= since)
        if until is not None:
            statement = statement.where(table.c.occurred_at < until)
        if key_id is not None:
            statement = statement.where(table.c.key_id == key_id)
        if action is not None and action.endswith("*"):
            statement = statement.where(table.c.action.startswith(action[:-1], autoescape=True))
        elif action is not None:
            statement = statement.where(table.c.action == action)
        if before_id is not None:
            statement = statement.where(table.c.id < before_id)
        with self.engine.connect() as connection:
            rows = connection.execute(statement).mappings().all()
        records = [AuditRecord(**row) for row in rows[:limit]]
        more = len(rows) > limit
        return AuditPage(records, records[-1].id if more and records else None)

    def _declare(self, action: str, intent: bool) -> None:
        self._declared.add((action, intent))
        if self.metrics is not None:
            stages = AUDIT_WRITE_STAGES if intent else ("result", "failure_record")
            self.metrics.declare_audit_action(action, stages)

    def _count_failure(self, action: str, stage: str) -> None:
        if self.metrics is not None:
            self.metrics.audit_write_failures.labels(action, stage).inc()

    def purge_expired(self, now: datetime | None = None, batch_size: int = PURGE_BATCH) -> int:
        """Delete the rows older than the retention now; see :class:`RetentionPurge`."""
        return self._retention.purge_expired(now, batch_size)

    def _maybe_purge(self) -> None:
        self._retention.maybe_start()

    @property
    def _purging(self) -> threading.Thread | None:
        """The running or last background pass (for tests and diagnostics)."""
        return self._retention.thread

    def _insert(self, values: Mapping[str, Any], outcome: str) -> int:
        started = time.perf_counter()
        row = self._stored_inputs(values)
        with self._turns.turn(), self.engine.begin() as connection:
            serialize_inserts(connection, audit_events)  # ids visible in commit order
            result = connection.execute(
                insert(audit_events).values(**row, outcome=outcome, status=None)
            )
            (row_id,) = result.inserted_primary_key or (None,)
        self._observe("intent", started)
        self._maybe_purge()
        if row_id is None:  # pragma: no cover - every dialect here returns the id
            raise RuntimeError("the database did not return the new audit row's id")
        return int(row_id)

    def _write_end(
        self,
        values: Mapping[str, Any],
        row_id: int | None,
        ended: Mapping[str, Any],
        stage: str,
    ) -> None:
        started = time.perf_counter()
        outputs, _ = stored_json(ended["outputs"], self.max_stored_bytes)
        end = {**ended, "outputs": outputs}
        row = self._stored_inputs(values) if row_id is None else {}
        with self._turns.turn(), self.engine.begin() as connection:
            if row_id is None:
                serialize_inserts(connection, audit_events)  # ids visible in commit order
                connection.execute(insert(audit_events).values(**row, **end))
            else:
                result = connection.execute(
                    update(audit_events).where(audit_events.c.id == row_id).values(**end)
                )
                if result.rowcount != 1:
                    raise _RowMissing(f"audit row {row_id} is gone")
        self._observe(stage, started)
        self._maybe_purge()

    def _stored_inputs(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` with the inputs capped and fingerprinted (in the database thread)."""
        inputs, sha256 = stored_json(values["inputs"], self.max_stored_bytes)
        return {**values, "inputs": inputs, "inputs_sha256": sha256}

    def _observe(self, stage: str, started: float) -> None:
        """Time one committed write, in the worker thread that made it."""
        if self._write_seconds:
            self._write_seconds[stage].observe(time.perf_counter() - started)

    async def _record_failure(
        self, entry: AuditEntry, row_id: int | None, ended: Mapping[str, Any]
    ) -> None:
        action = entry.values["action"]
        try:
            await run_in_threadpool(self._write_end, entry.values, row_id, ended, "failure_record")
        except SQLAlchemyError as exc:
            logger.error(
                "audit: cannot record the failure of %s (%s %s): %s",
                action,
                ended["status"],
                ended["outcome"],
                exc,
            )
            self._count_failure(action, "failure_record")


def _writes_intent(action: str) -> bool:
    """Whether ``action`` is recorded before it acts by default: it changes the server's state."""
    return action.startswith("admin.")


class _RowMissing(SQLAlchemyError):
    """The row written at the start of an action is no longer there to complete."""


__all__ = [
    "KNOWN_ACTIONS",
    "MAX_ROW_ID",
    "AuditEntry",
    "AuditLog",
    "AuditPage",
    "AuditRecord",
    "AuditUnavailable",
    "audit_events",
    "create_audit_engine",
]
