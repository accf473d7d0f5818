"""No call on the spawn path outlives the execution: timeouts come from the time left.

botocore's default timeouts are 60 s. A Lambda client keeping them lets an Invoke that stalls
hold ``spawn_sibling`` past the execution's end, and Lambda kills the parent mid-call. These
tests stall the service for real (a socket timeout is real time), so the managers run on the
real clock: the deadline the library derives from the context is then real too.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from estimator.clock import SYSTEM_CLOCK
from estimator.deadline import TIMEOUT_STEPS, call_timeout, calls_within, time_left
from siblings import SpawnFailed, SpawnResult
from tests.fault.siblings.conftest import FaultInjector
from tests.integration.siblings.support import SiblingsEnv

LEFT_MS = 4_000  # what the context says is left (1 s of it kept back); the service stalls 10 s


def spawn_while_stalled(
    faulty: tuple[SiblingsEnv, FaultInjector],
    service: str,
    action: str | None,
    custom: dict[str, Any] | None = None,
) -> tuple[SpawnResult | SpawnFailed, float]:
    """One spawn with ``LEFT_MS`` left while ``service`` (its ``action``, or all) stalls: its
    result or its ``SpawnFailed``, and the seconds it took (the stall is released after)."""
    env, faults = faulty
    env.rule("schedule")
    release = threading.Event()
    faults.stall(service, action, release)
    manager = env.manager(custom, clock=SYSTEM_CLOCK)
    started = time.monotonic()
    try:
        try:
            outcome: SpawnResult | SpawnFailed = manager.spawn_sibling(
                env.context(remaining_ms=LEFT_MS), {"cursor": 1}
            )
        except SpawnFailed as failed:
            outcome = failed
        return outcome, time.monotonic() - started
    finally:
        release.set()


def test_an_invoke_that_stalls_ends_before_the_execution_does(
    faulty: tuple[SiblingsEnv, FaultInjector],
) -> None:
    failed, elapsed = spawn_while_stalled(faulty, "lambda", "Invoke")
    # Before: the Invoke waited out the stall (botocore's 60 s read timeout) and the spawn
    # returned long after the execution's end.
    assert elapsed < LEFT_MS / 1000, elapsed
    assert isinstance(failed, SpawnFailed), failed
    assert failed.maybe_spawned  # sent, no reply: the record is kept, not released


def test_a_stalled_table_read_ends_before_the_execution_does(
    faulty: tuple[SiblingsEnv, FaultInjector],
) -> None:
    # Every table call of the spawn stalls.
    result, elapsed = spawn_while_stalled(faulty, "dynamodb", None, {"on_guard_error": "refuse"})
    # Before: 2 s per attempt, three attempts, for each of the spawn's table calls.
    assert elapsed < LEFT_MS / 1000, elapsed
    assert isinstance(result, SpawnResult), result
    assert not result.spawned and result.reason == "guard_error", result


def test_timeouts_fit_the_time_left_in_steps() -> None:
    clock = SYSTEM_CLOCK
    assert time_left() is None and call_timeout() is None  # no scope: as configured
    with calls_within(clock.monotonic() + 1.2, clock):
        left = time_left()
        assert left is not None and 1.0 < left <= 1.2
        assert call_timeout() == 1.0
        assert call_timeout(attempts=3) == 0.25  # 0.4 s each: the step below
        with calls_within(clock.monotonic() + 0.01, clock):
            assert call_timeout() == TIMEOUT_STEPS[0]  # the floor, never zero
        assert call_timeout() == 1.0  # the inner scope ended
    with calls_within(clock.monotonic() + 600, clock):
        assert call_timeout() is None  # botocore's own 60 s fit
    with calls_within(None, clock):
        assert time_left() is None
