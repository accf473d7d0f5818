"""EventBridge Scheduler schedules named in ``trigger_schedules`` count as triggers, like rules."""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest

from siblings.config import SiblingsConfig
from siblings.iam import RUNTIME_ACTIONS, TRIGGER_SCHEDULE_ACTIONS, iam_action, schedule_arn
from tests.integration.siblings.support import REGION, SiblingsEnv

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/scheduler"


def _schedule(env: SiblingsEnv, name: str, state: str = "ENABLED", target: str | None = None,
              group: str = "jobs") -> None:
    scheduler = env.client("scheduler")
    if group != "default":
        with contextlib.suppress(scheduler.exceptions.ConflictException):
            scheduler.create_schedule_group(Name=group)
    scheduler.create_schedule(
        Name=name,
        GroupName=group,
        ScheduleExpression="rate(5 minutes)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": target or env.function_arn, "RoleArn": ROLE},
        State=state,
    )


def test_an_enabled_named_schedule_is_a_trigger(env: SiblingsEnv) -> None:
    _schedule(env, "nightly")
    result = env.manager({"trigger_schedules": ["jobs/nightly"]}).spawn_sibling(env.context(), {"c": 1})
    assert result.spawned, result
    assert result.guards["eventbridge"]["schedule"] == "jobs/nightly"
    assert env.recorder.count("scheduler", "GetSchedule") == 1


def test_the_lookup_needs_get_schedule_on_the_named_schedule_only(env: SiblingsEnv) -> None:
    seen: list[tuple[str, str]] = []

    def listener(call: tuple[str, str], environ: dict[str, Any], body: bytes) -> None:
        if call[0] == "scheduler":
            group = parse_qs(environ.get("QUERY_STRING", "")).get("groupName", ["default"])[0]
            name = unquote(environ["PATH_INFO"].rsplit("/", 1)[-1])
            seen.append((iam_action(*call), schedule_arn(REGION, ACCOUNT, f"{group}/{name}")))

    _schedule(env, "nightly")
    env.recorder.listeners.append(listener)
    assert env.manager({"trigger_schedules": ["jobs/nightly"]}).spawn_sibling(env.context(), {}).spawned
    assert seen == [("scheduler:GetSchedule", f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/jobs/nightly")]
    assert {action for action, _ in seen} == TRIGGER_SCHEDULE_ACTIONS
    assert not TRIGGER_SCHEDULE_ACTIONS & RUNTIME_ACTIONS


def test_the_schedule_state_is_cached_in_both_tiers(env: SiblingsEnv) -> None:
    _schedule(env, "nightly")
    for _ in range(3):  # three "containers", each with its own memory tier
        manager = env.manager({"trigger_schedules": ["jobs/nightly"]})
        assert manager.spawn_sibling(env.context(), {"c": 1}).spawned
    assert env.recorder.count("scheduler", "GetSchedule") == 1


def test_a_disabled_schedule_is_refused_with_a_message_about_rules_and_schedules(
    env: SiblingsEnv,
) -> None:
    _schedule(env, "nightly", state="DISABLED")
    manager = env.manager({"trigger_schedules": "jobs/nightly,jobs/missing"})
    result = manager.spawn_sibling(env.context(), {"c": 1})
    assert not result.spawned and result.reason == "rules_disabled"
    assert "no enabled EventBridge rule targets" in result.detail
    assert "jobs/nightly: DISABLED" in result.detail and "jobs/missing: not found" in result.detail
    assert env.invoke_count() == 0


def test_a_schedule_not_named_does_not_count_and_the_message_says_how(env: SiblingsEnv) -> None:
    _schedule(env, "nightly")
    result = env.manager().spawn_sibling(env.context(), {"c": 1})
    assert result.reason == "rules_disabled"
    assert "EventBridge rule" in result.detail and "trigger_schedules" in result.detail
    assert env.recorder.count("scheduler", "GetSchedule") == 0


def test_a_schedule_of_another_function_does_not_count(env: SiblingsEnv) -> None:
    other = env.function_arn.replace(":worker", ":other")
    _schedule(env, "nightly", target=other)
    result = env.manager({"trigger_schedules": ["jobs/nightly"]}).spawn_sibling(env.context(), {"c": 1})
    assert result.reason == "rules_disabled" and f"targets {other}" in result.detail


def test_an_enabled_rule_needs_no_schedule_lookup(env: SiblingsEnv) -> None:
    env.rule("every-minute")
    _schedule(env, "nightly", state="DISABLED")
    result = env.manager({"trigger_schedules": ["jobs/nightly"]}).spawn_sibling(env.context(), {"c": 1})
    assert result.spawned and result.guards["eventbridge"]["rule"] == "every-minute"
    assert env.recorder.count("scheduler", "GetSchedule") == 0


def test_trigger_schedules_from_the_environment() -> None:
    config = SiblingsConfig.from_env({"SIBLINGS_TRIGGER_SCHEDULES": "jobs/nightly, daily,jobs/nightly"})
    assert config.trigger_schedules == ("jobs/nightly", "default/daily")
    assert SiblingsConfig.from_env({}).trigger_schedules == ()
    with pytest.raises(ValueError, match="trigger_schedules"):
        SiblingsConfig(trigger_schedules=("a/b/c d",))
    with pytest.raises(TypeError, match="trigger_schedules"):
        SiblingsConfig(trigger_schedules="jobs/nightly")  # type: ignore[arg-type]
