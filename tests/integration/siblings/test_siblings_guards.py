"""Each guard of spawn_sibling in both directions, with and without force, on the moto server."""

from __future__ import annotations

import json
import time

import pytest

from estimator.clock import ManualClock
from estimator.shared_cache import TwoTierCache
from estimator.store import DynamoStore
from siblings import (
    METADATA_KEY,
    SiblingsManager,
    disable_spawning,
    enable_spawning,
    spawning_status,
)
from siblings.metadata import ChainMetadata
from tests.helpers import put_lambda_metrics
from tests.integration.siblings.support import FUNCTION, SiblingsEnv


def sibling_event(chain: str, generation: int, **payload: object) -> dict[str, object]:
    meta = ChainMetadata(chain_id=chain, generation=generation, parent_request_id="p").to_dict()
    return {**payload, METADATA_KEY: meta}


def lookups(env: SiblingsEnv) -> dict[str, int]:
    return {
        action: env.recorder.count("events", action)
        for action in ("ListRuleNamesByTarget", "DescribeRule")
    }


# --- EventBridge ---


def test_enabled_rule_allows_and_the_sibling_gets_payload_and_metadata(env: SiblingsEnv) -> None:
    env.rule("schedule")
    context = env.context()
    result = env.manager().spawn_sibling(context, payload={"cursor": 7})
    assert result and result.reason == "spawned"
    assert result.generation == 1 and result.chain_id == context.aws_request_id
    assert result.request_id  # the Invoke's request id
    assert env.invoke_count() == 1
    target, kind, event = env.invokes.calls[0]
    assert (target, kind) == (env.function_arn, "Event")
    assert event["cursor"] == 7
    assert event[METADATA_KEY]["generation"] == 1
    assert event[METADATA_KEY]["chain_id"] == context.aws_request_id
    assert event[METADATA_KEY]["parent_request_id"] == context.aws_request_id


def test_disabled_rule_refuses_unless_forced(env: SiblingsEnv) -> None:
    env.rule("schedule", state="DISABLED")
    manager = env.manager()
    refused = manager.spawn_sibling(env.context(), payload={"cursor": 1})
    assert not refused and refused.reason == "rules_disabled" and refused.refused
    assert env.invoke_count() == 0
    forced = manager.spawn_sibling(env.context(), payload={"cursor": 1}, force=True)
    assert forced and forced.forced
    assert env.invoke_count() == 1
    assert manager.stats["refused_rules_disabled"] == 1 and manager.stats["spawned"] == 1


def test_no_rule_falls_back_to_auto_spawning(env: SiblingsEnv) -> None:
    assert not env.manager().spawn_sibling(env.context())
    assert env.manager({"auto_spawning": True}).spawn_sibling(env.context())
    assert env.invoke_count() == 1


def test_one_enabled_rule_among_disabled_ones_is_enough(env: SiblingsEnv) -> None:
    for i in range(3):
        env.rule(f"off-{i}", state="DISABLED")
    env.rule("on")
    manager = env.manager()
    assert manager.any_events_rules_enabled(env.context())
    assert manager.spawn_sibling(env.context())


def test_rule_targeting_the_alias_counts_and_the_alias_is_invoked(env: SiblingsEnv) -> None:
    env.alias("prod")
    env.rule("prod-schedule", target=f"{env.function_arn}:prod")
    manager = env.manager()
    assert not manager.spawn_sibling(env.context())  # unqualified execution: no rule for it
    result = manager.spawn_sibling(env.context(qualifier="prod"))
    assert result and result.function_arn == f"{env.function_arn}:prod"
    assert env.invokes.calls[-1][0] == f"{env.function_arn}:prod"


def test_unqualified_rule_does_not_count_for_an_alias_execution(env: SiblingsEnv) -> None:
    # As in sosw: only a rule on the ARN the function was invoked with turns its chains on.
    env.alias("live")
    env.rule("schedule")
    manager = env.manager()
    result = manager.spawn_sibling(env.context(qualifier="live"))
    assert not result and result.reason == "rules_disabled"
    assert not manager.any_events_rules_enabled(env.context(qualifier="live"))
    assert manager.spawn_sibling(env.context())


def test_rule_names_are_followed_across_pages(env: SiblingsEnv) -> None:
    # moto pages ListRuleNamesByTarget at 50 names by default; the enabled one is on page 2.
    for i in range(55):
        env.rule(f"r{i:02d}", state="DISABLED")
    env.rule("zz-enabled")
    assert env.manager().any_events_rules_enabled(env.context())


def test_rule_state_is_cached_for_the_ttl(env: SiblingsEnv) -> None:
    env.rule("schedule")
    manager = env.manager()
    for _ in range(5):
        assert manager.spawn_sibling(env.context())
    # ListRuleNamesByTarget + DescribeRule, once
    assert lookups(env) == {"ListRuleNamesByTarget": 1, "DescribeRule": 1}
    # A second "container" reads the shared item instead of asking EventBridge.
    assert env.manager().spawn_sibling(env.context())
    assert lookups(env) == {"ListRuleNamesByTarget": 1, "DescribeRule": 1}


def _manager_on(env: SiblingsEnv, clock: ManualClock) -> SiblingsManager:
    config = env.config()
    cache = TwoTierCache(config, DynamoStore(config, session=env.session, clock=clock), clock)
    return env.manager(config=config, cache=cache)


def test_rule_names_are_listed_once_an_hour_and_the_state_read_each_ttl(env: SiblingsEnv) -> None:
    env.rule("schedule")
    clock = ManualClock(time.time())
    manager = _manager_on(env, clock)
    assert manager.any_events_rules_enabled(env.context())
    for _ in range(3):
        clock.advance(301)  # past rules_cache_ttl_seconds (300)
        assert manager.any_events_rules_enabled(env.context())
    assert lookups(env) == {"ListRuleNamesByTarget": 1, "DescribeRule": 4}
    clock.advance(3600)  # past rule_names_ttl_seconds too
    assert manager.any_events_rules_enabled(env.context())
    assert lookups(env) == {"ListRuleNamesByTarget": 2, "DescribeRule": 5}


def test_a_cached_rule_name_that_is_gone_lists_the_names_again(env: SiblingsEnv) -> None:
    env.rule("old")
    clock = ManualClock(time.time())
    manager = _manager_on(env, clock)
    assert manager.any_events_rules_enabled(env.context())
    events = env.client("events")
    targets = events.list_targets_by_rule(Rule="old")["Targets"]
    events.remove_targets(Rule="old", Ids=[t["Id"] for t in targets])
    events.delete_rule(Name="old")
    env.rule("new")
    clock.advance(301)
    assert manager.any_events_rules_enabled(env.context())  # "new" found, not an hour later
    assert lookups(env) == {"ListRuleNamesByTarget": 2, "DescribeRule": 3}


# --- kill switch ---


def test_kill_switch_refuses_even_forced_and_enable_restores(env: SiblingsEnv) -> None:
    env.rule("schedule")
    config = env.config()
    state = disable_spawning(FUNCTION, reason="runaway", config=config, session=env.session)
    assert state.disabled
    manager = env.manager()
    for force in (False, True):
        result = manager.spawn_sibling(env.context(), force=force)
        assert not result and result.reason == "kill_switch"
        assert "runaway" in result.detail
    assert env.invoke_count() == 0
    status = spawning_status(env.function_arn, config=config, session=env.session)
    assert status.kill.disabled and status.to_dict()["spawning_disabled"] is True
    enable_spawning(env.function_arn, config=config, session=env.session)
    assert manager.spawn_sibling(env.context())
    assert not spawning_status(FUNCTION, config=config, session=env.session).kill.disabled
    assert manager.stats["refused_kill_switch"] == 2


def test_kill_switch_reads_are_eventually_consistent_half_a_read_unit(env: SiblingsEnv) -> None:
    # Read on every spawn, the switch is the fleet's hottest item: an eventually consistent
    # read costs half a unit, and a flipped switch is seen within about a second.
    env.rule("schedule")
    reads: list[tuple[str, object]] = []

    def listener(call: tuple[str, str], environ: dict[str, object], body: bytes) -> None:
        if call[0] == "dynamodb" and call[1] in ("GetItem", "BatchGetItem") and b"kill#" in body:
            request = json.loads(body)
            consistent = request.get("ConsistentRead")
            for table in (request.get("RequestItems") or {}).values():
                consistent = table.get("ConsistentRead")
            reads.append((call[1], consistent))

    env.recorder.listeners.append(listener)
    manager = env.manager()
    assert manager.spawn_sibling(env.context())  # cold: kill + rules in one BatchGetItem
    assert manager.spawn_sibling(env.context())  # warm: the switch alone
    assert [action for action, _ in reads] == ["BatchGetItem", "GetItem"]
    assert all(not consistent for _, consistent in reads)


def test_kill_switch_covers_every_alias(env: SiblingsEnv) -> None:
    env.alias("prod")
    disable_spawning(f"{env.function_arn}:prod", config=env.config(), session=env.session)
    result = env.manager().spawn_sibling(env.context(qualifier="prod"), force=True)
    assert result.reason == "kill_switch"
    assert env.manager().spawn_sibling(env.context(), force=True).reason == "kill_switch"


def test_status_shows_the_cached_rule_state(env: SiblingsEnv) -> None:
    env.rule("schedule")
    env.manager().spawn_sibling(env.context())
    status = spawning_status(FUNCTION, config=env.config(), session=env.session)
    assert status.rules is not None and status.rules["enabled"] is True
    assert status.rules["rule"] == "schedule"
    assert status.rules_fresh_until is not None


# --- generation limit ---


def test_generation_limit_refuses_even_forced(env: SiblingsEnv) -> None:
    env.rule("schedule")
    manager = env.manager({"max_generations": 3})
    at_limit = sibling_event("chain-a", 3, cursor=9)
    for force in (False, True):
        result = manager.spawn_sibling(env.context(), {"cursor": 10}, force, event=at_limit)
        assert not result and result.reason == "max_generations"
        assert result.generation == 4
    below = sibling_event("chain-a", 2, cursor=9)
    result = manager.spawn_sibling(env.context(), {"cursor": 10}, event=below)
    assert result and result.generation == 3 and result.chain_id == "chain-a"
    assert env.invokes.events[-1][METADATA_KEY]["generation"] == 3
    assert env.invoke_count() == 1


def test_generation_comes_from_load_payload_with_the_context(env: SiblingsEnv) -> None:
    env.rule("schedule")
    manager = env.manager({"max_generations": 2})
    context = env.context()
    payload = manager.load_payload(sibling_event("chain-b", 2, cursor=1), context)
    assert payload == {"cursor": 1}
    assert manager.spawn_sibling(context, payload).reason == "max_generations"


def test_generation_comes_from_the_reserved_key_left_in_the_payload(env: SiblingsEnv) -> None:
    env.rule("schedule")
    manager = env.manager({"max_generations": 5})
    event = sibling_event("chain-c", 5, cursor=1)
    event["cursor"] = 2  # a handler re-sending its modified event
    result = manager.spawn_sibling(env.context(), event)
    assert result.reason == "max_generations"


# --- concurrency ---


def test_concurrency_at_limit_refuses_unless_forced(env: SiblingsEnv) -> None:
    env.rule("schedule")
    # 600 invocations of 2 s over 5 minutes: ceil(600 * 2000 / 300000) = 4.
    put_lambda_metrics(env.client("cloudwatch"), FUNCTION, [(120, 2000)] * 5, clock=env.clock)
    at = env.manager({"max_concurrency": 4})
    result = at.spawn_sibling(env.context())
    assert not result and result.reason == "max_concurrency"
    assert result.guards["concurrency"]["estimate"] == 4
    assert at.spawn_sibling(env.context(), force=True)
    assert at.get_approximate_concurrent_executions(name=FUNCTION) == 4
    above = env.manager({"max_concurrency": 5})
    assert above.spawn_sibling(env.context())
    assert env.invoke_count() == 2
    assert env.recorder.count("monitoring", "GetMetricData") == 1  # shared through DynamoDB


def test_no_max_concurrency_asks_no_cloudwatch(env: SiblingsEnv) -> None:
    env.rule("schedule")
    assert env.manager().spawn_sibling(env.context())
    assert env.recorder.count("monitoring") == 0


def test_get_approximate_concurrent_executions_defaults_to_the_last_context(
    env: SiblingsEnv,
) -> None:
    put_lambda_metrics(env.client("cloudwatch"), FUNCTION, [(60, 1000)] * 5, clock=env.clock)
    manager = env.manager()
    with pytest.raises(ValueError, match="name"):
        manager.get_approximate_concurrent_executions()
    env.rule("schedule")
    manager.any_events_rules_enabled(env.context())
    assert manager.get_approximate_concurrent_executions(5) == 1


# --- dry run ---


def test_dry_run_checks_the_invoke_and_starts_nothing(env: SiblingsEnv) -> None:
    env.rule("schedule")
    manager = env.manager({"dry_run": True})
    result = manager.spawn_sibling(env.context(), {"cursor": 1})
    assert not result and result.reason == "dry_run"
    assert [kind for _, kind, _ in env.invokes.calls] == ["DryRun"]
    assert manager.stats["dry_run"] == 1


def test_sosw_style_custom_config_keeps_unknown_keys(env: SiblingsEnv) -> None:
    manager = SiblingsManager(
        custom_config={"init_clients": ["Siblings"], "auto_spawning": True},
        config=env.config(),
        session=env.session,
    )
    assert manager.config.auto_spawning is True
    assert manager.config.extra == {"init_clients": ["Siblings"]}
    with pytest.raises(TypeError, match="unexpected"):
        SiblingsManager(lambda_clinet=object())
