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
from typing import Generic, TypeVar

from estimator.clock import SYSTEM_CLOCK, Clock

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
