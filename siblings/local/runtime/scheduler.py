"""The Lambda service's side of the local runtime: queue, capacity, attempts, retries, counts.

Accepted invocations wait in one queue until their function has a free slot (reserved
concurrency, then the account's concurrency); each attempt runs on a thread of its own, in a
warm container or a cold one, against a deadline that a dispatcher thread enforces. A failed
asynchronous attempt is queued again after ``retry_delays``. Every finished attempt publishes
Lambda's metrics, and the number of executions running is recorded at every change.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from siblings.local.metrics import MetricsPublisher
from siblings.local.runtime.lineage import Trace
from siblings.local.runtime.logs import LogCapture
from siblings.local.runtime.observing import Observing
from siblings.local.runtime.records import (
    Attempt,
    AttemptOutcome,
    FunctionConfig,
    InvocationRecord,
    InvocationStatus,
)
from siblings.local.runtime.sandbox import (
    INIT_LIMIT_SECONDS,
    Registration,
    Run,
    call_handler,
    cold_start,
)


class CapacityExceeded(Exception):
    """A synchronous invoke found no free slot; ``reason`` is Lambda's ``Reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Scheduler(Observing):
    """Runs invocations of registered functions as Lambda would; thread-safe.

    ``clock`` times deadlines and retries; ``metrics_clock`` (epoch seconds) stamps published
    datums and ``metric_duration_scale`` multiplies published durations.
    """

    def __init__(
        self,
        *,
        account_concurrency: int,
        retry_delays: Iterable[float],
        metrics_clock: Callable[[], float],
        metric_duration_scale: float,
        request_ids: Callable[[], str] | None,
        clock: Callable[[], float],
    ) -> None:
        self.account_concurrency = account_concurrency
        self.retry_delays = tuple(retry_delays)
        self.metrics: MetricsPublisher | None = None
        self._metrics_clock = metrics_clock
        self._duration_scale = metric_duration_scale
        self._request_ids = request_ids or (lambda: str(uuid.uuid4()))
        self._clock = clock
        self._functions: dict[str, Registration] = {}
        self._cond = threading.Condition()
        self._queue: list[InvocationRecord] = []
        self._running: dict[int, Run] = {}
        self._running_by_fn: Counter[str] = Counter()
        self._invocations: dict[str, InvocationRecord] = {}
        self._counters: Counter[str] = Counter()
        self._peak = 0
        self._started_at = clock()
        self._timeline: list[tuple[float, int]] = [(0.0, 0)]
        self._dispatcher: threading.Thread | None = None
        self._stopping = False
        self._holding = False
        self._threads = 0  # handler threads alive, those of crashed and timed-out attempts too
        self.logs = LogCapture()
        """The log streams of functions registered with a ``log_format``."""

    # --- used by the Invoke API ------------------------------------------------------------

    def registration(self, name: str) -> Registration | None:
        """The registration of ``name``, if any."""
        return self._functions.get(name)

    def note_moto_reserved(self, name: str, reserved: int | None) -> Registration:
        """Record the reserved concurrency the server has for ``name``; return its registration."""
        with self._cond:
            registration = self._functions[name]
            registration.moto_reserved = reserved
            return registration

    def new_request_id(self) -> str:
        """A request id for an answer that starts no invocation."""
        return self._request_ids()

    def count(self, counter: str) -> None:
        """Add one to ``counter`` (a :class:`RuntimeStats` field)."""
        with self._cond:
            self._counters[counter] += 1

    def accept(
        self, name: str, qualifier: str | None, config: FunctionConfig, payload: bytes,
        source: str = "invoke", trace: Trace | None = None,
    ) -> InvocationRecord:
        """Queue an asynchronous invocation; it runs once ``name`` has a free slot.

        ``trace`` is the invocation's own (counted); a new chain's when ``None``."""
        with self._cond:
            invocation = self._new_invocation(name, qualifier, config, payload, self._clock())
            invocation.source = source
            invocation.trace = trace or Trace().child(name)
            self._queue.append(invocation)
            self._cond.notify_all()
            return invocation

    def run_sync(
        self, name: str, qualifier: str | None, config: FunctionConfig, payload: bytes,
        trace: Trace | None = None,
    ) -> InvocationRecord:
        """Run one attempt now and wait for it; raise :class:`CapacityExceeded` without a slot."""
        with self._cond:
            over = self._over_capacity(name)
            if over:
                self._counters["sync_throttled"] += 1
                raise CapacityExceeded(over)
            invocation = self._new_invocation(name, qualifier, config, payload, self._clock())
            invocation.invocation_type = "RequestResponse"
            invocation.trace = trace or Trace().child(name)
            attempt = self._launch(invocation, self._clock())
            limit = invocation.timeout_seconds + INIT_LIMIT_SECONDS + 1.0
            if not self._cond.wait_for(lambda: attempt.outcome is not AttemptOutcome.RUNNING, limit):
                self._expire(self._clock())  # the dispatcher is not running: time out here
            return invocation

    def drop_recursive(self, name: str) -> None:
        """Count an invocation dropped by recursive loop detection, and publish it as Lambda does
        (``RecursiveInvocationsDropped``)."""
        with self._cond:
            self._counters["recursion_dropped"] += 1
            if self.metrics is not None:
                at = datetime.fromtimestamp(self._metrics_clock(), UTC)
                self.metrics.record_recursion_dropped(name, at=at)

    def crash(self, request_id: str, reason: str) -> bool:
        """End the running attempt of ``request_id`` as if its runtime process had exited.

        As Lambda does then: the attempt fails (``Runtime.ExitError``), its sandbox is thrown
        away (the next attempt starts cold) and an async event is retried after its retry delay
        with the same request id. The handler's thread cannot be stopped: it runs on unobserved
        and what it returns is discarded (a late finish). ``False`` when no attempt of
        ``request_id`` is running.
        """
        with self._cond:
            run = next(
                (run for run in self._running.values() if run.invocation.request_id == request_id),
                None,
            )
            if run is None:
                return False
            self._counters["crashes"] += 1
            run.container = None  # died with its process: never handed to another execution
            self._finish(run, AttemptOutcome.FAILED, None, f"Runtime.ExitError: {reason}")
            return True

    # --- the dispatcher thread -------------------------------------------------------------

    def start_dispatching(self) -> None:
        """Start the thread that launches queued invocations and enforces deadlines."""
        with self._cond:
            self._stopping = False
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(
                    target=self._dispatch_loop, name="lambda-dispatcher", daemon=True
                )
                self._dispatcher.start()

    def stop_dispatching(self) -> None:
        """Stop that thread; queued invocations stay unrun."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout=10)
            self._dispatcher = None

    def hold(self) -> None:
        """Launch nothing more (queued invocations stay unrun); running ones keep their deadlines.

        A run cut by its timeout ends here: waiting for the queue to empty would wait for chains
        that keep spawning.
        """
        with self._cond:
            self._holding = True
            self._cond.notify_all()

    # --- queue and dispatch (lock held unless said otherwise) --------------------------------

    def _new_invocation(
        self, name: str, qualifier: str | None, config: FunctionConfig, payload: bytes, now: float
    ) -> InvocationRecord:
        arn = config.unqualified_arn + (f":{qualifier}" if qualifier else "")
        invocation = InvocationRecord(
            request_id=self._request_ids(),
            function_name=name,
            qualifier=qualifier,
            invoked_function_arn=arn,
            function_version=config.version,
            payload=payload,
            timeout_seconds=config.timeout_seconds,
            memory_mb=config.memory_mb,
            accepted_at=now,
            ready_at=now,
        )
        self._invocations[invocation.request_id] = invocation
        return invocation

    def _claimed(self) -> int:
        """Lambda's ``ClaimedAccountConcurrency``: executions of functions without reserved
        concurrency plus every reserved allocation, in use or idle (takes the lock)."""
        claimed = 0
        for name, registration in self._functions.items():
            cap = registration.cap
            claimed += self._running_by_fn[name] if cap is None else cap
        return claimed

    def _over_capacity(self, name: str) -> str | None:
        """Why another execution of ``name`` may not start now, or ``None``."""
        cap = self._functions[name].cap
        if cap is not None and self._running_by_fn[name] >= cap:
            return "ReservedFunctionConcurrentInvocationLimitExceeded"
        if len(self._running) >= self.account_concurrency:
            return "ConcurrentInvocationLimitExceeded"
        return None

    def _dispatch_loop(self) -> None:
        """The dispatcher thread's body (takes the lock)."""
        with self._cond:
            while not self._stopping:
                now = self._clock()
                self._expire(now)
                self._launch_ready(now)
                self._cond.wait(timeout=self._next_wake(now))

    def _launch_ready(self, now: float) -> None:
        if self._holding:
            return
        for invocation in sorted(self._queue, key=lambda inv: inv.ready_at):
            if invocation.ready_at > now:
                continue
            if self._over_capacity(invocation.function_name):
                if not invocation.throttled:
                    invocation.throttled = True
                    self._counters["throttled"] += 1
                continue
            self._queue.remove(invocation)
            self._launch(invocation, now)

    def _next_wake(self, now: float) -> float:
        moments = [run.deadline for run in self._running.values()]
        moments += [inv.ready_at for inv in self._queue if inv.ready_at > now]
        return max(0.005, min(moments, default=now + 0.5) - now)

    def _launch(self, invocation: InvocationRecord, now: float) -> Attempt:
        """Start an attempt on a warm container, or a cold one."""
        registration = self._functions[invocation.function_name]
        container = registration.idle.pop() if registration.idle else None
        attempt = Attempt(number=len(invocation.attempts) + 1, started_at=now)
        invocation.attempts.append(attempt)
        invocation.status = InvocationStatus.RUNNING
        # A cold start's init has Lambda's own 10 s limit; the timeout starts after it.
        budget = invocation.timeout_seconds + (0.0 if container else INIT_LIMIT_SECONDS)
        run = Run(invocation, attempt, now + budget, container)
        self._running[id(attempt)] = run
        self._running_by_fn[invocation.function_name] += 1
        self._counters["attempts"] += 1
        self._peak = max(self._peak, len(self._running))
        self._timeline.append((now - self._started_at, len(self._running)))
        if self.metrics is not None:  # ConcurrentExecutions, as Lambda publishes it
            self.metrics.record_concurrency(
                invocation.function_name,
                self._running_by_fn[invocation.function_name],
                len(self._running),
                at=datetime.fromtimestamp(self._metrics_clock(), UTC),
                claimed=self._claimed(),
            )
        self._threads += 1
        threading.Thread(
            target=self.logs.bound(
                self._execute, invocation.function_name, invocation.request_id,
                registration.log_format,
            ),
            args=(registration, run),
            name=f"lambda-{invocation.function_name}-{invocation.request_id[:8]}",
            daemon=True,
        ).start()
        return attempt

    def _execute(self, registration: Registration, run: Run) -> None:
        """An attempt's thread (takes the lock around bookkeeping, not around the handler)."""
        try:
            self._attempt(registration, run)
        finally:
            with self._cond:
                self._threads -= 1
                self._cond.notify_all()

    def _attempt(self, registration: Registration, run: Run) -> None:
        error: str | None = None
        if run.container is None:
            self.count("cold_starts")
            run.container, error = cold_start(registration)
        with self._cond:
            now = self._clock()
            run.attempt.init_ms = (now - run.attempt.started_at) * 1000.0
            run.deadline = now + run.invocation.timeout_seconds
            self._cond.notify_all()
        result: Any = None
        if error is None and run.container is not None:
            result, error = call_handler(run, run.container, self._clock)
        with self._cond:
            # Already timed out: Lambda would have frozen it.
            if run.attempt.outcome is not AttemptOutcome.RUNNING:
                self._counters["late_finishes"] += 1
                return
            if run.container is not None:
                registration.idle.append(run.container)
            self._finish(run, AttemptOutcome.FAILED if error else AttemptOutcome.SUCCEEDED, result, error)

    def _expire(self, now: float) -> None:
        for run in list(self._running.values()):
            if run.deadline <= now:
                message = f"Task timed out after {run.invocation.timeout_seconds:.2f} seconds"
                # The container is not reused: Lambda restarts a sandbox after a timeout.
                self._finish(run, AttemptOutcome.TIMED_OUT, None, message)

    def _finish(self, run: Run, outcome: AttemptOutcome, result: Any, error: str | None) -> None:
        """Record an attempt's end, publish its metrics, and queue a retry if due."""
        invocation, attempt = run.invocation, run.attempt
        now = self._clock()
        attempt.ended_at = now
        attempt.outcome = outcome
        attempt.result = result
        attempt.error = error
        self._running.pop(id(attempt), None)
        self._running_by_fn[invocation.function_name] -= 1
        self._timeline.append((now - self._started_at, len(self._running)))
        if outcome is AttemptOutcome.TIMED_OUT:
            self._counters["timeouts"] += 1
        if outcome is not AttemptOutcome.SUCCEEDED:
            self._counters["errors"] += 1
        self._publish(invocation, attempt)
        retry = invocation.invocation_type == "Event" and attempt.number <= len(self.retry_delays)
        if outcome is not AttemptOutcome.SUCCEEDED and retry:
            invocation.status = InvocationStatus.RETRYING
            invocation.ready_at = now + self.retry_delays[attempt.number - 1]
            self._queue.append(invocation)
            self._counters["retries"] += 1
        else:
            invocation.status = (
                InvocationStatus.SUCCEEDED if outcome is AttemptOutcome.SUCCEEDED else InvocationStatus.FAILED
            )
        self._cond.notify_all()

    def _publish(self, invocation: InvocationRecord, attempt: Attempt) -> None:
        if self.metrics is not None:
            self.metrics.record_invocation(
                invocation.function_name,
                attempt.duration_ms * self._duration_scale,
                errored=attempt.outcome is not AttemptOutcome.SUCCEEDED,
                at=datetime.fromtimestamp(self._metrics_clock(), UTC),
                qualifier=invocation.qualifier,
            )
