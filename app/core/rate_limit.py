"""Per-key rate limiting: a token bucket per API key id (``limits.rate_per_second``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from app.core.config import LimitSettings


class TokenBucket:
    """A token bucket: ``capacity`` tokens, refilled at ``rate`` per second.

    Each request takes one token; an empty bucket means wait. Thread-safe (handlers and
    dependencies may run in the thread pool); the clock is monotonic, so wall-clock
    jumps neither refill nor drain it.
    """

    def __init__(
        self, rate: float, capacity: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("a token bucket needs rate > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = float(capacity)
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take a token: 0.0 when one was there, else the seconds until one will be."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate


class RateLimiter:
    """One :class:`TokenBucket` per key id, made on the key's first request.

    The number of buckets is bounded by the configured keys (plus ``dev``): unknown
    keys are refused before they reach the limiter.
    """

    def __init__(self, limits: LimitSettings) -> None:
        self.rate = limits.rate_per_second
        self.burst = limits.burst
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """False when ``rate_per_second`` is 0."""
        return self.rate > 0

    def wait_seconds(self, key_id: str) -> float:
        """Take a token from ``key_id``'s bucket: 0.0, or the seconds to wait for one."""
        if not self.enabled:
            return 0.0
        bucket = self._buckets.get(key_id)
        if bucket is None:
            with self._lock:
                bucket = self._buckets.setdefault(key_id, TokenBucket(self.rate, self.burst))
        return bucket.take()
