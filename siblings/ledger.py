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
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from estimator.config import Config
from estimator.store import StoredItem
from siblings.breaker import ItemStore

log = logging.getLogger(__name__)

_POLL_FIRST_S = 0.05
_POLL_MAX_S = 0.5
_MEMORY_MAX = 1024


def spawn_key(chain_id: str, generation: int) -> str:
    """Shared-table key of the spawn record of one chain step."""
    return f"spawn#{chain_id}#{generation}"


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`SpawnLedger.claim`.

    ``claimed``: this caller must invoke, then :meth:`~SpawnLedger.complete` or
    :meth:`~SpawnLedger.release`. ``done``: already spawned, ``result`` is the first result.
    ``busy``: another execution holds the step (``owner``).
    """

    status: Literal["claimed", "done", "busy"]
    token: str | None = None
    result: dict[str, Any] | None = None
    owner: str | None = None


class SpawnLedger:
    """Idempotency records of spawns, in the shared table (or in process without one)."""

    def __init__(
        self,
        store: ItemStore | None,
        config: Config,
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
        self._done: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def peek(self, key: str) -> dict[str, Any] | None:
        """The first result if the step was spawned, else ``None`` (cheap: memory, one GetItem).

        Raises :class:`StoreUnavailable`.
        """
        with self._lock:
            if key in self._done:
                return self._done[key]
        if self.store is None:
            return None
        return self._result_of(self.store.get(key))

    def claim(self, key: str, owner: str | None, deadline: float | None = None) -> Claim:
        """Take the step for ``owner`` (the parent's request id); see the module docstring.

        ``deadline`` (``time.monotonic()``) bounds waiting on someone else's pending record.
        Raises :class:`StoreUnavailable`.
        """
        with self._lock:
            if key in self._done:
                return Claim("done", result=self._done[key])
        token = uuid.uuid4().hex
        if self.store is None:
            return Claim("claimed", token=token)
        now = self.clock()
        pending = {"state": "pending", "owner": owner, "token": token, "claimed_at": now}
        keep_until = now + self.config.spawn_record_ttl_seconds
        existing = self.store.put_if_absent(key, pending, keep_until, now=now)
        if existing is None:
            return Claim("claimed", token=token)
        delay = _POLL_FIRST_S
        waited_until = self.monotonic() + self.config.lease_wait_seconds
        if deadline is not None:
            waited_until = min(waited_until, deadline)
        while True:
            result = self._result_of(existing)
            if result is not None:
                return Claim("done", result=result)
            if existing is None:  # released meanwhile: claim it like a fresh step
                existing = self.store.put_if_absent(key, pending, keep_until, now=self.clock())
                if existing is None:
                    return Claim("claimed", token=token)
                continue
            value = existing.value
            if value is None or value.get("state") != "pending":
                log.warning("spawn record %r is unreadable; overwriting it", key)
                return self._take(key, pending, keep_until)
            if value.get("token") == token:
                # Our own write: it succeeded, but the reply was lost and the retry collided.
                return Claim("claimed", token=token)
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
            if self.monotonic() + delay >= waited_until:
                return Claim("busy", owner=holder if isinstance(holder, str) else None)
            self.sleep(delay)
            delay = min(delay * 2, _POLL_MAX_S)
            existing = self.store.get(key)

    def complete(
        self, key: str, owner: str | None, token: str | None, result: dict[str, Any]
    ) -> None:
        """Record that the step was spawned with ``result``. Raises :class:`StoreUnavailable`
        (the in-process record is kept either way)."""
        with self._lock:
            self._done[key] = result
            self._done.move_to_end(key)
            while len(self._done) > _MEMORY_MAX:
                self._done.popitem(last=False)
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
        return Claim("claimed", token=pending["token"])

    def _result_of(self, item: StoredItem | None) -> dict[str, Any] | None:
        if item is None or item.value is None or item.is_gone(self.clock()):
            return None
        if item.value.get("state") != "invoked":
            return None
        result = item.value.get("result")
        if not isinstance(result, dict):
            return None
        return result
