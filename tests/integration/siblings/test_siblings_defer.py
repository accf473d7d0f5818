"""Defer instead of refuse, end to end on the embedded server: refused for capacity ->
scheduled (a real one-time schedule in the server) -> fired by the local scheduler on its clock
-> the relay spawns the same step -> the sibling continues -> every step runs exactly once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from estimator.clock import ManualClock
from siblings import METADATA_KEY, Invocation, SiblingsManager, SpawnResult, StepRelayed, StoreUnavailable
from siblings.defer import DEFERRED_KEY, defer_delay, schedule_name
from siblings.killswitch import disable_spawning
from siblings.local.runtime.schedules import ScheduleFirer, due_at
from tests.conftest import Aws
from tests.helpers import put_concurrency_metrics, put_lambda_metrics
from tests.integration.siblings.support import FUNCTION, FakeContext, SiblingsEnv

ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


@pytest.fixture
def busy(env: SiblingsEnv) -> SiblingsEnv:
    """A function whose observed peak (6) is over a max_concurrency of 5."""
    env.rule("schedule")
    cloudwatch = env.client("cloudwatch")
    put_lambda_metrics(cloudwatch, FUNCTION, [(60, 2000)] * 5, clock=env.clock)
    put_concurrency_metrics(cloudwatch, FUNCTION, [1, 2, 6, 2, 1], clock=env.clock)
    put_concurrency_metrics(cloudwatch, None, [30, 45, 40, 38, 35], clock=env.clock)
    return env


def role(env: SiblingsEnv) -> str:
    iam = env.client("iam")
    try:
        return str(iam.get_role(RoleName="defer")["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(iam.create_role(RoleName="defer", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"])


def manager(env: SiblingsEnv, limit: int, **extra: Any) -> SiblingsManager:
    """A fresh container; ``limit`` stands for the capacity left (5: busy, 10: free)."""
    return env.manager({
        "max_concurrency": limit, "concurrency_signal": "observed_peak", "defer_when_busy": True,
        "defer_role_arn": role(env), "defer_base_seconds": 60, "max_deferrals": 2, **extra,
    })


class Worker:
    """The handler: counts a cursor, hands over once; records which steps did work."""

    def __init__(self, env: SiblingsEnv, manager: SiblingsManager) -> None:
        self.env, self.manager = env, manager
        self.worked: list[tuple[int, int]] = []
        self.results: list[SpawnResult] = []

    def __call__(self, event: dict[str, Any], request_id: str | None = None) -> Any:
        context = FakeContext(self.env.function_arn, **({"aws_request_id": request_id} if request_id else {}))
        run = Invocation(event, context, shutdown_seconds=1, manager=self.manager)
        if run.duplicate is None:
            self.worked.append((run.generation, run.payload.get("cursor", 0)))
        result = run.spawn_sibling({"cursor": run.payload.get("cursor", 0) + 1})
        self.results.append(result)
        return result


def test_the_delay_doubles_is_capped_and_jittered(env: SiblingsEnv) -> None:
    config = env.config(defer_base_seconds=60, defer_max_seconds=200)
    assert [defer_delay(n, config, lambda: 1.0) for n in (1, 2, 3, 4)] == [60, 120, 200, 200]
    assert defer_delay(2, config, lambda: 0.0) == 60  # never less than half
    assert len(schedule_name("c" * 128, 999_999, 100)) <= 64


def test_a_capacity_refusal_is_deferred_fired_and_continued_exactly_once(busy: SiblingsEnv) -> None:
    env, scheduler = busy, busy.client("scheduler")
    parent = manager(env, 5)
    root = parent.spawn_sibling(env.context(), {"cursor": 1})
    assert root and root.deferred and not root.spawned and root.reason == "deferred"
    assert root.deferred_for == "max_concurrency" and root.deferrals == 1
    assert env.invoke_count() == 0  # nothing invoked: scheduled
    assert parent.stats == {"deferred": 1, "deferred_max_concurrency": 1}
    (summary,) = scheduler.list_schedules()["Schedules"]
    schedule = scheduler.get_schedule(Name=summary["Name"])
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["Target"]["Arn"] == env.function_arn and schedule["Target"]["RoleArn"] == role(env)
    assert due_at(schedule["ScheduleExpression"]) == root.deferred_until
    assert 30 <= root.deferred_until - float(root.chain_started_at or 0) <= 61  # 60 s, jittered
    relay = json.loads(schedule["Target"]["Input"])[DEFERRED_KEY]
    assert relay["deferrals"] == 1 and relay["event"][METADATA_KEY]["generation"] == 1

    worker = Worker(env, manager(env, 10))  # capacity freed meanwhile
    clock = ManualClock(start=root.deferred_until - 1)
    firer = ScheduleFirer(scheduler, lambda arn, event: worker(event), clock)
    assert firer.fire_due() == [] and worker.results == []  # not due yet
    clock.advance(1)
    assert firer.fire_due(redeliver=True) == [summary["Name"]]  # Scheduler: at least once
    assert firer.fire_due() == [summary["Name"]]
    assert scheduler.list_schedules()["Schedules"] == []  # ActionAfterCompletion: DELETE
    first, second = worker.results
    assert first.spawned and first.generation == 1 and first.chain_id == root.chain_id
    assert second.duplicate and second.request_id == first.request_id
    assert worker.worked == []  # the relays did no work of their own
    assert env.invoke_count() == 1
    child = env.invokes.events[-1]
    assert child[METADATA_KEY]["chain_started_at"] == relay["event"][METADATA_KEY]["chain_started_at"]
    worker(child, str(first.request_id))  # the sibling continues the chain
    worker(child, "another-delivery")  # a second execution of the step does no work
    assert worker.worked == [(1, 1)]
    assert worker.results[2].spawned and worker.results[2].generation == 2
    assert env.invoke_count() == 2


def test_still_busy_when_fired_defers_again_up_to_max_deferrals(busy: SiblingsEnv) -> None:
    env, scheduler = busy, busy.client("scheduler")
    root = manager(env, 5).spawn_sibling(env.context())
    worker = Worker(env, manager(env, 5))
    firer = ScheduleFirer(scheduler, lambda arn, event: worker(event), ManualClock(start=4e9))
    firer.fire_due()
    again = worker.results[-1]
    assert again.deferred and again.deferrals == 2 and again.generation == root.generation
    firer.fire_due()
    last = worker.results[-1]
    assert not last and last.reason == "max_concurrency" and not last.deferred  # max_deferrals=2
    assert scheduler.list_schedules()["Schedules"] == [] and env.invoke_count() == 0


@pytest.mark.parametrize("stop", ["kill_switch", "max_generations"])
def test_the_kill_switch_and_the_generation_limit_apply_when_it_fires(busy: SiblingsEnv, stop: str) -> None:
    env, scheduler = busy, busy.client("scheduler")
    first = manager(env, 10).spawn_sibling(env.context())  # generation 1 goes through
    child = FakeContext(env.function_arn, aws_request_id=str(first.request_id))
    deferred = manager(env, 5).spawn_sibling(child, event=env.invokes.events[-1])
    assert deferred.deferred and deferred.generation == 2
    extra: dict[str, Any] = {}
    if stop == "kill_switch":
        disable_spawning(FUNCTION, reason="stop", config=env.config(), session=env.session)
    else:
        extra["max_generations"] = 1  # lowered while the step waited
    worker = Worker(env, manager(env, 10, **extra))
    ScheduleFirer(scheduler, lambda arn, event: worker(event), ManualClock(start=4e9)).fire_due()
    (result,) = worker.results
    assert not result and result.reason == stop and not result.deferred
    assert env.invoke_count() == 1 and worker.worked == []
    assert scheduler.list_schedules()["Schedules"] == []


def test_never_deferred_rule_state_or_no_role(env: SiblingsEnv) -> None:
    env.rule("paused", state="DISABLED")
    result = manager(env, 5).spawn_sibling(env.context())
    assert not result and result.reason == "rules_disabled" and not result.deferred
    assert env.client("scheduler").list_schedules()["Schedules"] == []


def test_without_a_role_or_when_not_asked_the_capacity_refusal_stands(busy: SiblingsEnv) -> None:
    no_role = busy.manager({"max_concurrency": 5, "concurrency_signal": "observed_peak",
                            "defer_when_busy": True})
    assert no_role.spawn_sibling(busy.context()).reason == "max_concurrency"
    per_call = manager(busy, 5).spawn_sibling(busy.context(), defer=False)
    assert not per_call and per_call.reason == "max_concurrency"
    assert busy.client("scheduler").list_schedules()["Schedules"] == []
    asked = manager(busy, 5, defer_when_busy=False).spawn_sibling(busy.context(), defer=True)
    assert asked.deferred


def test_the_module_level_load_payload_relays_through_the_default_manager(
    busy: SiblingsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    import siblings.handler
    from siblings import StepRelayed, load_payload

    manager(busy, 5).spawn_sibling(busy.context())
    (summary,) = busy.client("scheduler").list_schedules()["Schedules"]
    relay = json.loads(busy.client("scheduler").get_schedule(Name=summary["Name"])["Target"]["Input"])
    environment = {
        "SIBLINGS_ENDPOINT_URL": busy.endpoint_url, "SIBLINGS_REGION_NAME": "us-east-1",
        "SIBLINGS_MAX_CONCURRENCY": "10", "SIBLINGS_CONCURRENCY_SIGNAL": "observed_peak",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(siblings.handler, "_default", None)
    with pytest.raises(StepRelayed) as relayed:
        load_payload(relay, FakeContext(busy.function_arn))
    assert relayed.value.result.spawned and busy.invoke_count() == 1


def relay_event(env: SiblingsEnv) -> dict[str, Any]:
    """The input of the one deferral's schedule."""
    (summary,) = env.client("scheduler").list_schedules()["Schedules"]
    schedule = env.client("scheduler").get_schedule(Name=summary["Name"])
    return dict(json.loads(schedule["Target"]["Input"]))


def test_no_deferral_when_the_claim_cannot_be_released(
    busy: SiblingsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = manager(busy, 5)

    def fail(*args: Any, **kwargs: Any) -> bool:
        raise StoreUnavailable("DeleteItem", ValueError("throttled"))

    monkeypatch.setattr(parent.store, "delete", fail)
    result = parent.spawn_sibling(busy.context())
    # The relay would find this execution's pending record and call itself a duplicate.
    assert not result and result.reason == "max_concurrency" and not result.deferred
    assert busy.client("scheduler").list_schedules()["Schedules"] == []


def test_a_guard_error_when_it_fires_fails_the_relay_so_lambda_retries(busy: SiblingsEnv) -> None:
    from siblings import RelayFailed

    manager(busy, 5).spawn_sibling(busy.context())
    relay = relay_event(busy)
    later = manager(busy, 10, on_guard_error="refuse")
    broken = StoreUnavailable("GetItem", ValueError("throttled"))
    later.guards.check_concurrency = lambda info: later.guards.on_error("concurrency", broken)  # type: ignore[method-assign]
    context = FakeContext(busy.function_arn)
    with pytest.raises(RelayFailed, match="guard_error") as failed:
        later.load_payload(relay, context)
    assert failed.value.result.reason == "guard_error" and busy.invoke_count() == 0
    retried = manager(busy, 10)  # Lambda's retry: the same request id, the guard answers
    with pytest.raises(StepRelayed) as relayed:
        retried.load_payload(relay, context)
    assert relayed.value.result.spawned and busy.invoke_count() == 1


def test_a_forced_spawn_stays_forced_when_deferred(aws: Aws, busy: SiblingsEnv) -> None:
    busy.client("events").disable_rule(Name="schedule")  # force is what lets it spawn
    aws.server.account_settings.concurrency_limit = 50  # the account at 45: headroom 5
    deferred = manager(busy, 5, min_account_headroom=5).spawn_sibling(busy.context(), force=True)
    assert deferred.deferred and deferred.deferred_for == "account_headroom"
    relay = relay_event(busy)
    assert relay[DEFERRED_KEY]["forced"] is True
    later = manager(busy, 5, min_account_headroom=4)  # headroom enough when it fires
    with pytest.raises(StepRelayed) as relayed:
        later.load_payload(relay, FakeContext(busy.function_arn))
    assert relayed.value.result.spawned and relayed.value.result.forced, relayed.value.result
    relay[DEFERRED_KEY]["forced"] = "true"  # input: only a JSON boolean switches guards off
    with pytest.raises(ValueError, match="forced"):
        later.load_payload(relay, FakeContext(busy.function_arn))


def test_the_module_level_load_payload_relays_with_the_config_it_is_given(
    busy: SiblingsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    import siblings.handler
    from siblings import load_payload

    manager(busy, 5).spawn_sibling(busy.context())
    relay = relay_event(busy)
    # The environment's manager is still busy: the relay must not be decided against it.
    monkeypatch.setattr(siblings.handler, "_default", manager(busy, 5, max_deferrals=1))
    config = busy.config(max_concurrency=10, concurrency_signal="observed_peak")
    with pytest.raises(StepRelayed) as relayed:
        load_payload(relay, FakeContext(busy.function_arn), config=config, session=busy.session)
    assert relayed.value.result.spawned and busy.invoke_count() == 1


def test_an_invoke_failure_when_it_fires_fails_the_relay_too(busy: SiblingsEnv) -> None:
    from siblings import SpawnFailed
    from tests.integration.siblings.test_siblings_invoke_errors import FailingInvoke

    manager(busy, 5).spawn_sibling(busy.context())
    relay, context = relay_event(busy), FakeContext(busy.function_arn)
    failing = FailingInvoke(busy.client("lambda"), "KMSAccessDeniedException", 502)
    with pytest.raises(SpawnFailed):
        busy.manager(manager(busy, 10).config.as_overrides(), lambda_client=failing).load_payload(
            relay, context
        )
    assert failing.invokes == 1
    with pytest.raises(StepRelayed) as relayed:  # Lambda's retry
        manager(busy, 10).load_payload(relay, context)
    assert relayed.value.result.spawned and busy.invoke_count() == 1
