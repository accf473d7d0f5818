"""Delivery guarantees on the moto server: idempotency, S3 offload, bad input, calls at scale."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from estimator.clock import SYSTEM_CLOCK
from estimator.store import DynamoStore
from siblings import METADATA_KEY, PayloadTooLarge, SpawnResult, load_payload
from siblings.keys import spawn_key
from tests.helpers import put_lambda_metrics, scoped
from tests.integration.siblings.support import FUNCTION, FakeContext, SiblingsEnv

# --- idempotency ---


def test_the_same_execution_calling_twice_invokes_once(env: SiblingsEnv) -> None:
    env.rule("schedule")
    manager = env.manager()
    context = env.context()
    first = manager.spawn_sibling(context, {"cursor": 1})
    again = manager.spawn_sibling(context, {"cursor": 1})
    assert first and again
    assert again.duplicate and again.reason == "duplicate"
    assert again.request_id == first.request_id
    assert env.invoke_count() == 1
    assert manager.stats == {"spawned": 1, "duplicate": 1}


def test_a_retried_execution_in_another_container_invokes_once(env: SiblingsEnv) -> None:
    env.rule("schedule")
    context = env.context()
    first = env.manager().spawn_sibling(context, {"cursor": 1})
    # Lambda retries the failed async event with the same request id, maybe elsewhere.
    retry = FakeContext(context.invoked_function_arn, aws_request_id=context.aws_request_id)
    repeat = env.manager().spawn_sibling(retry, {"cursor": 1})
    assert repeat.duplicate and repeat.request_id == first.request_id
    assert env.invoke_count() == 1


def test_two_threads_racing_give_one_invoke(env: SiblingsEnv) -> None:
    env.rule("schedule")
    manager = env.manager()
    context = env.context()
    manager.any_events_rules_enabled(context)  # warm the rule cache so both race to invoke
    barrier = threading.Barrier(8)
    results: list[SpawnResult] = []

    def spawn() -> None:
        barrier.wait()
        results.append(manager.spawn_sibling(context, {"cursor": 5}))

    threads = [threading.Thread(target=spawn) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert env.invoke_count() == 1
    assert all(results) and len(results) == 8
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.request_id for r in results}) == 1


def test_two_containers_racing_give_one_invoke(env: SiblingsEnv) -> None:
    env.rule("schedule")
    context = env.context()
    managers = [env.manager() for _ in range(4)]
    for manager in managers:
        manager.any_events_rules_enabled(context)
    barrier = threading.Barrier(len(managers))

    def spawn(manager: Any) -> SpawnResult:
        barrier.wait()
        result: SpawnResult = manager.spawn_sibling(context, {"cursor": 5})
        return result

    with ThreadPoolExecutor(len(managers)) as pool:
        results = list(pool.map(spawn, managers))
    assert env.invoke_count() == 1
    assert sum(r.reason == "spawned" for r in results) == 1
    assert all(r.duplicate for r in results if r.reason != "spawned")


def test_a_retry_completes_a_step_left_pending_by_a_crash(env: SiblingsEnv) -> None:
    env.rule("schedule")
    config = env.config(lease_seconds=1.0)
    context = env.context()
    store = DynamoStore(config, session=env.session)
    # The first attempt claimed the step and died before invoking, 5 s ago.
    key = spawn_key(scoped("worker"), context.aws_request_id, 1)
    claimed_at = env.clock.now() - 5
    store.create(
        key,
        {
            "state": "pending",
            "owner": context.aws_request_id,
            "token": "t",
            "claimed_at": claimed_at,
        },
        keep_until=env.clock.now() + 3600,
        now=env.clock.now(),
    )
    result = env.manager(config=config).spawn_sibling(context, {"cursor": 3})
    assert result and result.reason == "spawned"
    assert env.invoke_count() == 1
    item = store.get(key)
    assert item is not None and item.value is not None and item.value["state"] == "invoked"


def test_a_step_pending_for_another_execution_is_not_forked(env: SiblingsEnv) -> None:
    env.rule("schedule")
    config = env.config(lease_seconds=60.0, lease_wait_seconds=0.2)
    context = env.context()
    store = DynamoStore(config, session=env.session)
    store.create(
        spawn_key(scoped("worker"), context.aws_request_id, 1),
        {"state": "pending", "owner": "someone-else", "token": "t", "claimed_at": env.clock.now()},
        keep_until=env.clock.now() + 3600,
        now=env.clock.now(),
    )
    result = env.manager(config=config).spawn_sibling(context)
    assert not result and result.reason == "duplicate" and "someone-else" in result.detail
    assert env.invoke_count() == 0


# --- 100 concurrent spawns, calls counted at the server ---


def test_100_concurrent_spawns_make_at_most_2_eventbridge_and_1_cloudwatch_call(
    env: SiblingsEnv,
) -> None:
    for i in range(5):
        env.rule(f"schedule-{i}")
    # Any window will do (the estimate only has to exist): no wait for a minute's margin.
    put_lambda_metrics(env.client("cloudwatch"), FUNCTION, [(60, 1000)] * 5, margin_seconds=0)
    env.recorder.reset()
    # 100 threads of one process share ten connections: allow slow replies on a busy machine.
    # The real clock: 100 threads' waits (root lookups, leases) overlap in real time, and on a
    # shared virtual clock they would add up; no TTL comes near its end within the test.
    manager = env.manager(
        {"max_concurrency": 1000, "dynamodb_timeout_seconds": 15.0}, clock=SYSTEM_CLOCK
    )
    # A warm container: pynamodb builds its client on first use, and 100 threads racing to
    # build it (a botocore session each) would only measure that race.
    assert manager.store is not None and manager.store.get("warm-up") is None
    contexts = [env.context() for _ in range(100)]
    barrier = threading.Barrier(100)

    def spawn(context: FakeContext) -> SpawnResult:
        barrier.wait()
        return manager.spawn_sibling(context, {"cursor": context.aws_request_id})

    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(spawn, contexts))
    assert [r.detail for r in results if r.reason != "spawned"] == []
    eventbridge = env.recorder.count("events")
    cloudwatch = env.recorder.count("monitoring", "GetMetricData")
    print(f"100 spawns: {eventbridge} EventBridge calls, {cloudwatch} GetMetricData calls")
    assert eventbridge <= 2
    assert cloudwatch <= 1
    assert env.recorder.count("monitoring") == cloudwatch  # nothing else from CloudWatch
    assert env.invoke_count() == 100
    assert manager.stats["spawned"] == 100


# --- payloads ---


def test_2mb_payload_round_trips_through_s3(env: SiblingsEnv) -> None:
    env.rule("schedule")
    bucket = env.bucket()
    manager = env.manager({"payload_bucket": bucket})
    env.recorder.reset()  # CreateBucket is a PUT too
    rows = [{"id": i, "text": "x" * 200} for i in range(10_000)]  # ~2.3 MB as JSON
    result = manager.spawn_sibling(env.context(), {"rows": rows})
    assert result and result.offloaded and result.payload_key
    assert env.recorder.count("s3", "PutObject") == 1
    event = env.invokes.events[0]
    assert set(event) == {METADATA_KEY}
    assert len(str(event)) < 2000
    assert manager.stats["offloaded"] == 1
    # The sibling side: module function (own client) and the manager's method; both check the
    # pointer against the configured bucket and the function named by the context.
    sibling = env.context()
    assert load_payload(
        event, sibling, s3_client=env.client("s3"), config=manager.config
    ) == {"rows": rows}
    assert env.manager({"payload_bucket": bucket}).load_payload(event, sibling) == {"rows": rows}


def test_small_payload_stays_inline(env: SiblingsEnv) -> None:
    env.rule("schedule")
    manager = env.manager({"payload_bucket": env.bucket()})
    env.recorder.reset()
    assert not manager.spawn_sibling(env.context(), '{"cursor": 1}').offloaded
    assert env.recorder.count("s3", "PutObject") == 0
    assert load_payload(env.invokes.events[0]) == {"cursor": 1}


def test_too_large_without_bucket_raises_and_invokes_nothing(env: SiblingsEnv) -> None:
    env.rule("schedule")
    manager = env.manager({"max_payload_bytes": 1000})
    with pytest.raises(PayloadTooLarge) as caught:
        manager.spawn_sibling(env.context(), {"blob": "y" * 2000})
    assert caught.value.limit == 1000
    assert env.invoke_count() == 0
    assert env.recorder.count("dynamodb", "PutItem") == 0


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"when": object()}, TypeError),
        ({"nan": float("nan")}, ValueError),
        ("not json", ValueError),
        ("[1, 2]", ValueError),
        (b'{"a": 1}', TypeError),
        ([1, 2], TypeError),
    ],
)
def test_bad_payload_raises_and_invokes_nothing(
    env: SiblingsEnv, payload: Any, error: type[Exception]
) -> None:
    env.rule("schedule")
    with pytest.raises(error):
        env.manager().spawn_sibling(env.context(), payload)
    assert env.invoke_count() == 0


@pytest.mark.parametrize(
    ("context", "error", "match"),
    [
        (None, TypeError, "required"),
        (object(), TypeError, "invoked_function_arn"),
        (FakeContext(invoked_function_arn=123), TypeError, "must be a str"),  # type: ignore[arg-type]
        (FakeContext(invoked_function_arn="worker"), ValueError, "not a Lambda function ARN"),
        (
            FakeContext(invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:b@d"),
            ValueError,
            "invalid",
        ),
    ],
)
def test_bad_context_raises_and_invokes_nothing(
    env: SiblingsEnv, context: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        env.manager({"auto_spawning": True}).spawn_sibling(context, {"cursor": 1})
    assert env.invoke_count() == 0


# --- observability ---


def test_one_json_log_line_per_decision(env: SiblingsEnv, caplog: pytest.LogCaptureFixture) -> None:
    env.rule("schedule")
    manager = env.manager({"max_generations": 1})
    context = env.context()
    with caplog.at_level(logging.INFO, logger="siblings"):
        manager.spawn_sibling(context, {"cursor": 1})
        manager.spawn_sibling(context, {"cursor": 1})
        manager.spawn_sibling(env.context(), {"cursor": 1}, event=sibling_event(1))
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "siblings"]
    assert [line["decision"] for line in lines] == ["spawned", "duplicate", "refused"]
    assert lines[2]["reason"] == "max_generations"
    assert lines[0]["chain_id"] == context.aws_request_id and lines[0]["generation"] == 1
    assert lines[0]["guards"]["eventbridge"]["enabled"] is True
    assert all(line["message"] == "siblings.spawn" for line in lines)
    assert manager.stats == {
        "spawned": 1,
        "duplicate": 1,
        "refused": 1,
        "refused_max_generations": 1,
    }
    manager.reset_stats()
    assert manager.get_stats() == {}


def sibling_event(generation: int) -> dict[str, Any]:
    return {METADATA_KEY: {"chain_id": "c", "generation": generation}}


def test_without_the_shared_table_spawns_are_deduplicated_in_process(env: SiblingsEnv) -> None:
    env.rule("schedule")
    env.recorder.reset()
    manager = env.manager(config=env.config(use_dynamodb=False))
    context = env.context()
    assert manager.spawn_sibling(context).reason == "spawned"
    assert manager.spawn_sibling(context).duplicate
    assert env.invoke_count() == 1
    assert env.recorder.count("dynamodb") == 0
    assert manager.spawn_sibling(env.context()).guards["kill_switch"]["source"].startswith("none")
