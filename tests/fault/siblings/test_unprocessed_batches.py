"""Batches DynamoDB leaves partly unprocessed (issue 17.5, 18.5): sent again with backoff,
the keys that were read are used, and a write that never goes through is never a silent loss.

DynamoDB answers a batch with ``UnprocessedItems``/``UnprocessedKeys`` under throttling or an
internal failure (AWS API reference, BatchWriteItem and BatchGetItem); the fault server's
injector does that for chosen keys (:meth:`FaultInjector.unprocess`).
"""

from __future__ import annotations

import pytest

from siblings import SpawnFailed, disable_spawning
from tests.fault.siblings.conftest import FaultInjector
from tests.integration.siblings.support import FUNCTION, SiblingsEnv

Faulty = tuple[SiblingsEnv, FaultInjector]


def test_a_child_position_left_unprocessed_twice_is_sent_again(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    parent = env.manager()
    parent.any_events_rules_enabled(env.context())
    faults.unprocess("BatchWriteItem", key_prefix="req#", times=2)
    spawned = parent.spawn_sibling(env.context(), {"cursor": 1})
    assert spawned.reason == "spawned" and spawned.request_id
    faults.clear()
    # The child never reads its event: it finds its place under its request id, in a
    # container of its own.
    child = env.manager().spawn_sibling(env.context(aws_request_id=spawned.request_id))
    assert child.reason == "spawned"
    assert (child.chain_id, child.generation) == (spawned.chain_id, spawned.generation + 1)


def test_a_spawn_record_left_unprocessed_twice_is_sent_again(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    context = env.context()
    faults.unprocess("BatchWriteItem", key_prefix="spawn#", times=2)
    first = env.manager().spawn_sibling(context, {"cursor": 1})
    assert first.reason == "spawned"
    faults.clear()
    # Lambda retries the parent in another container: the record says it was invoked.
    retry = env.manager().spawn_sibling(context, {"cursor": 1})
    assert retry.duplicate and retry.request_id == first.request_id
    assert env.invoke_count() == 1


def test_a_write_that_never_goes_through_is_spawn_failed_maybe_spawned(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    manager = env.manager()
    faults.unprocess("BatchWriteItem")
    with pytest.raises(SpawnFailed) as caught:
        manager.spawn_sibling(env.context(), {"cursor": 1})
    assert caught.value.maybe_spawned is True
    assert env.invoke_count() == 1
    # Still unprocessed after the retries: a throttle, which the table's breaker counts, so
    # the next spawn does not ask DynamoDB again at once.
    env.recorder.reset()
    manager.spawn_sibling(env.context(), event={})
    assert env.recorder.count("dynamodb") == 0


def test_a_cold_spawn_uses_the_kill_switch_when_only_the_rule_state_is_unprocessed(
    faulty: Faulty,
) -> None:
    env, faults = faulty
    env.rule("schedule")
    faults.unprocess("BatchGetItem", key_prefix="rules#")  # every time
    result = env.manager().spawn_sibling(env.context(), event={})
    assert result.reason == "spawned"
    assert result.guards["kill_switch"]["source"] == "dynamodb"
    assert env.invoke_count() == 1


def test_a_kill_switch_read_left_unprocessed_twice_is_read_again(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    disable_spawning(FUNCTION, reason="stop", config=env.config(), session=env.session)
    faults.unprocess("BatchGetItem", times=2)
    result = env.manager().spawn_sibling(env.context(), event={})
    assert result.reason == "kill_switch"
    assert env.invoke_count() == 0


def test_a_kill_switch_never_read_refuses_by_default(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    faults.unprocess("BatchGetItem", key_prefix="kill#")
    result = env.manager().spawn_sibling(env.context(), event={})
    assert result.reason == "guard_error" and "kill_switch" in result.detail
    assert env.invoke_count() == 0
