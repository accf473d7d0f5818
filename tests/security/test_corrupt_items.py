"""Every kind of shared-table item is validated with bounds before use; a bad kill switch fails closed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from estimator import ConcurrencyEstimator
from estimator.store import DynamoStore
from siblings.cli import main
from tests.helpers import put_lambda_metrics, scoped
from tests.integration.siblings.support import FUNCTION, REGION, SiblingsEnv


def put_raw(env: SiblingsEnv, key: str, **attributes: Any) -> None:
    """Write an item as any other writer could: attribute-value form, no library in between."""
    item = {"pk": {"S": key}, **attributes}
    env.client("dynamodb").put_item(TableName="lambda-siblings", Item=item)


def cached(value: dict[str, Any], fetched_at: float, fresh_until: float, **extra: Any) -> dict[str, Any]:
    return {
        "value": {"S": json.dumps({"value": value, "fetched_at": fetched_at})},
        "fresh_until": {"N": str(fresh_until)},
        "ttl": {"N": str(int(fresh_until + 3600))},
        **extra,
    }


ESTIMATE = {"value": 999, "invocations": 1.0, "avg_duration_ms": 1.0, "period_s": 300}


@pytest.mark.parametrize(
    ("value", "fetched_ago", "fresh_for"),
    [
        (ESTIMATE, 0, 10 * 365 * 24 * 3600.0),  # a freshness frozen for ten years
        (ESTIMATE, -7200, 30),  # written two hours in the future
        ({**ESTIMATE, "value": -5}, 0, 30),  # out of range
        ({**ESTIMATE, "value": 10**9}, 0, 30),
        ({**ESTIMATE, "period_s": 0}, 0, 30),
        ({**ESTIMATE, "avg_duration_ms": 1e12}, 0, 30),
    ],
)
def test_an_unbelievable_estimate_item_is_refreshed_not_served(
    env: SiblingsEnv, value: dict[str, Any], fetched_ago: float, fresh_for: float
) -> None:
    put_lambda_metrics(env.client("cloudwatch"), FUNCTION, [(600, 1000)] * 5, clock=env.clock)
    now = env.clock.now()
    put_raw(env, f"estimate#{scoped(FUNCTION)}#5", **cached(value, now - fetched_ago, now + fresh_for))
    estimate = ConcurrencyEstimator(env.config(), session=env.session, clock=env.clock).estimate(FUNCTION)
    assert (estimate.value, estimate.source) == (10, "cloudwatch")
    # Overwritten by that refresh: the next container reads the real value from the table.
    again = ConcurrencyEstimator(env.config(), session=env.session, clock=env.clock).estimate(FUNCTION)
    assert (again.value, again.source) == (10, "dynamodb")


def test_a_lease_reaching_years_ahead_does_not_block_the_refresh(env: SiblingsEnv) -> None:
    put_lambda_metrics(env.client("cloudwatch"), FUNCTION, [(600, 1000)] * 5, clock=env.clock)
    now = env.clock.now()
    stale = cached(ESTIMATE | {"value": 3}, now - 120, now - 60)
    stale.update({"lease_owner": {"S": "skewed-writer"}, "lease_until": {"N": str(now + 10**8)}})
    put_raw(env, f"estimate#{scoped(FUNCTION)}#5", **stale)
    estimate = ConcurrencyEstimator(env.config(), session=env.session, clock=env.clock).estimate(FUNCTION)
    assert (estimate.value, estimate.source, estimate.stale) == (10, "cloudwatch", False)


@pytest.mark.parametrize(
    "attributes",
    [
        {"value": {"S": json.dumps({"disabled": "false"})}, "fresh_until": {"N": "9e9"}},
        {"value": {"S": json.dumps({"reason": "no disabled key"})}, "fresh_until": {"N": "9e9"}},
        {"value": {"S": "not json"}, "fresh_until": {"N": "9e9"}},
        {"value": {"N": "0"}, "fresh_until": {"N": "9e9"}},
        {"value": {"S": json.dumps({"disabled": False, "changed_by": 7})}, "fresh_until": {"N": "9e9"}},
        {"value": {"S": json.dumps({"disabled": False})}, "fresh_until": {"S": "later"}},
    ],
)
def test_a_corrupt_kill_switch_means_disabled_until_rewritten(
    env: SiblingsEnv, attributes: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    env.rule("schedule")
    put_raw(env, f"kill#{scoped(FUNCTION)}", **attributes)
    manager = env.manager()
    for force in (False, True):
        refused = manager.spawn_sibling(env.context(), {"cursor": 1}, force=force)
        assert not refused and refused.reason == "kill_switch" and "corrupt" in refused.detail
    argv = ["--endpoint-url", env.endpoint_url, "--region", REGION, FUNCTION]
    assert main(["status", *argv, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["spawning_disabled"] is True and shown["kill_switch"]["corrupt"] is True
    assert main(["status", *argv]) == 0
    assert "CORRUPT" in capsys.readouterr().out
    assert main(["enable", *argv]) == 0  # the operator writes it again
    assert env.manager().spawn_sibling(env.context(), {"cursor": 1})
    assert env.invoke_count() == 1


def test_a_corrupt_rule_state_is_looked_up_again(env: SiblingsEnv) -> None:
    env.rule("schedule")
    now = env.clock.now()
    put_raw(env, f"rules#{scoped(FUNCTION)}", **cached({"enabled": "yes", "rule": 5}, now, now + 60))
    assert env.manager().any_events_rules_enabled(env.context()) is True
    assert env.recorder.count("events", "ListRuleNamesByTarget") == 1
    item = DynamoStore(env.config(), session=env.session).get(f"rules#{scoped(FUNCTION)}")
    assert item is not None and item.value is not None and item.value["value"]["enabled"] is True


HUGE = "1" + "0" * 400  # an integer no float can hold


def test_a_huge_integer_in_an_item_is_corrupt_not_a_crash(env: SiblingsEnv) -> None:
    env.rule("schedule")
    put_raw(env, f"kill#{scoped(FUNCTION)}", value={"S": '{"disabled": false, "changed_at": ' + HUGE + "}"},
            fresh_until={"N": "9e9"})
    context = env.context()
    refused = env.manager().spawn_sibling(context, {"cursor": 1}, force=True)
    assert refused.reason == "kill_switch" and "corrupt" in refused.detail
    store = DynamoStore(env.config(), session=env.session)
    claim = f"spawn#{scoped(FUNCTION)}#{context.aws_request_id}#1"
    assert store.get(claim) is None  # the claim was given back
    now = env.clock.now()
    estimate = f"estimate#{scoped(FUNCTION)}#5"
    put_raw(env, estimate, value={"S": '{"value": {"value": ' + HUGE + ', "invocations": 1,'
            ' "period_s": 300}, "fetched_at": ' + str(now) + "}"}, fresh_until={"N": str(now + 30)})
    put_lambda_metrics(env.client("cloudwatch"), FUNCTION, [(600, 1000)] * 5, clock=env.clock)
    estimator = ConcurrencyEstimator(env.config(), session=env.session, clock=env.clock)
    assert estimator.estimate(FUNCTION).source == "cloudwatch"


def test_a_retried_parent_that_spawned_is_told_so_even_with_the_kill_switch_on(env: SiblingsEnv) -> None:
    from siblings import disable_spawning

    env.rule("schedule")
    context = env.context()
    assert env.manager().spawn_sibling(context, {"cursor": 1})
    disable_spawning(FUNCTION, reason="runaway", config=env.config(), session=env.session)
    retry = env.manager().spawn_sibling(context, {"cursor": 1})  # Lambda's retry, elsewhere
    assert retry and retry.duplicate  # the sibling exists and owns the work
    assert env.invoke_count() == 1
