"""The ``audit_events`` table and the engine that stores it (see ``app.services.audit``).

The engine, the UTC and JSON column types and ``create_tables`` serve every table the
service keeps in a database (the back-test jobs too), with the write turns of
``app.services._write_turns``.

Durability on SQLite: WAL with ``synchronous=FULL`` syncs the log on every commit, so a
row whose request was answered survives a power loss, not only a process crash (NORMAL
would survive a crash but could lose the last commits on power loss). The sync costs
0.56 ms a commit (median; 0.14 ms with NORMAL) on this machine's disk, small beside a
solve. ``busy_timeout`` makes concurrent writers (gunicorn workers share the file) wait
for the lock instead of failing. WAL needs a local disk, not a network file system.

Schema changes: there is no migrations tool yet. ``create_tables`` makes a missing table
and adds the *nullable* columns an existing one lacks (``ALTER TABLE ... ADD COLUMN``,
which rewrites no rows on SQLite or PostgreSQL), so a database made by an older release
keeps working: its old rows read NULL there. ``inputs_sha256`` came that way. Any other
change (a type, a rename, a NOT NULL column, an index on old rows) brings Alembic, with
this schema as its base revision.

On PostgreSQL: ids come from a sequence when a row is inserted, not when it commits, so
two concurrent inserts could commit out of id order, and a reader paging by id (or an
export resuming after the highest id it saw) would skip the row that committed late.
Inserts there take a transaction-scoped advisory lock first (``serialize_inserts``), so
ids become visible in commit order, as SQLite's write turns make them; updates take no
lock. Text and jsonb cannot hold NUL (U+0000), which JSON bodies and URL paths can carry:
it is stored there as U+FFFD (``NulFreeString`` and the engine's JSON serializer), rather
than failing the write. Statement parameters are never shown in errors
(``hide_parameters``): they hold request bodies, which are not logged.

Stored sizes: ``stored_json`` keeps an ``inputs`` or ``outputs`` document whole up to
``audit.max_stored_bytes`` and replaces a larger one by a note carrying its SHA-256 and
size; ``inputs_sha256`` always holds the fingerprint of the whole inputs.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pydantic_core
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    create_engine,
    event,
    func,
    inspect,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DatabaseError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.schema import CreateColumn

from app.services._write_turns import SQLITE_BUSY_TIMEOUT_MS

logger = logging.getLogger("app.services.audit")

# The largest row id (and so pagination cursor) a table here can hold: SQLite's INTEGER
# and PostgreSQL's BIGINT are signed 64-bit. A larger number must be refused at the edge:
# the database driver cannot even bind it (OverflowError), which would answer 500.
MAX_ROW_ID: Final = 2**63 - 1


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as
    naive UTC text (which sorts and compares correctly) and come back aware. A naive
    datetime given as a filter is taken as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """UTC, naive for SQLite."""
        if value is None:
            return None
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Aware UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class NulFreeString(TypeDecorator[str]):
    """A string PostgreSQL can store: its text type refuses NUL, stored there as U+FFFD.

    Filters are bound the same way, so a NUL in a query matches nothing rather than
    failing. Other databases store the string as it is.
    """

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        """``value``, with NUL replaced on PostgreSQL."""
        if value is not None and dialect.name == "postgresql" and "\x00" in value:
            return value.replace("\x00", "\ufffd")
        return value


# JSON on SQLite, JSONB on PostgreSQL; None is SQL NULL, not the JSON text 'null'.
JSON_TYPE = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

metadata = MetaData()

audit_events = Table(
    "audit_events",
    metadata,
    # INTEGER PRIMARY KEY on SQLite (the rowid), BIGINT elsewhere; with AUTOINCREMENT
    # SQLite never reuses an id, so ids only grow and the pagination cursor is stable.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("occurred_at", UTCDateTime(), nullable=False, index=True),
    Column("request_id", NulFreeString(128)),
    Column("key_id", NulFreeString(64), nullable=False),
    Column("action", NulFreeString(64), nullable=False),
    Column("method", NulFreeString(16), nullable=False),
    Column("path", NulFreeString(2048), nullable=False),
    Column("status", Integer, comment="HTTP status answered; NULL while started"),
    Column("outcome", NulFreeString(64), nullable=False),
    Column("inputs", JSON_TYPE),
    # Added after the first release (create_tables adds it to older databases: NULL there).
    Column("inputs_sha256", String(64), comment="SHA-256 of the whole inputs' JSON"),
    Column("model_versions", JSON_TYPE),
    Column("outputs", JSON_TYPE),
    Column("duration_ms", Float),
    # The filters with the newest-first order: one index range scan per page.
    Index("ix_audit_events_key_id_id", "key_id", "id"),
    Index("ix_audit_events_action_id", "action", "id"),
    sqlite_autoincrement=True,
)


def serialize_inserts(connection: Connection, table: Table) -> None:
    """On PostgreSQL, wait until no other transaction is inserting into ``table``.

    Taken before an insert, in its transaction, and held until it commits: the sequence's
    ids then become visible in commit order (see the module's docstring), and a count
    checked before the insert still holds at the commit. Elsewhere, nothing: SQLite's
    writers already take turns.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(_advisory_key(table.name))))


def _advisory_key(name: str) -> int:
    """A signed 64-bit advisory lock key of its own for ``name``."""
    digest = hashlib.sha256(f"quantserve.inserts.{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def create_audit_engine(url: str) -> Engine:
    """The audit trail's engine: :func:`create_database_engine` for ``audit.url``."""
    return create_database_engine(url, setting="audit.url", contents="the audit trail")


def create_database_engine(url: str, *, setting: str, contents: str) -> Engine:
    """An engine for ``url`` whose pool serves the handlers' worker threads.

    SQLite: a file database only (an in-memory one would be lost at restart and not
    shared by the workers), its folder created, and WAL, ``synchronous=FULL`` and
    ``busy_timeout`` set on every new connection. Other databases: connections are
    checked before use, so a database restart costs no request. ``setting`` (the
    configuration key of the URL) and ``contents`` (what the database holds) word the
    error of an in-memory URL. Errors never show statement parameters (request bodies).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        postgresql = parsed.get_backend_name() == "postgresql"
        return create_engine(
            parsed,
            pool_size=5,
            max_overflow=10,
            pool_pre_ping=True,
            hide_parameters=True,
            json_serializer=_postgres_json_dumps if postgresql else _json_dumps,
        )
    database = parsed.database or ""
    if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        raise ValueError(
            f"{setting}={url!r} is an in-memory SQLite database: {contents} would be "
            "lost at restart and not shared by the workers. Give a file, e.g. "
            f"sqlite:////var/lib/quantserve/{setting.split('.')[0]}.db, or leave "
            f"{setting} unset."
        )
    if not parsed.query.get("uri"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # SQLite has one writer at a time: a few connections serve the threads as well as
    # many would; a thread beyond pool_size + max_overflow waits for a free one.
    engine = create_engine(
        parsed,
        pool_size=5,
        max_overflow=10,
        pool_timeout=30,
        hide_parameters=True,
        json_serializer=_json_dumps,
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # First, so that switching to WAL (an exclusive lock, once per file) waits too.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        (mode,) = cursor.fetchone()
        if str(mode).lower() != "wal":
            raise RuntimeError(f"SQLite refused WAL mode (journal_mode={mode})")
        cursor.execute("PRAGMA synchronous = FULL")
    finally:
        cursor.close()


def _json_dumps(value: Any) -> str:
    """JSON for the database: pydantic models, dates and enums as the API writes them.

    Non-finite floats become null (PostgreSQL's JSON has no NaN); Python values that
    are not JSON fail loudly rather than being stored as their ``repr``.
    """
    return pydantic_core.to_json(value, inf_nan_mode="null").decode()


# A NUL escape in JSON text: \u0000 after an even number of backslashes (an odd one
# would make it the text "\u0000" itself, which PostgreSQL stores as it is).
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _postgres_json_dumps(value: Any) -> str:
    """:func:`_json_dumps` with NUL written as U+FFFD: PostgreSQL's jsonb refuses NUL."""
    text = _json_dumps(value)
    return _JSON_NUL.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def create_tables(engine: Engine, attempts: int = 5, tables: MetaData = metadata) -> None:
    """Create the tables of ``tables`` (default: the audit trail's) and their indexes unless
    they exist, and add the nullable columns an existing table lacks, however many workers
    start at once.

    gunicorn starts its workers together. On a new SQLite file, one worker switching it to
    WAL holds a lock that fails the others' connections at once (busy_timeout does not
    cover it), and another may create the table (or add a column) between this one's check
    and its statement. Either is over in moments: the next attempt finds the table and
    its columns and changes nothing.
    """
    for attempt in range(1, attempts + 1):
        try:
            tables.create_all(engine)
            with engine.begin() as connection:
                _add_missing_columns(connection, tables)
            return
        except DatabaseError:
            if attempt == attempts:
                raise
            time.sleep(0.2 * attempt)


def _add_missing_columns(connection: Connection, tables: MetaData) -> None:
    """``ALTER TABLE ... ADD COLUMN`` each nullable column of ``tables`` the database lacks.

    Raises
    ------
    RuntimeError
        A missing column that old rows could not leave NULL: that change needs a migration.
    """
    preparer = connection.dialect.identifier_preparer
    inspector = inspect(connection)
    for table in tables.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable or column.primary_key or column.server_default is not None:
                raise RuntimeError(
                    f"the table {table.name} lacks the column {column.name}, which cannot be "
                    "added in place (it is not a plain nullable column): migrate the database"
                )
            definition = CreateColumn(column).compile(dialect=connection.dialect)
            connection.exec_driver_sql(
                f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {definition}"
            )
            logger.warning(
                "added the column %s to the table %s, created by an older release; its "
                "existing rows hold NULL there",
                column.name,
                table.name,
            )


# The note that replaces a document over audit.max_stored_bytes says so in this key.
TRUNCATED_KEY: Final = "truncated"


def stored_json(value: Any, max_bytes: int) -> tuple[Any, str | None]:
    """What a JSON column stores for ``value``, and the SHA-256 (hex) of its whole JSON.

    The fingerprint is taken of the compact UTF-8 JSON the column would store (pydantic's
    serialisation, ``_json_dumps``: a model's fields in schema order, a dict's keys in the
    client's order, no spaces, non-finite numbers as null), so on SQLite the stored text of
    a whole document hashes to it. Keys are not sorted: sorting a 4 MiB body in Python
    takes ~0.2 s of the GIL, and the server's own serialisation is already deterministic
    for equal validated inputs.

    Up to ``max_bytes`` the value is stored whole; past it, by a note keeping its
    fingerprint and size, so the row stays small and still identifies its inputs.
    ``None`` stores SQL NULL, with no fingerprint.
    """
    if value is None:
        return None, None
    encoded = _json_dumps(value).encode()
    sha256 = hashlib.sha256(encoded).hexdigest()
    if len(encoded) <= max_bytes:
        return value, sha256
    return {
        TRUNCATED_KEY: True,
        "sha256": sha256,
        "size_bytes": len(encoded),
        "note": f"not stored: larger than audit.max_stored_bytes ({max_bytes} bytes); "
        "sha256 is of its whole compact UTF-8 JSON",
    }, sha256
