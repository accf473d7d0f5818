"""Keys belong to one function in one account and Region (issue 18.2): an event forwarded to
another function cannot claim this one's step, a function of the same name elsewhere (a global
or shared table) does not act on this one's items, and an ARN of another account or Region
than the clients' is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from estimator.identity import ForeignFunction, forget_homes
from estimator.validation import parse_function
from siblings import disable_spawning, load_payload, spawning_status
from siblings.cli import main
from siblings.keys import (
    chains_key,
    invocation_key,
    kill_key,
    recursion_key,
    rule_names_key,
    rules_key,
    run_key,
    schedule_key,
    spawn_key,
)
from tests.fault.siblings.conftest import FaultInjector
from tests.integration.siblings.support import FUNCTION, FakeContext, SiblingsEnv

Faulty = tuple[SiblingsEnv, FaultInjector]
HERE = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"
OTHER_REGION = f"arn:aws:lambda:eu-west-1:123456789012:function:{FUNCTION}"
OTHER_ACCOUNT = f"arn:aws:lambda:us-east-1:210987654321:function:{FUNCTION}"
FORWARDED_TO = "arn:aws:lambda:us-east-1:123456789012:function:another-function"

KEYS: list[Callable[[Any], str]] = [
    rules_key, rule_names_key, kill_key, recursion_key,
    lambda ref: spawn_key(ref.scope, "chain", 2),
    lambda ref: run_key(ref.scope, "chain", 2),
    lambda ref: invocation_key(ref.scope, "request"),
    lambda ref: chains_key(ref.scope, "2026-12-03"),
]


@pytest.mark.parametrize("key_of", KEYS)
@pytest.mark.parametrize("elsewhere", [OTHER_REGION, OTHER_ACCOUNT, FORWARDED_TO])
def test_every_key_names_the_account_region_and_function(
    key_of: Callable[[Any], str], elsewhere: str
) -> None:
    here, there = parse_function(HERE), parse_function(elsewhere)
    assert key_of(here) != key_of(there)
    assert here.scope in key_of(here)


def test_a_schedule_is_named_in_its_account_and_region() -> None:
    """A named schedule's state is the schedule's: shared by the functions of one account and
    Region, apart from another's."""
    key = schedule_key(parse_function(HERE), "default/nightly")
    assert key == schedule_key(parse_function(FORWARDED_TO), "default/nightly")
    assert key != schedule_key(parse_function(OTHER_REGION), "default/nightly")
    assert key != schedule_key(parse_function(OTHER_ACCOUNT), "default/nightly")


def test_a_forwarded_event_cannot_claim_the_real_siblings_step(faulty: Faulty) -> None:
    env, _ = faulty
    env.rule("schedule")
    parent = env.manager()
    assert parent.spawn_sibling(env.context(), {"cursor": 1})
    event = env.invokes.events[-1]
    config = env.config()
    # Someone forwards the sibling's event to another function, which reads it first.
    assert load_payload(event, FakeContext(FORWARDED_TO), config=config, session=env.session) == {"cursor": 1}
    # The real sibling still runs its step (it was told DuplicateSibling before).
    sibling = env.manager()
    assert sibling.load_payload(event, env.context()) == {"cursor": 1}
    assert sibling.spawn_sibling(env.context(), {"cursor": 2}, event=event).spawned


def test_a_kill_switch_of_the_same_name_in_another_region_does_not_apply(faulty: Faulty) -> None:
    env, _ = faulty
    env.rule("schedule")
    manager = env.manager()
    # A global table: the eu-west-1 deployment disables its own function of the same name.
    elsewhere = env.config(region_name="eu-west-1")
    disable_spawning(OTHER_REGION, reason="eu only", config=elsewhere, store=manager.store)
    assert manager.spawn_sibling(env.context(), event={}).reason == "spawned"
    disable_spawning(FUNCTION, reason="here", config=env.config(), store=manager.store)
    assert manager.spawn_sibling(env.context(), event={}).reason == "kill_switch"


@pytest.mark.parametrize("arn", [OTHER_REGION, OTHER_ACCOUNT])
def test_an_arn_of_another_account_or_region_is_refused(faulty: Faulty, arn: str) -> None:
    env, _ = faulty
    env.rule("schedule")
    manager = env.manager()
    with pytest.raises(ForeignFunction, match="account 123456789012, Region us-east-1"):
        manager.spawn_sibling(FakeContext(arn), {"cursor": 1})
    with pytest.raises(ValueError, match="clients act in"):
        manager.any_events_rules_enabled(FakeContext(arn))
    assert manager.spawn_sibling(env.context(), event={}).spawned
    event = env.invokes.events[-1]
    with pytest.raises(ValueError, match="clients act in"):
        load_payload(event, FakeContext(arn), config=env.config(), session=env.session)
    assert env.invoke_count() == 1


def test_without_account_id_sts_is_asked_once_per_process(faulty: Faulty) -> None:
    env, _ = faulty
    env.rule("schedule")
    forget_homes()
    config = env.config(account_id=None)
    for _ in range(3):  # three containers' managers, one process
        assert env.manager(config=config).spawn_sibling(env.context(), event={}).spawned
    assert env.recorder.count("sts", "GetCallerIdentity") == 1
    with pytest.raises(ForeignFunction):
        env.manager(config=config).spawn_sibling(FakeContext(OTHER_ACCOUNT), event={})


@pytest.mark.parametrize("policy", ["refuse", "allow"])
def test_an_unknown_account_follows_on_guard_error(faulty: Faulty, policy: str) -> None:
    env, faults = faulty
    env.rule("schedule")
    forget_homes()
    faults.fail("sts", None, 503, "ServiceUnavailable")
    manager = env.manager({"on_guard_error": policy}, config=env.config(account_id=None))
    result = manager.spawn_sibling(env.context(), event={})
    if policy == "refuse":
        assert result.reason == "guard_error" and "account" in result.detail
        assert env.invoke_count() == 0
    else:
        assert result.spawned
    faults.clear()
    if policy == "refuse":  # a failure is remembered a few seconds: one timeout per back-off
        assert manager.spawn_sibling(env.context(), event={}).reason == "guard_error"
    env.clock.advance(6.0)
    assert manager.spawn_sibling(env.context(), event={}).spawned  # then asked again
    assert env.recorder.count("sts", "GetCallerIdentity") >= 2


def test_status_reports_a_kill_switch_of_an_older_release_and_disable_leaves_it_to_02(
    faulty: Faulty, capsys: pytest.CaptureFixture[str]
) -> None:
    env, _ = faulty
    env.rule("schedule")
    manager = env.manager()
    now = env.clock.now()
    old = {"disabled": True, "reason": "runaway", "changed_at": now, "changed_by": "ops"}
    manager.store.put(f"kill#{FUNCTION}", old, now + 1e6, now + 1e6)  # as 0.2 wrote it
    # The old item no longer applies (the upgrade note says so)...
    assert manager.spawn_sibling(env.context(), event={}).spawned
    config = env.config()
    status = spawning_status(FUNCTION, config=config, store=manager.store)
    assert status.legacy_kill is not None and status.legacy_kill.disabled
    assert not status.kill.disabled
    endpoint = ["--endpoint-url", env.endpoint_url, "--region", "us-east-1"]
    assert main(["status", FUNCTION, *endpoint]) == 0
    assert f"siblings disable {FUNCTION}` to carry it over" in capsys.readouterr().out
    # ...`siblings disable` writes 0.3's switch and leaves 0.2's to the versions still on 0.2.
    assert main(["disable", FUNCTION, "--reason", "runaway", *endpoint]) == 0
    legacy = manager.store.get(f"kill#{FUNCTION}")
    assert legacy is not None and legacy.value is not None and legacy.value["disabled"] is True
    assert manager.spawn_sibling(env.context(), event={}).reason == "kill_switch"


def test_in_its_own_lambda_execution_the_arn_names_the_account_with_no_call(
    faulty: Faulty, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A function in a VPC without an STS endpoint keeps spawning: the execution role's account
    is the function's (a role is only passed to functions of its own account)."""
    env, _ = faulty
    env.rule("schedule")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    config = env.config(account_id=None, max_concurrency=50)
    manager = env.manager(config=config, session=None)  # the environment's credentials
    assert manager.spawn_sibling(env.context(), event={}).spawned
    assert env.recorder.count("sts", "GetCallerIdentity") == 0
    # Another function's ARN is not this execution's: STS says whose the credentials are.
    foreign = "arn:aws:lambda:us-east-1:210987654321:function:another-function"
    with pytest.raises(ForeignFunction):
        env.manager(config=config, session=None).spawn_sibling(FakeContext(foreign), event={})
    assert env.recorder.count("sts", "GetCallerIdentity") == 1


def test_with_sts_down_allow_still_spawns_and_auto_spawning_looks_nothing_up(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    faults.fail("sts", None, 503, "ServiceUnavailable")
    config = env.config(account_id=None, max_concurrency=50, on_guard_error="allow")
    manager = env.manager(config=config)
    result = manager.spawn_sibling(env.context(), event={})
    assert result.spawned, result  # the concurrency guard's own error is allowed, not raised
    assert manager.stats["guard_error_allowed"] >= 2  # the account's, and the estimate's
    auto = env.manager(config=env.config(account_id=None, auto_spawning=True))
    env.recorder.reset()
    assert auto.any_events_rules_enabled(env.context()) is True
    assert env.recorder.counts() == {}


def test_an_arn_asked_about_in_the_functions_own_execution_is_still_checked(
    faulty: Faulty, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the execution's own context vouches for its account: an estimate asked for an ARN
    of the same name in another account is refused, whatever the environment says."""
    from estimator import ConcurrencyEstimator

    env, _ = faulty
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    estimator = ConcurrencyEstimator(env.config(account_id=None), clock=env.clock)
    with pytest.raises(ForeignFunction):
        estimator.estimate(OTHER_ACCOUNT)
    assert estimator.home().account == "123456789012"  # STS's answer, not the ARN's


def test_a_manager_given_an_in_process_estimator_keeps_its_kill_switch_in_the_table(
    faulty: Faulty,
) -> None:
    from estimator import ConcurrencyEstimator

    env, _ = faulty
    env.rule("schedule")
    estimator = ConcurrencyEstimator(env.config(use_dynamodb=False), session=env.session, clock=env.clock)
    manager = env.manager(estimator=estimator)
    assert manager.store.shared  # the table: `siblings disable` reaches this manager
    disable_spawning(FUNCTION, config=env.config(), session=env.session)
    assert manager.spawn_sibling(env.context(), event={}).reason == "kill_switch"
