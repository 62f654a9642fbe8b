"""A small thread-safe LRU cache of compiled problems, with hit/miss counters."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, NamedTuple, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class CacheInfo(NamedTuple):
    """Counters of a :class:`LRUCache` (for tests and metrics)."""

    hits: int
    misses: int
    size: int
    max_size: int


class LRUCache(Generic[K, V]):
    """Least-recently-used cache whose values are built on a miss.

    Parameters
    ----------
    max_size : int
        Entries kept; the least recently used is evicted beyond it. Must be >= 1.
    """

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError(f"cache_size must be at least 1; got {max_size}")
        self._max_size = max_size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def get_or_create(self, key: K, factory: Callable[[], V]) -> tuple[V, bool]:
        """The value for ``key``, building it with ``factory`` on a miss.

        Returns
        -------
        tuple of (value, bool)
            The value and whether it came from the cache.
        """
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self._hits += 1
                return self._entries[key], True
            # Built under the lock so that concurrent misses build once. Building a
            # problem is cheap; cvxpy's expensive canonicalisation happens at the
            # first solve, under the problem's own lock.
            value = factory()
            self._entries[key] = value
            self._misses += 1
            if len(self._entries) > self._max_size:
                self._entries.popitem(last=False)
            return value, False

    def info(self) -> CacheInfo:
        """Hits, misses, current and maximum size."""
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._entries), self._max_size)

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        with self._lock:
            self._entries.clear()
            self._hits = self._misses = 0
