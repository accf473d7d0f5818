"""What the local runtime's scheduler lets callers observe: counters, invocations, the timeline
of executions running, and waits for the queue or the handler threads to drain.

A base class of :class:`~siblings.local.runtime.scheduler.Scheduler`, which owns the state
declared here and changes it under ``_cond``; every method here reads it under that lock.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from siblings.local.runtime.records import InvocationRecord, InvocationStatus, RuntimeStats

if TYPE_CHECKING:
    from siblings.local.runtime.sandbox import Run


class Observing:
    """Read-only views of a scheduler's state, and waits on it."""

    _cond: threading.Condition
    _queue: list[InvocationRecord]
    _running: dict[int, Run]
    _running_by_fn: Counter[str]
    _invocations: dict[str, InvocationRecord]
    _counters: Counter[str]
    _peak: int
    _started_at: float
    _timeline: list[tuple[float, int]]
    _clock: Callable[[], float]
    _holding: bool
    _threads: int

    def stats(self) -> RuntimeStats:
        """Counters now."""
        with self._cond:
            statuses = Counter(inv.status for inv in self._invocations.values())
            counters = self._counters
            return RuntimeStats(
                accepted=len(self._invocations),
                queued=len(self._queue),
                running=len(self._running),
                succeeded=statuses[InvocationStatus.SUCCEEDED],
                failed=statuses[InvocationStatus.FAILED],
                attempts=counters["attempts"],
                errors=counters["errors"],
                timeouts=counters["timeouts"],
                retries=counters["retries"],
                throttled=counters["throttled"],
                sync_throttled=counters["sync_throttled"],
                dry_runs=counters["dry_runs"],
                peak_concurrency=self._peak,
                cold_starts=counters["cold_starts"],
                late_finishes=counters["late_finishes"],
                crashes=counters["crashes"],
                recursion_dropped=counters["recursion_dropped"],
            )

    def invocations(self) -> list[InvocationRecord]:
        """Every invocation accepted so far, oldest first."""
        with self._cond:
            return sorted(self._invocations.values(), key=lambda inv: inv.accepted_at)

    def invocation(self, request_id: str) -> InvocationRecord | None:
        """The invocation with this request id, if this runtime accepted it."""
        with self._cond:
            return self._invocations.get(request_id)

    def running(self, function_name: str | None = None) -> int:
        """Executions running now (the true ``ConcurrentExecutions``)."""
        with self._cond:
            if function_name is None:
                return len(self._running)
            return self._running_by_fn[function_name]

    def timeline(self) -> list[tuple[float, int]]:
        """``(seconds since the runtime was created, executions running)`` at every change."""
        with self._cond:
            return list(self._timeline)

    @property
    def started_at(self) -> float:
        """The runtime clock's value at creation: time zero of :meth:`timeline`."""
        return self._started_at

    def elapsed(self) -> float:
        """Seconds since the runtime was created (the time axis of :meth:`timeline`)."""
        return self._clock() - self._started_at

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running; ``False`` if ``timeout`` ran out first.

        After :meth:`hold`, the queue is never run: only the running executions are waited for.
        """
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._running and (self._holding or not self._queue), timeout
            )

    def wait_handlers(self, timeout: float | None = None) -> bool:
        """Block until every handler thread has returned, those of attempts already ended as
        crashed or timed out included (Lambda would have frozen them; here they run on, and
        what they count, such as a spawn that failed with its process, lands late). ``False``
        if ``timeout`` ran out first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._threads == 0, timeout)
