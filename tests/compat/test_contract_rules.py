"""The sosw contract, rows C24-C30: ``any_events_rules_enabled(lambda_context)``.

One test per row of the contract table (see ``test_contract_setup.py``). sosw's answer: list
the default bus's rules (``ListRules``, first page), and for each ENABLED one list its targets;
True when a target's ARN equals ``invoked_function_arn``, else the ``auto_spawning`` setting.
"""

from __future__ import annotations

import pytest

from siblings import LookupFailed
from tests.compat.shapes import sosw_context
from tests.helpers import closed_port_url
from tests.integration.siblings.support import SiblingsEnv


def test_c24_the_target_must_be_the_invoked_arn(env: SiblingsEnv) -> None:
    """C24: a rule counts only for the exact ARN it targets, alias or version included: as
    in sosw, a rule on the unqualified function does not enable an alias, nor the reverse."""
    other = env.function_arn.replace(":worker", ":other")  # rules need no function
    env.rule("other-prod", target=f"{other}:prod")
    env.rule("other-7", target=f"{other}:7")
    env.rule("worker", target=env.function_arn)
    manager = env.manager()
    assert manager.any_events_rules_enabled(sosw_context(f"{other}:prod")) is True
    assert manager.any_events_rules_enabled(sosw_context(f"{other}:7")) is True
    assert manager.any_events_rules_enabled(sosw_context(other)) is False
    assert manager.any_events_rules_enabled(sosw_context(env.function_arn)) is True
    assert manager.any_events_rules_enabled(sosw_context(f"{env.function_arn}:live")) is False


def test_c25_disabled_rules_or_none_fall_back_to_auto_spawning(env: SiblingsEnv) -> None:
    """C25: only DISABLED rules, or none at all: the answer is ``auto_spawning``."""
    env.rule("paused", state="DISABLED")
    assert env.manager().any_events_rules_enabled(env.context()) is False
    assert env.manager().any_events_rules_enabled(env.context(qualifier="none")) is False
    on = env.manager({"auto_spawning": True})
    assert on.any_events_rules_enabled(env.context()) is True
    assert on.any_events_rules_enabled(env.context(qualifier="none")) is True


def test_c26_rules_past_the_first_page_count(env: SiblingsEnv) -> None:
    """C26: sosw read the first page of ``ListRules`` only, so its answer depended on how many
    rules the account had before the function's; ours follows every page."""
    events = env.client("events")
    for i in range(100):
        events.put_rule(Name=f"a{i:03d}", ScheduleExpression="rate(1 hour)", State="ENABLED")
    env.rule("zz-worker")
    first_page = {rule["Name"] for rule in events.list_rules(Limit=100)["Rules"]}
    assert "zz-worker" not in first_page  # where sosw stopped looking
    assert env.manager().any_events_rules_enabled(env.context()) is True


def test_c27_enabled_with_cloudtrail_management_events_is_enabled(env: SiblingsEnv) -> None:
    """C27: sosw compared the state with ``"ENABLED"`` exactly; this later state is an enabled
    rule too (it also receives read-only management events)."""
    events = env.client("events")
    events.put_rule(
        Name="trail",
        EventPattern='{"source": ["aws.s3"]}',
        State="ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
    )
    events.put_targets(Rule="trail", Targets=[{"Id": "t", "Arn": env.function_arn}])
    assert env.manager().any_events_rules_enabled(env.context()) is True


def test_c28_only_the_default_bus(env: SiblingsEnv) -> None:
    """C28: like sosw, rules on other event buses are not searched."""
    events = env.client("events")
    events.create_event_bus(Name="custom")
    events.put_rule(Name="elsewhere", EventPattern='{"source": ["app"]}', EventBusName="custom")
    events.put_targets(
        Rule="elsewhere", EventBusName="custom", Targets=[{"Id": "t", "Arn": env.function_arn}]
    )
    assert env.manager().any_events_rules_enabled(env.context()) is False


def test_c29_the_answer_is_cached_for_rules_cache_ttl_seconds(env: SiblingsEnv) -> None:
    """C29: sosw asked EventBridge on every call; ours keeps the answer for
    ``rules_cache_ttl_seconds`` (300) in both tiers, so a disabled rule stops spawning once
    that has passed (the kill switch stops it at once)."""
    env.rule("schedule")
    manager = env.manager({"rules_cache_ttl_seconds": 0.5})
    assert manager.any_events_rules_enabled(env.context()) is True
    env.client("events").disable_rule(Name="schedule")
    assert manager.any_events_rules_enabled(env.context()) is True
    assert env.manager().any_events_rules_enabled(env.context()) is True  # the shared item
    env.clock.advance(0.7)  # past rules_cache_ttl_seconds
    assert manager.any_events_rules_enabled(env.context()) is False


def test_c30_eventbridge_failing_raises_lookup_failed(env: SiblingsEnv) -> None:
    """C30: sosw let EventBridge's error through; ours serves a cached answer when it has
    one, else raises ``LookupFailed``."""
    env.rule("schedule")
    assert env.manager().any_events_rules_enabled(env.context()) is True
    unreachable = env.session.client("events", endpoint_url=closed_port_url())
    failing = env.manager(events_client=unreachable)
    assert failing.any_events_rules_enabled(env.context()) is True  # cached by the first
    with pytest.raises(LookupFailed):
        failing.any_events_rules_enabled(env.context(qualifier="prod"))
