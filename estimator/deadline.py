"""A deadline for the AWS calls made inside a scope: their timeouts come from the time left.

botocore waits up to 60 s to connect and 60 s for a reply by default. Inside a Lambda
execution with two seconds left, a stalled call with those timeouts outlives the execution:
Lambda ends the sandbox mid-call and the caller never learns what happened. A caller that
knows its deadline opens a scope with :func:`calls_within`; every client handed out by
:class:`estimator.aws.Clients` (and the table's bound model in :mod:`estimator.store`) inside
it has connect and read timeouts that let all of a call's attempts end before the deadline.

The scope is a :class:`contextvars.ContextVar`: it follows the call path in one thread, and a
pool's worker sees it only when the task is submitted through ``contextvars.copy_context()``.
Timeouts are rounded down to one of :data:`TIMEOUT_STEPS`, so a process keeps at most one
client per step and service instead of one per call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from estimator.clock import Clock

TIMEOUT_STEPS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0)
"""The timeouts a scoped client can have (seconds; 60 is botocore's default)."""

_SCOPE: ContextVar[tuple[float, Clock] | None] = ContextVar("estimator_call_deadline", default=None)


@contextmanager
def calls_within(deadline: float | None, clock: Clock) -> Iterator[None]:
    """Bound the timeouts of the calls made inside the ``with`` block by ``deadline`` (a
    ``clock.monotonic()`` value); ``None`` leaves them as configured. Scopes nest: the inner
    one applies until it ends."""
    if deadline is None:
        yield
        return
    token = _SCOPE.set((deadline, clock))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def time_left() -> float | None:
    """Seconds until the current scope's deadline (never below zero); ``None`` outside one."""
    scope = _SCOPE.get()
    if scope is None:
        return None
    deadline, clock = scope
    return max(deadline - clock.monotonic(), 0.0)


def call_timeout(attempts: int = 1) -> float | None:
    """The connect and read timeout for a call made now that may take ``attempts`` attempts:
    the largest of :data:`TIMEOUT_STEPS` with ``attempts`` of it within the time left (the
    smallest step when even that does not fit). ``None`` outside a scope, and when the time
    left allows botocore's own 60 s.

    A reply that never comes is then given up in time. An attempt that stalls twice, on its
    connect and then on its reply, could take two steps: the spawn's deadline keeps a margin
    back from the execution's end for that, and halving every timeout for it instead made
    calls to a slow but healthy endpoint fail."""
    left = time_left()
    if left is None:
        return None
    share = left / max(1, attempts)
    fitting = [step for step in TIMEOUT_STEPS if step <= share]
    step = fitting[-1] if fitting else TIMEOUT_STEPS[0]
    return None if step >= TIMEOUT_STEPS[-1] else step
