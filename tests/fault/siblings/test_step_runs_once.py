"""Each chain step runs in at most one execution, whatever window a failure hits.

Two windows invoke one step twice: a parent that crashed after its Invoke and before its spawn
record (Lambda retries it), and an Invoke whose reply was lost (the Invoker retries it). Both
are driven here on the fault server, with the two Invokes counted at the server; the siblings'
claim on start must then let exactly one of the two executions run the step.
"""

from __future__ import annotations

import pytest

from siblings import DuplicateSibling, Invocation, SpawnFailed
from tests.fault.siblings.conftest import FaultInjector
from tests.integration.siblings.support import FakeContext, SiblingsEnv

Faulty = tuple[SiblingsEnv, FaultInjector]


def start_all(env: SiblingsEnv, request_ids: list[str]) -> list[Invocation]:
    """Start one execution per captured Invoke, each with its Invoke's request id (as Lambda
    hands it to the execution), each in a container of its own."""
    runs = []
    for event, request_id in zip(env.invokes.events, request_ids, strict=True):
        context = FakeContext(env.function_arn, aws_request_id=request_id)
        runs.append(Invocation(event, context, manager=env.manager()))
    return runs


def test_a_parent_crashing_between_invoke_and_record_still_runs_the_step_once(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    config = env.config(lease_seconds=0.5)
    parent = env.context()
    # The record after the Invoke is lost, as a crash right after the Invoke would lose it.
    faults.fail("dynamodb", "BatchWriteItem", 500, "InternalServerError")
    with pytest.raises(SpawnFailed) as caught:  # the parent hears of it, and keeps its work
        env.manager(config=config).spawn_sibling(parent, {"cursor": 7})
    assert caught.value.maybe_spawned
    faults.clear()
    env.clock.advance(0.6)  # the lost record's claim is older than lease_seconds
    # Lambda retries the failed parent with the same request id, in another container.
    retry = FakeContext(parent.invoked_function_arn, aws_request_id=parent.aws_request_id)
    second = env.manager(config=config).spawn_sibling(retry, {"cursor": 7})
    assert second.reason == "spawned"
    assert env.invoke_count() == 2  # the window: one step invoked twice
    runs = start_all(env, [str(caught.value.request_id), str(second.request_id)])
    assert [run.duplicate is None for run in runs].count(True) == 1
    duplicate = next(run for run in runs if run.duplicate is not None)
    assert duplicate.payload == {} and not duplicate.sufficient_execution_time_left
    refused = duplicate.spawn_sibling({"cursor": 8})
    assert not refused and refused.duplicate and env.invoke_count() == 2


def test_a_lost_invoke_reply_retried_still_runs_the_step_once(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    manager = env.manager()
    parent = env.context()
    manager.any_events_rules_enabled(parent)
    faults.fail("lambda", "Invoke", 502, "ServiceException", times=1, lose_reply=True)
    result = manager.spawn_sibling(parent, {"cursor": 3})
    assert result.reason == "spawned"
    assert env.invoke_count() == 2  # the lost one reached Lambda too
    # The first execution's request id never reached the parent: any id of Lambda's own.
    runs = start_all(env, ["lost-reply-execution", str(result.request_id)])
    assert [run.duplicate is None for run in runs].count(True) == 1


def test_a_retry_of_the_same_execution_runs_and_another_does_not(faulty: Faulty) -> None:
    env, _ = faulty
    env.rule("schedule")
    result = env.manager().spawn_sibling(env.context(), {"cursor": 1})
    event = env.invokes.events[0]
    child = FakeContext(env.function_arn, aws_request_id=str(result.request_id))
    assert env.manager().load_payload(event, child) == {"cursor": 1}
    # Lambda retrying the same execution (same request id, maybe another container) passes.
    assert env.manager().load_payload(event, FakeContext(env.function_arn, child.aws_request_id)) == {
        "cursor": 1
    }
    with pytest.raises(DuplicateSibling, match="another execution"):
        env.manager().load_payload(event, env.context())
