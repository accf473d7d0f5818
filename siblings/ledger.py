"""Spawn records: at most one sibling invoked per chain step, even when Lambda retries the parent.

Lambda retries a failed async event with the same ``aws_request_id``, so a parent that spawned
and then crashed would spawn again. Each spawn is recorded under
:func:`~siblings.keys.spawn_key` in the shared table:

1. ``claim``: one conditional PutItem of ``{"state": "pending", "owner": <parent request id>}``
   that returns the existing record when the condition fails (no read before the write).
2. After the Invoke, ``complete`` writes ``{"state": "invoked", "result": ...}`` and, in the
   same BatchWriteItem, the child's step under the Invoke's request id (which Lambda gives the
   child as its ``aws_request_id``; see :mod:`siblings.runs`). A repeat of the step finds the
   record and returns the first result instead of invoking again.
3. If the Invoke fails, or a guard refuses after the claim, ``release`` deletes the record.

A crash between 1 and 2 leaves a pending record. A pending record whose owner is the *same*
request id and that is older than ``lease_seconds`` is taken over (the retry spawns), because
Lambda retries a failed event only after its first attempt ended. A younger one is polled
until it turns "invoked" or old enough. A pending record owned by a *different* request id is
never taken over: that would fork the chain; the caller gets a ``duplicate`` result with
``spawned=False``. A crash after the Invoke but before ``complete`` (or a lost Invoke reply)
can invoke a step twice; the siblings' own claim on start (:mod:`siblings.runs`) then lets only
one of them run it.

A record that is not one of ours (wrong shape, times beyond the clock-skew allowance) is
reported as :attr:`ClaimStatus.CORRUPT`: the manager applies ``on_guard_error`` to it.

Without a shared table (``use_dynamodb=False``) the records live in a
:class:`~estimator.memory_store.MemoryStore`, in process only: racing threads still give one
invoke, retries in another container do not.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cachetools import LRUCache
from pynamodb.attributes import MapAttribute, NumberAttribute, UnicodeAttribute

from estimator.clock import SYSTEM_CLOCK, Clock
from estimator.item_kinds import ItemKind, ItemValue
from estimator.items import StoredItem, believable_time
from estimator.memory_store import MemoryStore
from estimator.polling import Backoff
from estimator.store import Store
from siblings.config import SiblingsConfig
from siblings.keys import SPAWN_PREFIX
from siblings.metadata import ChainMetadata

log = logging.getLogger(__name__)

_MEMORY_MAX = 1024
_STATES = ("pending", "invoked")


class SpawnRecord(ItemValue):
    """A step's spawn record: pending (claimed by ``owner`` with ``token``) or invoked (with
    the first Invoke's ``result``)."""

    loose = frozenset({"claimed_at", "invoked_at", "result"})  # each only in its own state
    state = UnicodeAttribute()
    owner = UnicodeAttribute(null=True)
    token = UnicodeAttribute(null=True)
    claimed_at = NumberAttribute(null=True)
    invoked_at = NumberAttribute(null=True)
    result = MapAttribute[str, Any](null=True)

    @classmethod
    def in_bounds(cls, fields: Any, now: float, skew: float) -> bool:
        """A known state, its time believable, and an invoked record's result present."""
        if fields.state not in _STATES:
            return False
        stamp = fields.claimed_at if fields.state == "pending" else fields.invoked_at
        return believable_time(stamp, now, skew) and (
            fields.state == "pending" or isinstance(fields.result, dict)
        )


class SpawnItem(ItemKind):
    """``spawn#<scope>#<chain>#<gen>``: who claimed a step, and what its Invoke returned."""

    prefix = SPAWN_PREFIX
    schema = SpawnRecord


class ClaimStatus(StrEnum):
    """What :meth:`SpawnLedger.claim` found."""

    CLAIMED = "claimed"
    """This caller must invoke, then :meth:`~SpawnLedger.complete` or :meth:`~SpawnLedger.release`."""
    DONE = "done"
    """Already spawned: ``Claim.result`` is the first result."""
    BUSY = "busy"
    """Another execution holds the step (``Claim.owner``)."""
    CORRUPT = "corrupt"
    """The record is not one this library wrote: nothing can be concluded from it."""


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
        store: Store | None,
        config: SiblingsConfig,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store: Store = store if store is not None else MemoryStore()
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._done: LRUCache[str, dict[str, Any]] = LRUCache(maxsize=_MEMORY_MAX)

    def peek(self, key: str) -> dict[str, Any] | None:
        """The first result if the step was spawned, else ``None`` (memory, then one GetItem).

        Raises :class:`StoreUnavailable`.
        """
        with self._lock:
            done = self._done.get(key)
        if done is not None:
            return done
        item = self.store.get(key)
        if item is None or item.is_gone(self.clock.now()) or not self.valid_record(item.value):
            return None
        assert item.value is not None
        return item.value["result"] if item.value["state"] == "invoked" else None

    def claim(self, key: str, owner: str | None, deadline: float | None = None) -> Claim:
        """Take the step for ``owner`` (the parent's request id); see the module docstring.

        ``deadline`` (a ``clock.monotonic()`` value) bounds waiting on someone else's pending record.
        Raises :class:`StoreUnavailable`.
        """
        with self._lock:
            done = self._done.get(key)
        if done is not None:
            return Claim(ClaimStatus.DONE, result=done)
        token = uuid.uuid4().hex
        now = self.clock.now()
        pending = {"state": "pending", "owner": owner, "token": token, "claimed_at": now}
        existing = self.store.create(key, pending, self._keep_until(now), now)
        if existing is None:
            return Claim(ClaimStatus.CLAIMED, token=token)
        timeout = self.config.lease_wait_seconds
        if deadline is not None:
            timeout = min(timeout, deadline - self.clock.monotonic())
        backoff = Backoff(timeout, clock=self.clock)
        while True:
            claim = self._judge(key, existing, owner, pending)
            if claim is not None:
                return claim
            if existing is None:  # released meanwhile: claim it like a fresh step
                now = self.clock.now()
                existing = self.store.create(key, {**pending, "claimed_at": now}, self._keep_until(now), now)
                if existing is None:
                    return Claim(ClaimStatus.CLAIMED, token=token)
                continue
            if not backoff.wait():
                holder = existing.value.get("owner") if existing.value else None
                return Claim(ClaimStatus.BUSY, owner=holder if isinstance(holder, str) else None)
            existing = self.store.get(key)

    def _judge(
        self, key: str, item: StoredItem | None, owner: str | None, pending: dict[str, Any]
    ) -> Claim | None:
        """What an existing record means for this claim; ``None``: wait and look again."""
        if item is None or item.is_gone(self.clock.now()):
            return None
        value = item.value
        if item.corrupt or not self.valid_record(value):
            log.warning("spawn record %r is not one of ours: %r", key, value)
            return Claim(ClaimStatus.CORRUPT)
        assert value is not None
        if value["state"] == "invoked":
            return Claim(ClaimStatus.DONE, result=value["result"])
        if value.get("token") == pending["token"]:
            # Our own write: it succeeded, but the reply was lost and the retry collided.
            return Claim(ClaimStatus.CLAIMED, token=pending["token"])
        age = self.clock.now() - float(value["claimed_at"])
        if value.get("owner") == owner and age >= self.config.lease_seconds:
            log.warning("taking over spawn record %r left pending %.1fs ago by this request id", key, age)
            return self.take_over(key, pending)
        return None

    def take_over(self, key: str, pending: dict[str, Any] | None = None) -> Claim:
        """Overwrite the step's record with a fresh claim of ours (after a crash, or when
        ``on_guard_error='allow'`` lets a corrupt record be replaced)."""
        now = self.clock.now()
        pending = {**(pending or {"state": "pending", "owner": None, "token": uuid.uuid4().hex}),
                   "claimed_at": now}
        keep = self._keep_until(now)
        self.store.put(key, pending, fresh_until=keep, keep_until=keep)
        return Claim(ClaimStatus.CLAIMED, token=pending["token"])

    def valid_record(self, value: dict[str, Any] | None) -> bool:
        """A spawn record as this library writes it, with times the clock can believe."""
        return SpawnItem.valid(value, self.clock.now(), self.config.max_clock_skew_seconds)

    def complete(
        self,
        key: str,
        owner: str | None,
        token: str | None,
        result: dict[str, Any],
        child: tuple[str, ChainMetadata] | None = None,
        extra: list[tuple[str, dict[str, Any], float, float]] | None = None,
    ) -> None:
        """Record that the step was spawned with ``result`` and, with ``child`` (the
        :func:`~siblings.keys.invocation_key` of the Invoke's request id and the child's
        metadata), where that request sits in its chain, and any
        ``extra`` items (the chain log's): one BatchWriteItem. Raises
        :class:`StoreUnavailable` (the in-process record is kept)."""
        with self._lock:
            self._done[key] = result
        now = self.clock.now()
        keep = self._keep_until(now)
        record = {"state": "invoked", "owner": owner, "token": token, "invoked_at": now, "result": result}
        items = [(key, record, keep, keep)]
        if child is not None and child[0]:
            items.append((child[0], child[1].to_dict(), keep, keep))
        self.store.put_many(items + (extra or []))

    def release(self, key: str, token: str | None = None) -> bool:
        """Forget the claim ``token`` whose Invoke failed or was refused, so the step can be
        spawned later (best effort). Only that claim is removed: a stalled attempt whose
        record was taken over by a retry must not delete its successor's (``token=None``
        removes whatever is there: for operators only). Returns whether the claim is gone
        (a deferral needs it gone: its relay, another request id, could not take it over)."""
        try:
            if token is None:
                self.store.delete(key)
            elif not self.store.delete(key, only_if={"token": token}):
                log.info("spawn record %r is no longer claim %s: left alone", key, token)
                return False
        except Exception as exc:  # the caller is already handling the Invoke's failure
            log.warning("could not release spawn record %r: %s", key, exc)
            return False
        return True

    def _keep_until(self, now: float) -> float:
        return now + self.config.spawn_record_ttl_seconds
