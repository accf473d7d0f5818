"""Skip an unreachable shared table for a while instead of paying its timeouts on every call.

A spawn reads the kill switch and writes a spawn record; with DynamoDB unreachable each of those
calls can cost the connect timeout times pynamodb's attempts, which a function near its deadline
cannot afford. After one failure, :class:`StoreBreaker` fails the next calls at once for
``error_backoff_seconds`` (the guards then follow ``on_guard_error``), then tries again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from estimator.exceptions import StoreUnavailable
from estimator.store import DynamoStore, StoredItem

T = TypeVar("T")


class ItemStore(Protocol):
    """What the kill switch and the spawn records need of the shared table."""

    def get(self, key: str) -> StoredItem | None:
        """The item at ``key`` or ``None``."""

    def put(self, key: str, value: dict[str, Any], fresh_until: float, keep_until: float) -> None:
        """Overwrite ``key``."""

    def put_if_absent(
        self, key: str, value: dict[str, Any], keep_until: float, now: float | None = None
    ) -> StoredItem | None:
        """Create ``key`` unless it exists: ``None`` if created, else the existing item."""

    def delete(self, key: str) -> None:
        """Delete ``key``."""


class StoreBreaker:
    """The item methods of a :class:`DynamoStore` (``get``, ``put``, ``put_if_absent``,
    ``delete``) behind a circuit breaker; every failure is still :class:`StoreUnavailable`."""

    def __init__(
        self,
        store: DynamoStore,
        backoff_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.backoff_seconds = backoff_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._last_error: StoreUnavailable | None = None

    @property
    def is_down(self) -> bool:
        """Calls are being skipped after a recent failure."""
        with self._lock:
            return self.clock() < self._down_until

    def _call(self, operation: str, call: Callable[[], T]) -> T:
        with self._lock:
            if self.clock() < self._down_until:
                cause = self._last_error.cause if self._last_error else None
                raise StoreUnavailable(f"{operation} (skipped: table unavailable)", cause)
        try:
            return call()
        except StoreUnavailable as exc:
            with self._lock:
                self._down_until = self.clock() + self.backoff_seconds
                self._last_error = exc
            raise

    def get(self, key: str) -> StoredItem | None:
        """See :meth:`DynamoStore.get`."""
        return self._call("GetItem", lambda: self.store.get(key))

    def put(self, key: str, value: dict[str, Any], fresh_until: float, keep_until: float) -> None:
        """See :meth:`DynamoStore.put`."""
        self._call("PutItem", lambda: self.store.put(key, value, fresh_until, keep_until))

    def put_if_absent(
        self, key: str, value: dict[str, Any], keep_until: float, now: float | None = None
    ) -> StoredItem | None:
        """See :meth:`DynamoStore.put_if_absent`."""
        return self._call(
            "PutItem", lambda: self.store.put_if_absent(key, value, keep_until, now=now)
        )

    def delete(self, key: str) -> None:
        """See :meth:`DynamoStore.delete`."""
        self._call("DeleteItem", lambda: self.store.delete(key))
