"""A fleet of simulated Lambda executions, each deciding at a set rate on its own thread."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from botocore.exceptions import ClientError


@dataclass(frozen=True)
class Outcome:
    """What one decision produced: whether a sibling was spawned and the estimate it used."""

    spawned: bool | None
    """``None`` when the contender cannot tell (sosw's ``spawn_sibling`` returns ``None``)."""
    estimate: int | None
    """The concurrency estimate the decision was based on, if it got one."""
    error: str | None = None
    """Set when the decision failed after its estimate (e.g. the seed's spawn step raised)."""


class Execution(Protocol):
    """One simulated execution environment (a warm container with its own clients)."""

    def decide(self) -> Outcome:
        """Make one spawn decision; raise if it failed."""


@dataclass(frozen=True)
class Decision:
    """One timed decision of one execution."""

    execution: int
    first: bool
    """The execution's first decision (cold caches, lazily created clients)."""
    latency_s: float
    outcome: Outcome | None
    error: str | None
    """``None``, or the exception's type and AWS error code when the decision raised."""


@dataclass
class FleetRun:
    """Every decision of a run and how long it took."""

    decisions: list[Decision] = field(default_factory=list)
    elapsed_s: float = 0.0
    unfinished: int = 0
    """Executions still inside a decision when the run was cut off."""


def describe_error(exc: BaseException) -> str:
    """``Type`` or ``Type(Code)`` for AWS errors, also found on a ``cause`` chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ClientError):
            code = seen.response.get("Error", {}).get("Code", "?")
            return f"{type(exc).__name__}({code})"
        seen = getattr(seen, "cause", None) or seen.__cause__
    return type(exc).__name__


def run_fleet(
    executions: Sequence[Execution],
    rate_per_execution: float,
    duration_s: float,
    *,
    seed: int = 1,
    drain_timeout_s: float = 30.0,
) -> FleetRun:
    """Run every execution on its own thread for ``duration_s``, deciding every
    ``1 / rate_per_execution`` seconds from a random phase.

    A decision that overruns its slot delays the next one (no catch-up bursts). Decisions
    started before the end are waited for up to ``drain_timeout_s``.
    """
    if rate_per_execution <= 0 or duration_s <= 0:
        raise ValueError("rate_per_execution and duration_s must be positive")
    interval = 1.0 / rate_per_execution
    rng = random.Random(seed)
    phases = [rng.uniform(0.0, interval) for _ in executions]
    run = FleetRun()
    lock = threading.Lock()
    start = time.perf_counter() + 0.5  # let every thread reach its first sleep
    end = start + duration_s
    last_end = [start]

    def live(index: int, execution: Execution) -> None:
        due = start + phases[index]
        first = True
        while due < end:
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            began = time.perf_counter()
            outcome: Outcome | None = None
            error: str | None = None
            try:
                outcome = execution.decide()
                error = outcome.error
            except Exception as exc:  # a failed decision is a result of the benchmark
                error = describe_error(exc)
            finished = time.perf_counter()
            with lock:
                run.decisions.append(
                    Decision(index, first, finished - began, outcome, error)
                )
                last_end[0] = max(last_end[0], finished)
            first = False
            due = max(due + interval, finished)

    threads = [
        threading.Thread(target=live, args=(i, e), name=f"exec-{i}", daemon=True)
        for i, e in enumerate(executions)
    ]
    for thread in threads:
        thread.start()
    deadline = end + drain_timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.perf_counter()))
    with lock:
        run.unfinished = sum(thread.is_alive() for thread in threads)
        run.elapsed_s = max(last_end[0], min(time.perf_counter(), end)) - start
    return run
