"""Failing AWS calls under spawn_sibling: retries, SpawnFailed, on_guard_error, stale values."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from estimator import ConcurrencyEstimator, Config
from estimator.store import DynamoStore
from siblings import LookupFailed, PayloadUnavailable, SpawnFailed, disable_spawning, load_payload
from siblings.keys import spawn_key
from tests.fault.siblings.conftest import FaultInjector
from tests.helpers import put_lambda_metrics, scoped
from tests.integration.siblings.support import FUNCTION, SiblingsEnv

Faulty = tuple[SiblingsEnv, FaultInjector]
NO_RETRIES = BotoConfig(retries={"mode": "standard", "total_max_attempts": 1})


def estimator_without_retries(env: SiblingsEnv, config: Config) -> ConcurrencyEstimator:
    """An estimator whose CloudWatch client fails on the first error."""
    cloudwatch = env.session.client("cloudwatch", endpoint_url=env.endpoint_url, config=NO_RETRIES)
    return ConcurrencyEstimator(
        config, session=env.session, cloudwatch_client=cloudwatch, clock=env.clock
    )


def quick_clients(env: SiblingsEnv) -> dict[str, Any]:
    """Clients without botocore retries, so injected failures surface at once."""
    return {
        "events_client": env.session.client(
            "events", endpoint_url=env.endpoint_url, config=NO_RETRIES
        )
    }


# --- Invoke ---


def test_throttled_invoke_is_retried_then_raises_spawn_failed(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    faults.fail("lambda", "Invoke", 429, "TooManyRequestsException")
    manager = env.manager(config=env.config(invoke_max_attempts=3))
    context = env.context()
    with pytest.raises(SpawnFailed) as caught:
        manager.spawn_sibling(context, {"cursor": 1})
    assert caught.value.attempts == 3
    assert isinstance(caught.value.cause, ClientError)
    assert caught.value.cause.response["Error"]["Code"] == "TooManyRequestsException"
    assert env.invoke_count() == 3  # every attempt reached the server
    assert manager.stats["failed"] == 1 and manager.stats.get("spawned", 0) == 0
    # The claim was released: once Lambda recovers, the same execution can spawn.
    faults.clear()
    assert manager.spawn_sibling(context, {"cursor": 1}).reason == "spawned"
    assert env.invoke_count() == 4


def test_transient_throttling_and_5xx_are_absorbed_by_retries(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    faults.fail("lambda", "Invoke", 429, "TooManyRequestsException", times=1)
    faults.fail("lambda", "Invoke", 500, "ServiceException", times=1)
    result = env.manager().spawn_sibling(env.context(), {"cursor": 1})
    assert result and result.request_id
    assert env.invoke_count() == 3  # two failed attempts and the one that got through


def test_a_permanent_invoke_error_is_not_retried(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    faults.fail("lambda", "Invoke", 403, "AccessDeniedException")
    with pytest.raises(SpawnFailed) as caught:
        env.manager().spawn_sibling(env.context())
    assert caught.value.attempts == 1
    assert env.invoke_count() == 1


def test_failed_offload_raises_spawn_failed_and_invokes_nothing(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    bucket = env.bucket()
    faults.fail("s3", "PutObject", 503, "SlowDown")
    s3 = env.session.client("s3", endpoint_url=env.endpoint_url, config=NO_RETRIES)
    manager = env.manager({"payload_bucket": bucket, "max_payload_bytes": 2000}, s3_client=s3)
    context = env.context()
    with pytest.raises(SpawnFailed):
        manager.spawn_sibling(context, {"blob": "z" * 5000})
    assert env.invoke_count() == 0
    faults.clear()
    result = manager.spawn_sibling(context, {"blob": "z" * 5000})
    assert result and result.offloaded


# --- guards that cannot be answered ---


def test_eventbridge_failing_with_nothing_cached_follows_on_guard_error(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    faults.fail("events", "ListRuleNamesByTarget", 500, "InternalException")
    # A short lease wait: the second manager finds the first one's lease on the rule state.
    config = env.config(lease_wait_seconds=0.2)
    refuse = env.manager(config=config, **quick_clients(env))
    result = refuse.spawn_sibling(env.context())
    assert not result and result.reason == "guard_error"
    assert "InternalException" in result.guards["eventbridge"]["error"]
    allow = env.manager({"on_guard_error": "allow"}, config=config, **quick_clients(env))
    result = allow.spawn_sibling(env.context())
    assert result and result.guards["eventbridge"]["policy"] == "allow"
    assert allow.stats["guard_error_allowed"] == 1
    assert env.invoke_count() == 1
    # force skips the guard entirely, so the outage does not matter.
    assert refuse.spawn_sibling(env.context(), force=True)


def test_any_events_rules_enabled_raises_lookup_failed_when_nothing_is_known(
    faulty: Faulty,
) -> None:
    env, faults = faulty
    faults.fail("events", None, 500, "InternalException")
    with pytest.raises(LookupFailed) as caught:
        env.manager(**quick_clients(env)).any_events_rules_enabled(env.context())
    assert isinstance(caught.value.cause, ClientError)


def test_eventbridge_failing_serves_the_stale_rule_state(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    config = env.config(rules_cache_ttl_seconds=0.2, error_backoff_seconds=0.0)
    manager = env.manager(config=config, **quick_clients(env))
    assert manager.spawn_sibling(env.context())
    env.clock.advance(0.3)  # past the TTL
    faults.fail("events", None, 500, "InternalException")
    result = manager.spawn_sibling(env.context())
    assert result and result.guards["eventbridge"]["stale"] is True


def test_cloudwatch_failing_follows_on_guard_error(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    faults.fail("monitoring", "GetMetricData", 500, "InternalServiceError")

    def manager(policy: str) -> Any:
        config = env.config(max_concurrency=10, on_guard_error=policy, lease_wait_seconds=0.2)
        return env.manager(config=config, estimator=estimator_without_retries(env, config))

    refused = manager("refuse").spawn_sibling(env.context())
    assert refused.reason == "guard_error" and "concurrency" in refused.detail
    assert manager("allow").spawn_sibling(env.context())
    assert env.invoke_count() == 1


def test_an_unknown_chain_position_refuses_by_default(faulty: Faulty) -> None:
    """A handler that never reads its event is placed in its chain through the table; with the
    table failing, a new chain would reset the generation count, so it is refused."""
    env, faults = faulty
    env.rule("schedule")
    faults.fail("dynamodb", None, 500, "InternalServerError")
    refused = env.manager(**quick_clients(env)).spawn_sibling(env.context())
    assert refused.reason == "guard_error" and "generation" in refused.detail
    assert env.invoke_count() == 0


def test_cloudwatch_failing_serves_the_stale_estimate(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    put_lambda_metrics(env.client("cloudwatch"), FUNCTION, [(60, 1000)] * 5, clock=env.clock)
    config = env.config(max_concurrency=10, cache_ttl_seconds=0.2, error_backoff_seconds=0.0)
    manager = env.manager(config=config, estimator=estimator_without_retries(env, config))
    assert manager.spawn_sibling(env.context())
    env.clock.advance(0.3)  # past the TTL
    faults.fail("monitoring", None, 500, "InternalServiceError")
    result = manager.spawn_sibling(env.context())
    assert result and result.guards["concurrency"]["stale"] is True


def test_dynamodb_failing_refuses_by_default_and_allow_still_spawns(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    faults.fail("dynamodb", None, 500, "InternalServerError")
    # event={}: a root that says so (a handler that passes no event is looked up in the table
    # first, and refused on that: see test_an_unknown_chain_position_refuses_by_default).
    refused = env.manager(**quick_clients(env)).spawn_sibling(env.context(), event={})
    assert refused.reason == "guard_error" and "kill_switch" in refused.detail
    assert env.invoke_count() == 0
    allow = env.manager({"on_guard_error": "allow"}, **quick_clients(env))
    result = allow.spawn_sibling(env.context(), event={})
    assert result and result.reason == "spawned"
    assert "error" in result.guards["kill_switch"] and "error" in result.guards["ledger"]
    assert env.invoke_count() == 1


def test_an_unreachable_table_is_skipped_after_one_failure(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    manager = env.manager({"on_guard_error": "allow"}, **quick_clients(env))
    manager.any_events_rules_enabled(env.context())
    faults.fail("dynamodb", None, 500, "InternalServerError")
    env.recorder.reset()
    assert manager.spawn_sibling(env.context())
    first = env.recorder.count("dynamodb")
    assert first >= 1  # the kill switch read failed (after pynamodb's own retries)
    assert manager.spawn_sibling(env.context())
    assert env.recorder.count("dynamodb") == first  # the breaker kept the second spawn away
    assert env.invoke_count() == 2


def test_dynamodb_failing_keeps_the_last_known_kill_switch(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    disable_spawning(FUNCTION, reason="stop", config=env.config(), session=env.session)
    manager = env.manager({"on_guard_error": "allow"})
    assert manager.spawn_sibling(env.context()).reason == "kill_switch"
    faults.fail("dynamodb", None, 500, "InternalServerError")
    result = manager.spawn_sibling(env.context(), force=True)
    assert result.reason == "kill_switch"
    assert "memory" in result.guards["kill_switch"]["source"]
    assert env.invoke_count() == 0


def test_spawn_record_write_failing_after_invoke_is_spawn_failed_maybe_spawned(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    manager = env.manager()
    context = env.context()
    manager.any_events_rules_enabled(context)
    # The claim (PutItem) passes; writing the "invoked" record (BatchWriteItem) fails: the
    # sibling runs, but its record and position are lost, which is never a plain success.
    faults.fail("dynamodb", "BatchWriteItem", 500, "InternalServerError")
    with pytest.raises(SpawnFailed) as caught:
        manager.spawn_sibling(context)
    assert caught.value.maybe_spawned and caught.value.request_id
    assert caught.value.request_id in str(caught.value)
    assert manager.stats["failed"] == 1
    faults.clear()
    key = spawn_key(scoped("worker"), context.aws_request_id, 1)
    item = DynamoStore(env.config(), session=env.session).get(key)
    assert item is not None and item.value is not None and item.value["state"] == "pending"
    # This process still remembers the spawn: no second sibling.
    assert manager.spawn_sibling(context).duplicate
    assert env.invoke_count() == 1


# --- reading offloaded payloads ---


def test_missing_or_tampered_offloaded_payload_raises_payload_unavailable(faulty: Faulty) -> None:
    env, _ = faulty
    env.rule("schedule")
    bucket = env.bucket()
    manager = env.manager({"payload_bucket": bucket, "max_payload_bytes": 500})
    result = manager.spawn_sibling(env.context(), {"blob": "q" * 1000})
    event = env.invokes.events[0]
    s3 = env.client("s3")
    s3.put_object(Bucket=bucket, Key=result.payload_key, Body=b'{"blob": "tampered"}')
    sibling = env.context()
    with pytest.raises(PayloadUnavailable, match="checksum"):
        load_payload(event, sibling, s3_client=s3, config=manager.config)
    s3.delete_object(Bucket=bucket, Key=result.payload_key)
    with pytest.raises(PayloadUnavailable, match="cannot read"):
        load_payload(event, sibling, s3_client=s3, config=manager.config)
