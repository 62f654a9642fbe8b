"""Write turns: writers to one SQLite file take turns on a lock file, for a bounded time."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

SQLITE_BUSY_TIMEOUT_MS = 5_000
"""Milliseconds a writer waits for another process's write lock before the write fails:
SQLite's busy timeout, and the longest wait for a write turn."""


class WriteTurnTimeout(SQLAlchemyError):
    """No write turn within the wait: another writer holds the database too long."""

    def __init__(self, wait_seconds: float) -> None:
        super().__init__(
            f"no write turn within {wait_seconds:g} s: another writer holds the database"
        )


class WriteTurns:
    """Writers to one SQLite file take turns here, not in SQLite's busy handler.

    Two gunicorn workers committing to one file collide on SQLite's write lock, and the
    loser's busy handler sleeps in growing steps (1, 2, 5 ... 100 ms) rather than waking
    when the lock is free: with ``synchronous=FULL`` (an fsync per commit) that put the
    p99 of an optimize at 0.3-1 s with two workers. Here a thread lock orders the
    threads of one process, and ``flock`` on ``<database>.lock`` the processes, tried
    every 0.5-2 ms. Other databases (PostgreSQL) take no turns: they lock rows, not the
    whole database (PostgreSQL's inserts of rows with ids wait for each other only:
    ``serialize_inserts``).

    A turn is waited for at most ``wait_seconds`` (SQLite's busy timeout), then
    :class:`WriteTurnTimeout`: behind a stuck writer, requests fail in bounded time
    instead of queueing without end.
    """

    def __init__(
        self, database: Path | None, wait_seconds: float = SQLITE_BUSY_TIMEOUT_MS / 1000
    ) -> None:
        self._threads = threading.Lock()
        self._wait = wait_seconds
        self._fd: int | None = None
        if database is not None:
            lock_file = database.with_name(database.name + ".lock")
            self._fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the write turn for one transaction; raise WriteTurnTimeout after the wait."""
        if self._fd is None:
            yield
            return
        deadline = time.monotonic() + self._wait
        if not self._threads.acquire(timeout=self._wait):
            raise WriteTurnTimeout(self._wait)
        try:
            self._lock_file(self._fd, deadline)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _lock_file(self, fd: int, deadline: float) -> None:
        pause = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WriteTurnTimeout(self._wait) from None
                time.sleep(pause)
                pause = min(2 * pause, 0.002)

    def close(self) -> None:
        """Release the lock file's descriptor."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def write_turns_for(url: str, wait_seconds: float = SQLITE_BUSY_TIMEOUT_MS / 1000) -> WriteTurns:
    """The write turns of the database at ``url``: per file for SQLite, none otherwise."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.query.get("uri"):
        return WriteTurns(None)
    return WriteTurns(Path(parsed.database or ""), wait_seconds)
