"""The local Lambda runtime, driven over HTTP through a real moto server with boto3."""

# The local Lambda runtime runs handlers in real threads against real deadlines: remaining time,
# timeouts and overlapping executions are what these tests check, so time here is real. Each
# time.sleep below is a handler's work (a few overrun a deadline on purpose) or one step of a
# poll for a condition bounded by a deadline; none is "sleep and hope".

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from siblings.local.calls import CallRecorder
from siblings.local.context import LambdaContext
from siblings.local.middleware import compose
from siblings.local.provision import create_function
from siblings.local.runtime import LocalLambdaRuntime, parse_function_ref
from siblings.local.server import LocalAwsServer, WsgiApp

NO_RETRIES = BotoConfig(retries={"max_attempts": 1, "mode": "standard"})


@dataclass
class Local:
    """A moto server with the runtime in its middleware, and clients on it."""

    server: LocalAwsServer
    runtime: LocalLambdaRuntime
    recorder: CallRecorder

    def client(self, service: str, config: BotoConfig | None = None) -> Any:
        """A boto3 client on the server."""
        return boto3.client(  # type: ignore[call-overload]
            service, config=config, **self.server.client_kwargs()
        )

    def function(self, name: str = "worker", **kwargs: Any) -> str:
        """Create a function in moto; returns its ARN."""
        return create_function(self.client("lambda"), self.client("iam"), name, **kwargs)


class _Switch:
    """Middleware whose inner layer is swapped per test: one server, a fresh runtime each."""

    def __init__(self) -> None:
        self._inner: WsgiApp | None = None
        self._current: WsgiApp | None = None

    def wrap(self, app: WsgiApp) -> WsgiApp:
        self._inner = self._current = app
        return lambda environ, start_response: self._current(environ, start_response)  # type: ignore[misc]

    def use(self, runtime: LocalLambdaRuntime) -> None:
        assert self._inner is not None
        self._current = runtime.wrap(self._inner)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[LocalAwsServer, CallRecorder, _Switch]]:
    """One server for the module, with a recorder and a runtime switch in front of moto."""
    recorder = CallRecorder()
    switch = _Switch()
    server = LocalAwsServer(middleware=compose(recorder.wrap, switch.wrap)).start()
    try:
        yield server, recorder, switch
    finally:
        server.stop()


@pytest.fixture
def local(server: tuple[LocalAwsServer, CallRecorder, _Switch]) -> Iterator[Local]:
    """A fresh runtime and an empty moto per test (fast retries and metric flushes)."""
    aws_server, recorder, switch = server
    aws_server.reset()  # moto's state is per process, shared with every other server in it
    recorder.reset()
    runtime = LocalLambdaRuntime(retry_delays=(0.05, 0.05), metrics_flush_seconds=0.2)
    switch.use(runtime)
    env = Local(aws_server, runtime, recorder)
    runtime.start(env.client("cloudwatch"))
    try:
        yield env
    finally:
        runtime.stop()


def test_parse_function_ref_accepts_every_form_invoke_does() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    assert parse_function_ref("fn") == ("fn", None)
    assert parse_function_ref("fn", "live") == ("fn", "live")
    assert parse_function_ref("fn:3") == ("fn", "3")
    assert parse_function_ref(arn) == ("fn", None)
    assert parse_function_ref(arn + ":live", "other") == ("fn", "live")
    assert parse_function_ref("123456789012:function:fn:$LATEST") == ("fn", "$LATEST")


def test_async_invoke_answers_202_and_runs_the_handler_with_a_lambda_context(local: Local) -> None:
    arn = local.function(timeout_seconds=4, memory_mb=256)
    seen: list[tuple[Any, LambdaContext, int, int]] = []
    done = threading.Event()

    def handler(event: Any, context: LambdaContext) -> str:
        before = context.get_remaining_time_in_millis()
        time.sleep(0.2)  # handler work: the remaining time must go down while it runs
        seen.append((event, context, before, context.get_remaining_time_in_millis()))
        done.set()
        return "ok"

    local.runtime.register("worker", handler)
    response = local.client("lambda").invoke(
        FunctionName="worker", InvocationType="Event", Payload=json.dumps({"cursor": 7})
    )

    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    assert done.wait(5)
    event, context, before, after = seen[0]
    assert event == {"cursor": 7}
    assert context.aws_request_id == response["ResponseMetadata"]["RequestId"]
    assert context.function_name == "worker"
    assert context.invoked_function_arn == arn  # unqualified call, unqualified ARN
    assert context.memory_limit_in_mb == 256
    assert 2500 < before <= 4000  # the function's Timeout (4 s) is the deadline
    assert before - after >= 150  # a real clock runs down during the sleep
    assert local.runtime.wait_idle(5)
    invocation = local.runtime.invocation(context.aws_request_id)
    assert invocation is not None and invocation.status == "succeeded"
    assert invocation.result == "ok"


def test_invoked_function_arn_keeps_the_qualifier_used(local: Local) -> None:
    arn = local.function()
    lam = local.client("lambda")
    version = lam.publish_version(FunctionName="worker")["Version"]
    lam.create_alias(FunctionName="worker", Name="live", FunctionVersion=version)
    arns: list[str] = []
    local.runtime.register("worker", lambda event, context: arns.append(context.invoked_function_arn))

    lam.invoke(FunctionName=f"{arn}:live", InvocationType="Event", Payload=b"{}")
    lam.invoke(FunctionName="worker", Qualifier=version, InvocationType="Event", Payload=b"{}")
    assert local.runtime.wait_idle(5)

    assert sorted(arns) == sorted([f"{arn}:live", f"{arn}:{version}"])


def test_a_failing_async_invocation_is_retried_twice_with_the_same_request_id(local: Local) -> None:
    local.function()
    calls: list[tuple[str, Any]] = []

    def handler(event: Any, context: LambdaContext) -> None:
        calls.append((context.aws_request_id, dict(event)))
        event["mutated"] = True  # each attempt must still get the original event
        raise RuntimeError("crash")

    local.runtime.register("worker", handler)
    response = local.client("lambda").invoke(
        FunctionName="worker", InvocationType="Event", Payload=b'{"n": 1}'
    )
    assert local.runtime.wait_idle(5)

    request_id = response["ResponseMetadata"]["RequestId"]
    assert calls == [(request_id, {"n": 1})] * 3
    invocation = local.runtime.invocation(request_id)
    assert invocation is not None and invocation.status == "failed"
    assert [a.outcome for a in invocation.attempts] == ["failed"] * 3
    assert "RuntimeError: crash" in (invocation.attempts[0].error or "")
    stats = local.runtime.stats()
    assert (stats.attempts, stats.retries, stats.errors, stats.failed) == (3, 2, 3, 1)


def test_a_retry_that_succeeds_ends_the_invocation(local: Local) -> None:
    local.function()
    attempts: list[int] = []

    def handler(event: Any, context: LambdaContext) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first try fails")
        return "second try"

    local.runtime.register("worker", handler)
    local.client("lambda").invoke(FunctionName="worker", InvocationType="Event", Payload=b"{}")
    assert local.runtime.wait_idle(5)

    [invocation] = local.runtime.invocations()
    assert [a.outcome for a in invocation.attempts] == ["failed", "succeeded"]
    assert invocation.status == "succeeded" and invocation.result == "second try"


def test_an_attempt_past_its_deadline_times_out_and_is_retried(local: Local) -> None:
    local.function()
    started: list[float] = []
    release = threading.Event()

    def handler(event: Any, context: LambdaContext) -> str:
        started.append(time.monotonic())
        if len(started) == 1:
            release.wait(5)  # overruns the 0.3 s deadline, until the test has seen the retry
        return "done"

    local.runtime.register("worker", handler, timeout_seconds=0.3)
    local.client("lambda").invoke(FunctionName="worker", InvocationType="Event", Payload=b"{}")
    assert local.runtime.wait_idle(5)
    release.set()

    [invocation] = local.runtime.invocations()
    assert [a.outcome for a in invocation.attempts] == ["timed_out", "succeeded"]
    assert "timed out" in (invocation.attempts[0].error or "")
    assert 250 <= invocation.attempts[0].duration_ms < 2000  # ended at the deadline, not released


def test_dry_run_answers_204_and_runs_nothing(local: Local) -> None:
    local.function()
    calls: list[Any] = []
    local.runtime.register("worker", lambda event, context: calls.append(event))

    response = local.client("lambda").invoke(
        FunctionName="worker", InvocationType="DryRun", Payload=b"{}"
    )
    time.sleep(0.2)  # nothing may run: an absence has no event to wait for

    assert response["StatusCode"] == 204
    assert calls == []
    assert local.runtime.invocations() == []
    assert local.runtime.stats().dry_runs == 1


def test_unknown_function_or_qualifier_is_not_found(local: Local) -> None:
    local.function()
    local.runtime.register("worker", lambda event, context: None)
    local.runtime.register("ghost", lambda event, context: None)  # registered, never created
    lam = local.client("lambda")

    for kwargs in ({"FunctionName": "ghost"}, {"FunctionName": "worker", "Qualifier": "nope"}):
        with pytest.raises(ClientError) as caught:
            lam.invoke(InvocationType="Event", Payload=b"{}", **kwargs)
        assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert local.runtime.invocations() == []


def test_bad_payloads_are_refused_like_lambda(local: Local) -> None:
    local.function()
    local.runtime.register("worker", lambda event, context: None)
    lam = local.client("lambda", NO_RETRIES)

    with pytest.raises(ClientError) as not_json:
        lam.invoke(FunctionName="worker", InvocationType="Event", Payload=b"{not json")
    with pytest.raises(ClientError) as too_large:
        lam.invoke(
            FunctionName="worker",
            InvocationType="Event",
            Payload=json.dumps({"blob": "x" * 1_100_000}),
        )

    assert not_json.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert too_large.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert local.runtime.invocations() == []


def test_synchronous_invoke_returns_the_result_or_the_function_error(local: Local) -> None:
    local.function()

    def handler(event: Any, context: LambdaContext) -> Any:
        if event.get("fail"):
            raise KeyError("missing")
        return {"echo": event}

    local.runtime.register("worker", handler)
    lam = local.client("lambda")

    ok = lam.invoke(FunctionName="worker", Payload=b'{"a": 1}')
    failed = lam.invoke(FunctionName="worker", Payload=b'{"fail": true}')

    assert ok["StatusCode"] == 200 and "FunctionError" not in ok
    assert json.loads(ok["Payload"].read()) == {"echo": {"a": 1}}
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "KeyError"
    assert local.runtime.stats().retries == 0  # synchronous invocations are never retried


def test_finished_invocations_are_published_to_cloudwatch_in_batches(local: Local) -> None:
    local.function()

    def handler(event: Any, context: LambdaContext) -> None:
        time.sleep(0.05)
        if event.get("fail"):
            raise RuntimeError("boom")

    local.runtime.register("worker", handler, timeout_seconds=2)
    lam = local.client("lambda")
    for _ in range(12):
        lam.invoke(FunctionName="worker", InvocationType="Event", Payload=b"{}")
    lam.invoke(FunctionName="worker", InvocationType="Event", Payload=b'{"fail": 1}')
    assert local.runtime.wait_idle(10)
    assert local.runtime.metrics is not None
    local.runtime.metrics.flush()

    now = datetime.now(UTC)
    dimensions = [{"Name": "FunctionName", "Value": "worker"}]

    def query(metric: str, stat: str) -> dict[str, Any]:
        return {
            "Id": metric.lower(),
            "MetricStat": {
                "Metric": {"Namespace": "AWS/Lambda", "MetricName": metric, "Dimensions": dimensions},
                "Period": 60,
                "Stat": stat,
            },
        }

    result = local.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            query("Invocations", "Sum"),
            query("Duration", "Average"),
            query("Errors", "Sum"),
        ],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
    )
    values = {r["Id"]: sum(r["Values"]) for r in result["MetricDataResults"]}
    average = {r["Id"]: r["Values"] for r in result["MetricDataResults"]}["duration"]

    assert values["invocations"] == 12 + 3  # the failing event ran three times
    assert values["errors"] == 3
    assert all(40 <= value <= 1000 for value in average)
    put_calls = local.recorder.count("monitoring", "PutMetricData")
    assert 1 <= put_calls < 15  # batched, not one call per invocation


def test_a_held_runtime_finishes_what_runs_and_launches_nothing_more(local: Local) -> None:
    # What a run cut by its timeout does: the queue is not drained (its chains would keep
    # spawning), the running execution ends, and wait_idle returns once it has.
    local.function()
    local.client("lambda").put_function_concurrency(
        FunctionName="worker", ReservedConcurrentExecutions=1
    )
    inside, release = threading.Event(), threading.Event()

    def handler(event: Any, context: LambdaContext) -> int:
        inside.set()
        release.wait(5)
        return int(event["n"])

    local.runtime.register("worker", handler, timeout_seconds=8)
    for n in range(3):
        local.runtime.invoke_async("worker", {"n": n})
    assert inside.wait(5)
    local.runtime.hold()
    assert not local.runtime.wait_idle(0.05)  # one still runs
    release.set()

    assert local.runtime.wait_idle(5)
    assert local.runtime.stats().succeeded == 1
    assert local.runtime.stats().queued == 2  # never launched, and said so


def test_reserved_concurrency_queues_async_events_and_refuses_sync_calls(local: Local) -> None:
    local.function()
    lam = local.client("lambda", NO_RETRIES)
    lam.put_function_concurrency(FunctionName="worker", ReservedConcurrentExecutions=2)
    lock = threading.Lock()
    release = threading.Event()
    running = [0]
    peak = [0]

    def handler(event: Any, context: LambdaContext) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(5)
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    local.runtime.register("worker", handler, timeout_seconds=8)
    statuses = [
        lam.invoke(FunctionName="worker", InvocationType="Event", Payload=b"{}")["StatusCode"]
        for _ in range(6)
    ]
    deadline = time.monotonic() + 5
    while local.runtime.running("worker") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(ClientError) as throttled:
        lam.invoke(FunctionName="worker", Payload=b"{}")  # synchronous, while 2 are running
    queued = local.runtime.stats().queued
    release.set()
    assert local.runtime.wait_idle(10)

    assert statuses == [202] * 6  # async events are accepted and wait, as in Lambda
    assert queued == 4
    assert peak[0] == 2
    assert local.runtime.stats().succeeded == 6
    assert local.runtime.stats().throttled >= 4
    error = throttled.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["Error"]["Code"] == "TooManyRequestsException"
    assert error["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert max(running for _, running in local.runtime.timeline()) == 2


def test_registration_cap_applies_when_the_server_has_none(local: Local) -> None:
    local.function()
    peak = [0]
    lock = threading.Lock()
    running = [0]

    def handler(event: Any, context: LambdaContext) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.15)
        with lock:
            running[0] -= 1

    local.runtime.register("worker", handler, reserved_concurrency=1)
    lam = local.client("lambda")
    for _ in range(3):
        lam.invoke(FunctionName="worker", InvocationType="Event", Payload=b"{}")
    assert local.runtime.wait_idle(10)

    assert peak[0] == 1 and local.runtime.stats().succeeded == 3


def test_a_handler_that_invokes_itself_with_boto3_forms_a_chain(local: Local) -> None:
    local.function(timeout_seconds=60)  # no timeout on a loaded machine (none is tested here)
    lam = local.client("lambda")
    request_ids: list[str] = []

    def handler(event: Any, context: LambdaContext) -> int:
        request_ids.append(context.aws_request_id)
        left = int(event["left"])
        if left > 0:
            lam.invoke(
                FunctionName=context.invoked_function_arn,
                InvocationType="Event",
                Payload=json.dumps({"left": left - 1}),
            )
        return left

    local.runtime.register("worker", handler)
    lam.invoke(FunctionName="worker", InvocationType="Event", Payload=b'{"left": 4}')
    # Each child is queued before its parent returns: the runtime is idle only at the chain's end.
    assert local.runtime.wait_idle(60)

    assert len(request_ids) == len(set(request_ids)) == 5
    assert sorted(inv.result for inv in local.runtime.invocations()) == [0, 1, 2, 3, 4]
    assert local.recorder.count("lambda", "Invoke") == 5


def test_events_from_inside_aws_skip_the_invoke_api(local: Local) -> None:
    local.function()
    events: list[Any] = []
    local.runtime.register("worker", lambda event, context: events.append(event))

    request_id = local.runtime.invoke_async("worker", {"source": "aws.events"})
    assert local.runtime.wait_idle(5)

    assert events == [{"source": "aws.events"}]
    assert local.runtime.invocation(request_id) is not None
    assert local.recorder.count("lambda", "Invoke") == 0
    with pytest.raises(LookupError):
        local.runtime.invoke_async("unregistered", {})



def test_each_concurrent_execution_gets_its_own_container_reused_when_warm(local: Local) -> None:
    local.function()
    built: list[int] = []
    release = threading.Event()

    def factory() -> Any:
        time.sleep(0.2)  # the init phase: not part of the handler's deadline (a real wait: init_ms)
        container = len(built)
        built.append(container)

        def handler(event: Any, context: LambdaContext) -> tuple[int, int]:
            if event.get("wait"):
                release.wait(5)
            return container, context.get_remaining_time_in_millis()

        return handler

    local.runtime.register("worker", factory=factory, timeout_seconds=1.0)
    lam = local.client("lambda")
    for _ in range(2):  # two at once: two cold starts
        lam.invoke(FunctionName="worker", InvocationType="Event", Payload=b'{"wait": true}')
    deadline = time.monotonic() + 5
    while len(built) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    assert local.runtime.wait_idle(5)
    lam.invoke(FunctionName="worker", InvocationType="Event", Payload=b"{}")  # warm
    assert local.runtime.wait_idle(5)

    results = [inv.result for inv in local.runtime.invocations()]
    assert sorted(container for container, _ in results[:2]) == [0, 1]
    assert results[2][0] in (0, 1) and len(built) == 2
    assert local.runtime.stats().cold_starts == 2
    assert all(remaining > 500 for _, remaining in results[2:])  # warm: no init to pay
    [first] = [inv for inv in local.runtime.invocations() if inv.result[0] == 0][:1]
    assert first.attempts[0].init_ms >= 150


def test_a_timed_out_container_is_not_reused(local: Local) -> None:
    local.function()
    built: list[int] = []
    release = threading.Event()

    def factory() -> Any:
        built.append(1)

        def handler(event: Any, context: LambdaContext) -> None:
            if len(built) == 1:
                release.wait(5)  # the first container overruns its 0.2 s deadline

        return handler

    local.runtime.register("worker", factory=factory, timeout_seconds=0.2)
    local.client("lambda").invoke(FunctionName="worker", InvocationType="Event", Payload=b"{}")
    assert local.runtime.wait_idle(5)
    release.set()

    [invocation] = local.runtime.invocations()
    assert [a.outcome for a in invocation.attempts] == ["timed_out", "succeeded"]
    assert len(built) == 2  # the retry ran in a fresh container


def test_a_crashed_execution_is_retried_with_its_request_id_in_a_new_container(
    local: Local,
) -> None:
    local.function()
    built: list[int] = []
    inside = threading.Event()
    release = threading.Event()

    def factory() -> Any:
        container = len(built)
        built.append(container)

        def handler(event: Any, context: LambdaContext) -> int:
            if container == 0:
                inside.set()
                release.wait(5)  # the dead process's thread: it cannot be stopped
            return container

        return handler

    local.runtime.register("worker", factory=factory, timeout_seconds=5)
    request_id = local.runtime.invoke_async("worker", {})
    assert inside.wait(5)
    assert not local.runtime.crash("no-such-request", "nothing runs under this id")

    assert local.runtime.crash(request_id, "killed by the test")
    assert local.runtime.wait_idle(5)  # the retry ran while the first thread still hangs
    release.set()

    invocation = local.runtime.invocation(request_id)
    assert invocation is not None and invocation.status == "succeeded"
    first, retry = invocation.attempts
    assert (first.outcome, first.error) == ("failed", "Runtime.ExitError: killed by the test")
    assert retry.result == 1  # a new container: the dead one is never reused
    stats = local.runtime.stats()
    assert (stats.crashes, stats.retries, stats.cold_starts) == (1, 1, 2)
    deadline = time.monotonic() + 5
    while local.runtime.stats().late_finishes < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert local.runtime.stats().late_finishes == 1  # what the dead thread returned is dropped
    assert invocation.result == 1


def test_claimed_account_concurrency_counts_idle_reserved_concurrency(local: Local) -> None:
    # Lambda's ClaimedAccountConcurrency: unreserved executions in use plus every reserved
    # allocation, idle or not (docs.aws.amazon.com/lambda/latest/dg/monitoring-concurrency.html).
    local.function()
    local.function("reserved-idle")
    local.runtime.register("worker", lambda event, context: None, timeout_seconds=2)
    local.runtime.register(
        "reserved-idle", lambda event, context: None, timeout_seconds=2, reserved_concurrency=7
    )
    local.client("lambda").invoke(FunctionName="worker", Payload=b"{}")
    assert local.runtime.metrics is not None
    local.runtime.metrics.flush()
    now = datetime.now(UTC)
    result = local.client("cloudwatch").get_metric_data(
        MetricDataQueries=[{
            "Id": "claimed",
            "MetricStat": {
                "Metric": {"Namespace": "AWS/Lambda", "MetricName": "ClaimedAccountConcurrency",
                           "Dimensions": []},
                "Period": 60,
                "Stat": "Maximum",
            },
        }],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
    )
    assert max(result["MetricDataResults"][0]["Values"]) == 1 + 7


def test_a_function_with_a_log_format_gets_its_output_in_its_log_stream(local: Local) -> None:
    local.function()

    def handler(event: Any, context: LambdaContext) -> None:
        print("plain")
        logging.getLogger("tests.runtime").warning("record")

    local.runtime.register("worker", handler, timeout_seconds=2, log_format="JSON")
    local.client("lambda").invoke(FunctionName="worker", Payload=b"{}")
    (invocation,) = local.runtime.invocations()
    events = local.runtime.logs.events("worker")
    assert events[0] == "plain"
    record = json.loads(events[1])
    assert (record["message"], record["requestId"]) == ("record", invocation.request_id)
