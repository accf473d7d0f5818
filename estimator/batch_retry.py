"""Sending again what a DynamoDB batch left unprocessed: bounded exponential backoff with jitter.

BatchGetItem and BatchWriteItem may serve part of a request and return the rest as
``UnprocessedKeys``/``UnprocessedItems`` (a partition over its rate, an internal failure).
AWS's API reference for both asks the caller to send the rest again "using exponential
backoff" (docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html,
API_BatchGetItem.html): an immediate resend lands on the same hot partition in the same
second. :func:`resend_unprocessed` waits ``base * 2**n`` seconds (capped), each wait drawn
at random below that bound ("full jitter", so a fleet's retries spread out), at most
``attempts`` requests in all, so the worst case stays well inside a spawn's deadline.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from estimator.clock import SYSTEM_CLOCK, Clock
from estimator.exceptions import StoreThrottled, UnprocessedKeys
from estimator.items import StoredItem, decode_item
from estimator.lowlevel import LowLevel

P = TypeVar("P")


@dataclass(frozen=True)
class BatchBackoff:
    """How often and how long to wait before sending unprocessed batch items again."""

    attempts: int = 5
    """Requests in all, the first one included."""
    base_seconds: float = 0.05
    """Bound of the first wait; each next bound doubles."""
    max_seconds: float = 0.4
    """No bound grows past this (worst case of the default: 0.05+0.1+0.2+0.4 = 0.75 s)."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts!r}")
        if not 0 <= self.base_seconds <= self.max_seconds:
            raise ValueError("need 0 <= base_seconds <= max_seconds")

    def bound(self, retry: int) -> float:
        """The longest wait before retry number ``retry`` (1 for the first resend)."""
        return min(self.max_seconds, self.base_seconds * 2 ** (retry - 1))


@dataclass
class Resent(Generic[P]):
    """What :func:`resend_unprocessed` ended with: ``left`` is empty when all went through."""

    left: P
    requests: int


def resend_unprocessed(
    send: Callable[[P], P],
    pending: P,
    *,
    backoff: BatchBackoff,
    clock: Clock = SYSTEM_CLOCK,
    rng: random.Random | None = None,
) -> Resent[P]:
    """Call ``send(pending)`` (which returns what is still unprocessed, falsy when nothing is)
    until nothing is left or ``backoff.attempts`` requests were made, waiting on ``clock``
    between them. Errors of ``send`` propagate; the caller decides what ``left`` means."""
    draw = rng or random
    requests = 0
    while True:
        pending = send(pending)
        requests += 1
        if not pending or requests >= backoff.attempts:
            return Resent(pending, requests)
        clock.sleep(draw.uniform(0.0, backoff.bound(requests)))


def write_all(
    low: LowLevel, raws: list[dict[str, Any]], backoff: BatchBackoff, clock: Clock
) -> None:
    """Put every raw item with BatchWriteItem, sending unprocessed ones again; what is still
    unprocessed at the end is a :class:`StoreThrottled` (which opens the breaker): nothing
    is dropped without the caller knowing."""
    requests = [{"PutRequest": {"Item": raw}} for raw in raws]
    done = resend_unprocessed(low.write_batch, requests, backoff=backoff, clock=clock)
    if done.left:
        keys = [_entry_key(entry) for entry in done.left]
        raise StoreThrottled(
            "BatchWriteItem",
            RuntimeError(f"{len(keys)} item(s) unprocessed after {done.requests} request(s): {keys[:5]}"),
        )


def read_all(
    low: LowLevel, keys: list[str], backoff: BatchBackoff, clock: Clock, *, consistent: bool = True
) -> dict[str, StoredItem | None]:
    """Every key's item by BatchGetItem (``None``: absent; consistent unless not
    ``consistent``), asking unprocessed keys again; keys still unread at the end raise
    :class:`UnprocessedKeys` with what was read."""
    found: dict[str, StoredItem | None] = {}

    def send(pending: list[str]) -> list[str]:
        raws, unread = low.read_batch(pending, consistent)
        for key in pending:
            if key not in unread:
                raw = raws.get(key)
                found[key] = None if raw is None else decode_item(key, raw)
        return unread

    done = resend_unprocessed(send, list(dict.fromkeys(keys)), backoff=backoff, clock=clock)
    if done.left:
        raise UnprocessedKeys(found, done.left, done.requests)
    return found



def _entry_key(entry: dict[str, Any]) -> str:
    """The ``pk`` of a batch write entry, for messages."""
    item = (entry.get("PutRequest") or {}).get("Item") or {}
    return str((item.get("pk") or {}).get("S", "?"))
