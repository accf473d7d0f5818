"""Tier 1: a thread-safe in-process cache whose entries expire when their value does."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from cachetools import LRUCache, TLRUCache

from estimator.clock import SYSTEM_CLOCK, Clock


class Tier(StrEnum):
    """The cache tier a value was served from (a loader's own origin names the third)."""

    MEMORY = "memory"
    DYNAMODB = "dynamodb"


@dataclass(frozen=True)
class Cached:
    """A cached value and where it came from.

    ``source`` is ``"memory"``, ``"dynamodb"`` or the loader's origin (``"cloudwatch"``...);
    ``stale`` is True when the value is past ``expires_at`` and served because a refresh
    could not be made.
    """

    value: dict[str, Any]
    source: str
    fetched_at: float
    expires_at: float
    stale: bool = False

    def from_memory(self) -> Cached:
        """The same entry, as served by tier 1."""
        return replace(self, source=Tier.MEMORY)


class MemoryTier:
    """Fresh entries in a ``cachetools.TLRUCache`` (each expires at its own time), plus the
    last known value of every key for stale-while-revalidate, and one lock per key so that
    a process refreshes a key in one thread only.
    """

    def __init__(self, maxsize: int, clock: Clock = SYSTEM_CLOCK):
        self._lock = threading.Lock()
        self._fresh: TLRUCache[str, tuple[Cached, float]] = TLRUCache(
            maxsize=maxsize, ttu=lambda _key, entry, _now: entry[1], timer=clock.now
        )
        self._last: LRUCache[str, Cached] = LRUCache(maxsize=maxsize)
        self._key_locks: LRUCache[str, threading.Lock] = LRUCache(maxsize=maxsize * 4)

    def get(self, key: str) -> Cached | None:
        """The entry for ``key`` (``source="memory"``) while it may be served from memory."""
        with self._lock:
            hit = self._fresh.get(key)
        return hit[0] if hit is not None else None

    def served_until(self, key: str) -> float | None:
        """When the memory entry of ``key`` stops being served (``None``: none)."""
        with self._lock:
            hit = self._fresh.get(key)
        return hit[1] if hit is not None else None

    def last_known(self, key: str) -> Cached | None:
        """The most recent entry for ``key`` whatever its age (for stale fallback)."""
        with self._lock:
            return self._last.get(key)

    def put(self, key: str, entry: Cached, serve_until: float | None = None) -> None:
        """Serve ``entry`` from memory until ``serve_until`` (default: its ``expires_at``)."""
        until = entry.expires_at if serve_until is None else serve_until
        # Stored as served: hits are the hot path and must not copy the entry.
        served = entry if entry.source == Tier.MEMORY else entry.from_memory()
        with self._lock:
            self._fresh[key] = (served, until)
            previous = self._last.get(key)
            if previous is None or previous.fetched_at <= entry.fetched_at:
                self._last[key] = entry

    def discard(self, key: str) -> None:
        """Forget ``key`` entirely."""
        with self._lock:
            self._fresh.pop(key, None)
            self._last.pop(key, None)

    def key_lock(self, key: str) -> threading.Lock:
        """The lock that serialises refreshes of ``key`` within this process."""
        with self._lock:
            lock = self._key_locks.get(key)
            if lock is None:
                lock = self._key_locks[key] = threading.Lock()
            return lock
