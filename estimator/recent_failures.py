"""The loader failures a process remembers for a back-off period, per key.

A failing origin (CloudWatch, EventBridge...) is not asked again by this process until
``error_backoff_seconds`` have passed: callers get the remembered failure instead. Bounded like
tier 1, so a caller asking for ever-new keys cannot grow the process.
"""

from __future__ import annotations

import threading

from cachetools import LRUCache

from estimator.clock import Clock
from estimator.exceptions import LookupFailed


class RecentFailures:
    """Per key, the last :class:`LookupFailed` and until when it stands (``clock.now()``)."""

    def __init__(self, backoff_seconds: float, clock: Clock, max_keys: int = 1024) -> None:
        self.backoff_seconds = backoff_seconds
        self.clock = clock
        self._failures: LRUCache[str, tuple[float, LookupFailed]] = LRUCache(maxsize=max_keys)
        self._lock = threading.Lock()

    def get(self, key: str, now: float) -> LookupFailed | None:
        """The failure of ``key`` still standing at ``now``, else ``None``."""
        with self._lock:
            failure = self._failures.get(key)
            if failure is None:
                return None
            if failure[0] <= now:
                del self._failures[key]
                return None
            return failure[1]

    def remember(self, key: str, error: LookupFailed) -> LookupFailed:
        """Remember ``error`` for the back-off period (none with a back-off of 0); returns it."""
        if self.backoff_seconds > 0:
            with self._lock:
                self._failures[key] = (self.clock.now() + self.backoff_seconds, error)
        return error

    def forget(self, key: str) -> None:
        """Drop ``key``'s failure (its value was invalidated)."""
        with self._lock:
            self._failures.pop(key, None)
