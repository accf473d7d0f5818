"""The :class:`~estimator.store.Store` in this process: a bounded dict and a lock.

Used when ``use_dynamodb=False`` (one container's executions share it) and by unit tests. Its
conditions are the table's (:class:`~estimator.store.DynamoStore`): an item is live until
:func:`~estimator.items.expired`, a lease is taken by one caller, a conditional delete only
removes the owner's item; like the table's, every condition takes ``now`` from the caller's
clock (the store keeps none of its own). Items are kept as the table would hold them, encoded
(:func:`~estimator.items.encode_item`), and decoded on every read, so both backends answer alike.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any

from cachetools import LRUCache

from estimator.items import StoredItem, decode_item, encode_item, expired, field_text, ttl_datetime

MEMORY_STORE_MAX_ITEMS = 4096
"""Items one process keeps (least recently used dropped first): a long-lived container of a
chain-heavy function must not grow without bound."""


class MemoryStore:
    """The shared-table :class:`~estimator.store.Store` semantics, in process memory."""

    shared = False
    """Only this process writes here (nobody else's write is worth waiting for)."""

    def __init__(self, max_items: int = MEMORY_STORE_MAX_ITEMS) -> None:
        self._items: LRUCache[str, dict[str, Any]] = LRUCache(maxsize=max_items)
        self._lock = threading.Lock()

    def ensure_table(self) -> bool:
        """Nothing to create."""
        return False

    def get(self, key: str, *, consistent: bool = True) -> StoredItem | None:
        """The item at ``key``, ``None`` if absent (every read is consistent here)."""
        with self._lock:
            raw = self._items.get(key)
        return None if raw is None else decode_item(key, raw)

    def get_many(self, keys: list[str], *, consistent: bool = True) -> dict[str, StoredItem | None]:
        """Several items; absent keys map to ``None``."""
        return {key: self.get(key) for key in keys}

    def put(self, key: str, value: dict[str, Any], fresh_until: float, keep_until: float) -> None:
        """Overwrite ``key`` with ``value``; drops any lease."""
        with self._lock:
            self._items[key] = encode_item(key, value, fresh_until, keep_until)

    def put_many(self, items: list[tuple[str, dict[str, Any], float, float]]) -> None:
        """Overwrite several items."""
        for key, value, fresh_until, keep_until in items:
            self.put(key, value, fresh_until, keep_until)

    def create(
        self, key: str, value: dict[str, Any], keep_until: float, now: float
    ) -> StoredItem | None:
        """Create ``key`` unless a live item exists: ``None`` if created, else the existing one."""
        with self._lock:
            old = self._items.get(key)
            if old is None or expired(_ttl(old), math.floor(now)):
                self._items[key] = encode_item(key, value, keep_until, keep_until)
                return None
        return decode_item(key, old)

    def try_lease(
        self,
        key: str,
        owner: str,
        now: float,
        lease_seconds: float,
        *,
        skew: float = 0.0,
        fresh_at_most: float | None = None,
        due_by: float | None = None,
    ) -> bool:
        """Take the refresh lease of a stale or absent ``key`` (the table's condition)."""
        with self._lock:
            raw = self._items.get(key)
            if raw is not None and not _lease_free(raw, owner, now, lease_seconds + skew,
                                                   now if due_by is None else due_by, fresh_at_most):
                return False
            raw = dict(raw or {"pk": {"S": key}})
            raw["lease_owner"] = {"S": owner}
            raw["lease_until"] = {"N": repr(float(now + lease_seconds))}
            if "ttl" not in raw:  # a lease on a new key must not outlive its holder forever
                raw["ttl"] = {"N": str(int(ttl_datetime(now + lease_seconds + 3600).timestamp()))}
            self._items[key] = raw
            return True

    def mark_failed(self, key: str, owner: str, now: float, backoff_seconds: float, error: str) -> None:
        """Record that ``owner``'s refresh failed, while ``owner`` holds the lease."""
        with self._lock:
            raw = self._items.get(key)
            if raw is None or raw.get("lease_owner", {}).get("S") != owner:
                return
            until = {"N": repr(float(now + backoff_seconds))}
            self._items[key] = {**raw, "lease_until": until, "failed_until": until,
                                "last_error": {"S": error[:500] or "error"}}

    def delete(self, key: str, only_if: Mapping[str, str] | None = None) -> bool:
        """Delete ``key``; with ``only_if``, only while its value holds those string fields."""
        with self._lock:
            raw = self._items.get(key)
            if raw is None:
                return not only_if
            text = raw.get("value", {}).get("S", "")
            if only_if and not all(field_text(k, v) in text for k, v in only_if.items()):
                return False
            del self._items[key]
            return True


def _ttl(raw: dict[str, Any]) -> float | None:
    text = raw.get("ttl", {}).get("N")
    return None if text is None else float(text)


def _number(raw: dict[str, Any], name: str) -> float | None:
    text = raw.get(name, {}).get("N")
    return None if text is None else float(text)


def _lease_free(raw: dict[str, Any], owner: str, now: float, longest: float, due_by: float,
                fresh_at_most: float | None) -> bool:
    """The condition of :meth:`DynamoStore.try_lease`, on a raw item."""
    lease_until = _number(raw, "lease_until")
    no_live_lease = (
        lease_until is None or lease_until < now
        or raw.get("lease_owner", {}).get("S") == owner or lease_until > now + longest
    )
    fresh_until = _number(raw, "fresh_until")
    stale = (
        fresh_until is None or fresh_until <= due_by or expired(_ttl(raw), math.floor(now))
        or (fresh_at_most is not None and fresh_until > fresh_at_most)
    )
    return no_live_lease and stale
