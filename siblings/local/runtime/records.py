"""What the local Lambda runtime records: invocations, their attempts, and its counters."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from siblings.local.context import LambdaContext
from siblings.local.runtime.lineage import Trace

Handler = Callable[[Any, LambdaContext], Any]
"""``handler(event, context)``, as in Lambda."""

class AttemptOutcome(StrEnum):
    """How one attempt of an invocation ended (or that it has not yet)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


class InvocationStatus(StrEnum):
    """Where an invocation is in its life: queued, running, waiting for a retry, or done."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass
class Attempt:
    """One run of an invocation's handler (an async event gets up to three)."""

    number: int
    started_at: float
    ended_at: float | None = None
    init_ms: float = 0.0
    outcome: AttemptOutcome = AttemptOutcome.RUNNING
    error: str | None = None
    result: Any = None

    @property
    def duration_ms(self) -> float:
        """How long the handler ran (so far, while running); a cold start's init excluded."""
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return max(0.0, (end - self.started_at) * 1000.0 - self.init_ms)


@dataclass
class InvocationRecord:
    """An invocation the runtime accepted, with every attempt made for it."""

    request_id: str
    function_name: str
    qualifier: str | None
    invoked_function_arn: str
    function_version: str
    payload: bytes
    timeout_seconds: float
    memory_mb: int
    accepted_at: float
    invocation_type: str = "Event"
    source: str = "invoke"
    """``invoke`` (an ``Invoke`` API call) or ``trigger`` (:meth:`LocalLambdaRuntime.invoke_async`)."""
    status: InvocationStatus = InvocationStatus.QUEUED
    ready_at: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)
    throttled: bool = False
    trace: Trace = field(default_factory=Trace)
    """The chain's trace, this invocation counted (what its handler's requests forward)."""

    @property
    def event(self) -> Any:
        """A fresh copy of the event (each attempt gets its own)."""
        return json.loads(self.payload) if self.payload else {}

    @property
    def result(self) -> Any:
        """What the last successful attempt returned, else ``None``."""
        for attempt in reversed(self.attempts):
            if attempt.outcome is AttemptOutcome.SUCCEEDED:
                return attempt.result
        return None


@dataclass(frozen=True)
class RuntimeStats:
    """Counters of a :class:`LocalLambdaRuntime` at one moment."""

    accepted: int
    queued: int
    running: int
    succeeded: int
    failed: int
    attempts: int
    errors: int
    timeouts: int
    retries: int
    throttled: int
    sync_throttled: int
    dry_runs: int
    peak_concurrency: int
    cold_starts: int
    late_finishes: int
    crashes: int
    """Attempts ended by :meth:`~siblings.local.runtime.scheduler.Scheduler.crash`."""
    recursion_dropped: int = 0
    """Invocations dropped by recursive loop detection (``RecursiveInvocationsDropped``)."""



@dataclass(frozen=True)
class FunctionConfig:
    """A function's configuration at invoke time: moto's, with the registration's overrides."""

    unqualified_arn: str
    version: str
    timeout_seconds: float
    memory_mb: int
