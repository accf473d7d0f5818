"""The two windows that invoke one chain step twice, opened on the local runtime one at a time.

A root execution spawns one sibling (generation 1) through the library, unmodified; the
sibling does its work unless the library tells it that another execution runs its step. Each
test forces one window at rate 1.0 (:class:`~siblings.local.windows.WindowFaults`) and checks,
with the simulator's own verification, that the step was invoked twice and started once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from estimator.clock import Clock
from estimator.estimator import ensure_table
from siblings import Invocation, SiblingsManager
from siblings.config import SiblingsConfig
from siblings.local.calls import CallRecorder
from siblings.local.middleware import compose
from siblings.local.provision import create_function
from siblings.local.runtime import InvocationRecord, LocalLambdaRuntime
from siblings.local.server import LOCAL_CREDENTIALS, LOCAL_REGION, LocalAwsServer
from siblings.local.settings import FaultKind
from siblings.local.verify import Verification, verify
from siblings.local.windows import WindowFaults
from siblings.local.work_log import WorkLog
from siblings.metadata import METADATA_KEY
from tests.helpers import QuietRuntimeClock

FUNCTION = "window-worker"


@dataclass
class Window:
    """A server whose Invokes run on a local runtime behind the window faults."""

    server: LocalAwsServer
    runtime: LocalLambdaRuntime
    faults: WindowFaults
    recorder: CallRecorder
    work: WorkLog = field(default_factory=WorkLog)
    managers: dict[str, list[int]] = field(default_factory=dict)
    """Request id -> the container (its manager's id) of each attempt."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start_chain(self) -> str:
        """Queue the root event, wait for everything to settle; the root's request id."""
        root = self.runtime.invoke_async(FUNCTION, {"start": True})
        assert self.runtime.wait_idle(60)  # bounds a hang only
        return root

    def verification(self) -> Verification:
        """The simulator's end-of-run checks on what ran (no records: no chains of records)."""
        return verify(
            chains={},
            record_counts={},
            invocations=self.runtime.invocations(),
            max_generations=3,
            work_started=self.work.started(),
        )

    def step_executions(self, root: str) -> list[InvocationRecord]:
        """The executions of the root's sibling step (chain ``root``, generation 1)."""
        return [
            inv
            for inv in self.runtime.invocations()
            if (inv.event.get(METADATA_KEY) or {}).get("chain_id") == root
        ]


def _container(
    window: Window, config: SiblingsConfig, session: boto3.Session, clock: Clock
) -> Any:
    """A cold start: a manager of its own, and the handler."""
    manager = SiblingsManager(config=config, session=session, clock=clock)

    def handler(event: Any, context: Any) -> dict[str, Any]:
        with window.lock:
            window.managers.setdefault(context.aws_request_id, []).append(id(manager))
        run = Invocation(event, context, shutdown_seconds=0.5, manager=manager)
        if run.duplicate is not None:
            return {"action": "duplicate"}
        window.work.note()
        if run.generation >= 1 or not run.payload.get("start"):
            return {"action": "done"}
        spawn = run.spawn_sibling({"step": 1}, force=True)
        return {"action": "spawned", "request_id": spawn.request_id}

    return window.work.wrap(handler)


@pytest.fixture
def window(request: pytest.FixtureRequest) -> Iterator[Window]:
    """A fresh server and runtime; ``request.param`` is the forced window."""
    kind: FaultKind = request.param
    runtime = LocalLambdaRuntime(retry_delays=(0.05, 0.05), metrics_flush_seconds=0.2)
    faults = WindowFaults(
        runtime,
        crash_rate=1.0 if kind is FaultKind.CRASH_AFTER_INVOKE else 0.0,
        lost_reply_rate=1.0 if kind is FaultKind.LOST_INVOKE_REPLY else 0.0,
        seed=1,
    )
    recorder = CallRecorder()
    server = LocalAwsServer(middleware=compose(recorder.wrap, faults.wrap, runtime.wrap)).start()
    try:
        server.reset()  # moto's state is per process, shared with every other server in it
        session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
        config = SiblingsConfig(
            endpoint_url=server.endpoint_url,
            region_name=LOCAL_REGION,
            # A retried parent takes over its own pending spawn record this soon.
            lease_seconds=0.3,
            invoke_backoff_seconds=0.01,
            invoke_backoff_max_seconds=0.05,
        )
        ensure_table(config, session=session)
        lam = session.client("lambda", endpoint_url=server.endpoint_url)
        create_function(lam, session.client("iam", endpoint_url=server.endpoint_url), FUNCTION)
        env = Window(server, runtime, faults, recorder)
        # The library's leases and back-offs on virtual time that stands still while two
        # executions run: the sibling's claim cannot expire under the duplicate however slow
        # the machine, and a retried parent's wait for its own stale record costs no wall time.
        clock = QuietRuntimeClock(runtime.running)
        runtime.register(  # a long Timeout: none is tested here, and the machine may be loaded
            FUNCTION, factory=lambda: _container(env, config, session, clock), timeout_seconds=60
        )
        runtime.start()
        recorder.reset()
        yield env
    finally:
        runtime.stop()
        server.stop()


@pytest.mark.parametrize("window", [FaultKind.CRASH_AFTER_INVOKE], indirect=True)
def test_a_parent_crashed_between_invoke_and_record_invokes_the_step_twice_and_starts_it_once(
    window: Window,
) -> None:
    root = window.start_chain()

    parent = window.runtime.invocation(root)
    assert parent is not None
    first, retry = parent.attempts
    assert first.outcome == "failed" and str(first.error).startswith("Runtime.ExitError")
    assert retry.outcome == "succeeded" and retry.result["action"] == "spawned"
    # The dead process's sandbox is not handed to anyone: the retry runs in another one.
    first_container, retry_container = window.managers[root]
    assert first_container != retry_container
    others = {container for rid, ids in window.managers.items() if rid != root for container in ids}
    assert first_container not in others
    assert window.faults.injected(FaultKind.CRASH_AFTER_INVOKE) == 1
    assert window.runtime.stats().crashes == 1

    executions = window.step_executions(root)
    assert len(executions) == 2  # the crashed attempt's Invoke, and the retry's
    assert window.recorder.count("lambda", "Invoke") == 2
    assert sorted(inv.result["action"] for inv in executions) == ["done", "duplicate"]
    result = window.verification()
    assert result.ok, result.problems
    assert (result.steps_invoked_twice, result.steps_started_twice) == (1, 0)
    assert result.duplicates_stopped == 1
    assert result.work_starts == 2  # the root (once, over its two attempts) and one sibling


@pytest.mark.parametrize("window", [FaultKind.LOST_INVOKE_REPLY], indirect=True)
def test_a_lost_invoke_reply_invokes_the_step_twice_and_starts_it_once(window: Window) -> None:
    root = window.start_chain()

    parent = window.runtime.invocation(root)
    assert parent is not None and [a.outcome for a in parent.attempts] == ["succeeded"]
    executions = window.step_executions(root)
    assert len(executions) == 2
    assert window.recorder.count("lambda", "Invoke") == 2
    assert window.faults.injected(FaultKind.LOST_INVOKE_REPLY) == 1
    # The parent only heard of the retried Invoke; the lost one ran all the same.
    assert parent.result["request_id"] == executions[1].request_id
    assert sorted(inv.result["action"] for inv in executions) == ["done", "duplicate"]
    result = window.verification()
    assert result.ok, result.problems
    assert (result.steps_invoked_twice, result.steps_started_twice) == (1, 0)
    assert result.duplicates_stopped == 1


@pytest.mark.parametrize("window", [FaultKind.LOST_INVOKE_REPLY], indirect=True)
def test_invokes_of_events_that_are_not_siblings_keep_their_reply(window: Window) -> None:
    lam = boto3.client(  # type: ignore[call-overload]
        "lambda", **window.server.client_kwargs()
    )

    response = lam.invoke(FunctionName=FUNCTION, InvocationType="Event", Payload=json.dumps({}))

    assert response["StatusCode"] == 202
    assert window.runtime.wait_idle(10)
    assert window.faults.injected() == 0
