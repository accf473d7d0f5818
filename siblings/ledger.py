"""Spawn records: at most one sibling per chain step, even when Lambda retries the parent.

Lambda retries a failed async event with the same ``aws_request_id``, so a parent that spawned
and then crashed would spawn again. Each spawn is recorded under ``spawn#<chain id>#<generation>``
in the shared table:

1. ``claim``: a conditional put of ``{"state": "pending", "owner": <parent request id>}``.
   Exactly one caller creates it.
2. After the Invoke, ``complete`` overwrites it with ``{"state": "invoked", "result": ...}``; a
   repeat of the step finds it and returns the first result instead of invoking again.
3. If the Invoke fails, ``release`` deletes the record so the step can be tried again.

A crash between 1 and 2 leaves a pending record. The choice made here: a pending record whose
owner is the *same* request id and that is older than ``lease_seconds`` is taken over (the
retry spawns), because Lambda retries a failed event only after its first attempt ended (a
minute or more later). A younger one is polled until it turns "invoked" or becomes old enough.
A pending record owned by a *different* request id is never taken over: that would fork the
chain; the caller gets a ``duplicate`` result with ``spawned=False``. The remaining risk: a
crash after the Invoke but before ``complete`` makes the retry spawn a second sibling (the
window is one DynamoDB write).

Without a shared table (``use_dynamodb=False``) the records live in process only: racing
threads still give one invoke, retries in another container do not.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cachetools import LRUCache

from estimator.polling import Backoff
from estimator.store import DynamoStore, StoredItem
from siblings.config import SiblingsConfig

log = logging.getLogger(__name__)

_MEMORY_MAX = 1024


class ClaimStatus(StrEnum):
    """What :meth:`SpawnLedger.claim` found."""

    CLAIMED = "claimed"
    """This caller must invoke, then :meth:`~SpawnLedger.complete` or :meth:`~SpawnLedger.release`."""
    DONE = "done"
    """Already spawned: ``Claim.result`` is the first result."""
    BUSY = "busy"
    """Another execution holds the step (``Claim.owner``)."""


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`SpawnLedger.claim` (see :class:`ClaimStatus`)."""

    status: ClaimStatus
    token: str | None = None
    result: dict[str, Any] | None = None
    owner: str | None = None


class SpawnLedger:
    """Idempotency records of spawns, in the shared table (or in process without one)."""

    def __init__(
        self,
        store: DynamoStore | None,
        config: SiblingsConfig,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._done: LRUCache[str, dict[str, Any]] = LRUCache(maxsize=_MEMORY_MAX)

    def peek(self, key: str) -> dict[str, Any] | None:
        """The first result if the step was spawned, else ``None`` (cheap: memory, one GetItem).

        Raises :class:`StoreUnavailable`.
        """
        with self._lock:
            done = self._done.get(key)
        if done is not None:
            return done
        if self.store is None:
            return None
        return self._result_of(self.store.get(key))

    def claim(self, key: str, owner: str | None, deadline: float | None = None) -> Claim:
        """Take the step for ``owner`` (the parent's request id); see the module docstring.

        ``deadline`` (``time.monotonic()``) bounds waiting on someone else's pending record.
        Raises :class:`StoreUnavailable`.
        """
        with self._lock:
            done = self._done.get(key)
        if done is not None:
            return Claim(ClaimStatus.DONE, result=done)
        token = uuid.uuid4().hex
        if self.store is None:
            return Claim(ClaimStatus.CLAIMED, token=token)
        now = self.clock()
        pending = {"state": "pending", "owner": owner, "token": token, "claimed_at": now}
        keep_until = now + self.config.spawn_record_ttl_seconds
        existing = self.store.put_if_absent(key, pending, keep_until, now=now)
        if existing is None:
            return Claim(ClaimStatus.CLAIMED, token=token)
        timeout = self.config.lease_wait_seconds
        if deadline is not None:
            timeout = min(timeout, deadline - self.monotonic())
        backoff = Backoff(timeout, monotonic=self.monotonic, sleep=self.sleep)
        while True:
            result = self._result_of(existing)
            if result is not None:
                return Claim(ClaimStatus.DONE, result=result)
            if existing is None:  # released meanwhile: claim it like a fresh step
                existing = self.store.put_if_absent(key, pending, keep_until, now=self.clock())
                if existing is None:
                    return Claim(ClaimStatus.CLAIMED, token=token)
                continue
            value = existing.value
            if value is None or value.get("state") != "pending":
                log.warning("spawn record %r is unreadable; overwriting it", key)
                return self._take(key, pending, keep_until)
            if value.get("token") == token:
                # Our own write: it succeeded, but the reply was lost and the retry collided.
                return Claim(ClaimStatus.CLAIMED, token=token)
            claimed_at = value.get("claimed_at")
            age = self.clock() - (claimed_at if isinstance(claimed_at, int | float) else 0.0)
            holder = value.get("owner")
            if holder == owner and age >= self.config.lease_seconds:
                log.warning(
                    "taking over spawn record %r left pending %.1fs ago by this request id",
                    key,
                    age,
                )
                return self._take(key, pending, keep_until)
            if not backoff.wait():
                return Claim(ClaimStatus.BUSY, owner=holder if isinstance(holder, str) else None)
            existing = self.store.get(key)

    def complete(
        self, key: str, owner: str | None, token: str | None, result: dict[str, Any]
    ) -> None:
        """Record that the step was spawned with ``result``. Raises :class:`StoreUnavailable`
        (the in-process record is kept either way)."""
        with self._lock:
            self._done[key] = result
        if self.store is None:
            return
        now = self.clock()
        keep_until = now + self.config.spawn_record_ttl_seconds
        value = {
            "state": "invoked",
            "owner": owner,
            "token": token,
            "invoked_at": now,
            "result": result,
        }
        self.store.put(key, value, fresh_until=keep_until, keep_until=keep_until)

    def release(self, key: str) -> None:
        """Forget a claim whose Invoke failed, so the step can be spawned later (best effort)."""
        if self.store is None:
            return
        try:
            self.store.delete(key)
        except Exception as exc:  # the caller is already handling the Invoke's failure
            log.warning("could not release spawn record %r: %s", key, exc)

    def _take(self, key: str, pending: dict[str, Any], keep_until: float) -> Claim:
        assert self.store is not None
        self.store.put(key, pending, fresh_until=keep_until, keep_until=keep_until)
        return Claim(ClaimStatus.CLAIMED, token=pending["token"])

    def _result_of(self, item: StoredItem | None) -> dict[str, Any] | None:
        if item is None or item.value is None or item.is_gone(self.clock()):
            return None
        if item.value.get("state") != "invoked":
            return None
        result = item.value.get("result")
        if not isinstance(result, dict):
            return None
        return result
