"""A load generator on loopback for the fault tests: closed loop, bounded in time, counted.

:class:`Load` runs ``clients`` threads, each with its own keep-alive connection, sending
the next request as soon as the last one is answered, until it is stopped. Every
request is one :class:`Outcome`; :class:`Tally` counts them as the issue asks:

- **sent**: requests a client started;
- **answered**: requests that got an HTTP response with an expected status;
- **failed**: the others, a connection error or an unexpected status.

A request is never retried: a failure is counted once, as a client without retries
would see it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

FAULT_SECONDS_ENV = "QUANTSERVE_FAULT_SECONDS"
"""Seconds of load in each phase of a fault test: short in ``make test``, longer in
``make faults``."""


@dataclass(frozen=True)
class Request:
    """One request the clients send in turn, and the statuses that count as answered."""

    method: str
    path: str
    json: Any = None
    expected: frozenset[int] = frozenset({200})


@dataclass(frozen=True)
class Outcome:
    """What one request got: a status and its JSON body, or the error that ended it."""

    request: Request
    started: float
    ended: float
    status: int | None
    body: Any
    error: str | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def answered(self) -> bool:
        return self.status is not None and self.status in self.request.expected


@dataclass(frozen=True)
class Tally:
    """Counts over a set of outcomes."""

    sent: int
    answered: int
    failed: int
    statuses: dict[str, int] = field(default_factory=dict)
    failures: tuple[str, ...] = ()

    @classmethod
    def of(cls, outcomes: Sequence[Outcome]) -> Tally:
        statuses = Counter(str(o.status) if o.status is not None else "error" for o in outcomes)
        failures = tuple(
            f"{o.request.method} {o.request.path}: "
            + (o.error or f"{o.status} {str(o.body)[:300]}")
            for o in outcomes
            if not o.answered
        )
        answered = sum(o.answered for o in outcomes)
        return cls(len(outcomes), answered, len(outcomes) - answered, dict(statuses), failures)

    def __str__(self) -> str:
        return (
            f"sent {self.sent}, answered {self.answered}, failed {self.failed} "
            f"(statuses {self.statuses})"
        )


class Load:
    """``clients`` threads sending ``requests`` round-robin to ``base_url``."""

    def __init__(
        self,
        base_url: str,
        requests: Sequence[Request],
        *,
        clients: int = 4,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._base_url = base_url
        self._requests = tuple(requests)
        self._clients = clients
        self._headers = headers or {}
        self._timeout = timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._in_flight = 0
        self._threads: list[threading.Thread] = []

    @property
    def clients(self) -> int:
        return self._clients

    def outcomes(self, since: float = 0.0, until: float = float("inf")) -> list[Outcome]:
        """The requests started in ``[since, until)`` (``time.monotonic`` clock)."""
        with self._lock:
            return [o for o in self._outcomes if since <= o.started < until]

    def tally(self, since: float = 0.0, until: float = float("inf")) -> Tally:
        return Tally.of(self.outcomes(since, until))

    def in_flight(self) -> int:
        """Requests sent and not yet answered, right now."""
        with self._lock:
            return self._in_flight

    def wait_for(self, predicate: Callable[[Outcome], bool], timeout: float) -> Outcome:
        """The first outcome, from now on, for which ``predicate`` holds."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            for outcome in self.outcomes(since=start):
                if predicate(outcome):
                    return outcome
            time.sleep(0.05)
        raise AssertionError(f"no such answer within {timeout:.0f} s; {self.tally(since=start)}")

    def _client(self, offset: int) -> None:
        with httpx.Client(
            base_url=self._base_url, headers=self._headers, timeout=self._timeout
        ) as client:
            turn = offset
            while not self._stop.is_set():
                request = self._requests[turn % len(self._requests)]
                turn += 1
                with self._lock:
                    self._in_flight += 1
                started = time.monotonic()
                status, body, error, answer_headers = None, None, None, {}
                try:
                    response = client.request(request.method, request.path, json=request.json)
                    status = response.status_code
                    body = _json_or_text(response)
                    answer_headers = dict(response.headers)
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                outcome = Outcome(
                    request, started, time.monotonic(), status, body, error, answer_headers
                )
                with self._lock:
                    self._in_flight -= 1
                    self._outcomes.append(outcome)
                if error is not None:
                    time.sleep(0.01)  # a refused connection is not a busy loop

    def __enter__(self) -> Load:
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True)
            for i in range(self._clients)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self._timeout + 5)


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
