"""The sosw contract, rows C13-C23: ``spawn_sibling(lambda_context, payload=None, force=False)``.

One test per row of the contract table (docs/reference.md) (see ``test_contract_setup.py``).
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from siblings import (
    PayloadTooLarge,
    SiblingsError,
    SiblingsManager,
    SpawnFailed,
    SpawnResult,
    disable_spawning,
)
from tests.compat.shapes import only_payload, without_metadata
from tests.conftest import Aws
from tests.helpers import closed_port_url, put_concurrency_metrics
from tests.integration.siblings.support import FUNCTION, FakeContext, SiblingsEnv


def test_c13_a_spawn_result_instead_of_none(env: SiblingsEnv) -> None:
    """C13: never ``None``; truthy when spawned, falsy when refused."""
    env.rule("schedule")  # targets the unqualified function only
    manager = env.manager()
    spawned = manager.spawn_sibling(env.context())
    assert isinstance(spawned, SpawnResult) and spawned
    refused = manager.spawn_sibling(env.context(qualifier="prod"))
    assert isinstance(refused, SpawnResult) and not refused and refused is not None


def test_c14_the_sibling_is_invoked_through_the_contexts_arn(
    env: SiblingsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C14: sosw invoked ``AWS_LAMBDA_FUNCTION_NAME`` (``$LATEST``); ours the ARN the
    execution was invoked with, alias kept, whatever the environment says."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "some-other-function")
    env.alias("prod")
    env.rule("prod-schedule", target=f"{env.function_arn}:prod")
    result = env.manager().spawn_sibling(env.context(qualifier="prod"))
    assert result.function_arn == f"{env.function_arn}:prod"
    assert [target for target, _, _ in env.invokes.calls] == [f"{env.function_arn}:prod"]


def test_c15_dry_run_is_a_setting_not_stage(env: SiblingsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """C15: ``STAGE=test`` made sosw's Invoke a ``DryRun``; ours reads ``dry_run`` only."""
    env.rule("schedule")
    monkeypatch.setenv("STAGE", "test")
    assert env.manager().spawn_sibling(env.context())
    monkeypatch.setenv("SIBLINGS_DRY_RUN", "true")
    assert SiblingsManager().config.dry_run is True
    assert not env.manager({"dry_run": True}).spawn_sibling(env.context())
    assert [kind for _, kind, _ in env.invokes.calls] == ["Event", "DryRun"]


def test_c16_a_dict_payload_arrives_with_one_more_key(env: SiblingsEnv) -> None:
    """C16: the sibling's event is the payload plus the reserved ``__siblings__`` key."""
    env.rule("schedule")
    payload = {"cursor": 7, "rows": [1, 2], "nested": {"a": None}}
    env.manager().spawn_sibling(env.context(), payload=payload)
    (event,) = env.invokes.events
    assert set(event) == {*payload, "__siblings__"}
    assert without_metadata(event) == payload


def test_c17_a_string_payload_must_be_a_json_object(env: SiblingsEnv) -> None:
    """C17: sosw sent a string as it was; ours decodes a JSON object and sends the same
    object; any other string is a ``ValueError`` before anything is invoked."""
    env.rule("schedule")
    manager = env.manager()
    for text in ("[1, 2]", '"text"', "not json"):
        with pytest.raises(ValueError, match="payload"):
            manager.spawn_sibling(env.context(), payload=text)
    assert env.invoke_count() == 0
    manager.spawn_sibling(env.context(), payload='{"file_name": "some.txt"}')
    assert only_payload(env) == {"file_name": "some.txt"}


def test_c18_empty_and_non_object_payloads(env: SiblingsEnv) -> None:
    """C18: ``None`` and ``{}`` send an empty object, as sosw did; sosw also sent ``{}`` for
    ``""`` and ``[]`` and sent other values as they were, where ours raises before any call."""
    env.rule("schedule")
    manager = env.manager()
    with pytest.raises(ValueError):
        manager.spawn_sibling(env.context(), payload="")
    for value in ([], [1], 0, 3.5):
        with pytest.raises(TypeError):
            manager.spawn_sibling(env.context(), payload=value)
    assert env.invoke_count() == 0
    for empty in (None, {}):
        manager.spawn_sibling(env.context(), payload=empty)
    assert [without_metadata(event) for event in env.invokes.events] == [{}, {}]


def test_c19_large_payloads_go_to_s3_or_fail_before_the_invoke(env: SiblingsEnv) -> None:
    """C19: sosw's Invoke failed on a payload over the limit; ours offloads it to
    ``payload_bucket``, or raises ``PayloadTooLarge`` before any call without one."""
    env.rule("schedule")
    big = {"rows": ["x" * 100] * 30}
    with pytest.raises(PayloadTooLarge):
        env.manager({"max_payload_bytes": 1000}).spawn_sibling(env.context(), payload=big)
    assert env.invoke_count() == 0
    manager = env.manager({"max_payload_bytes": 1000, "payload_bucket": env.bucket()})
    result = manager.spawn_sibling(env.context(), payload=big)
    assert result.offloaded
    (event,) = env.invokes.events
    assert without_metadata(event) == {}
    child = FakeContext(invoked_function_arn=env.function_arn, aws_request_id=str(result.request_id))
    assert manager.load_payload(event, child) == big


def test_c20_force_keeps_the_kill_switch_and_the_generation_limit(env: SiblingsEnv) -> None:
    """C20: ``force=True`` skips the EventBridge and concurrency guards only: an operator's
    kill switch and ``max_generations`` still refuse, which sosw never did (the account
    headroom guard too: the next test)."""
    manager = env.manager({"max_generations": 1})
    first = manager.spawn_sibling(env.context(), force=True)
    assert first and first.generation == 1
    child = FakeContext(invoked_function_arn=env.function_arn, aws_request_id=str(first.request_id))
    manager.load_payload(env.invokes.events[0], child)
    too_deep = manager.spawn_sibling(child, force=True)
    assert not too_deep and too_deep.reason == "max_generations"
    disable_spawning(FUNCTION, reason="runaway", config=env.config(), session=env.session)
    stopped = env.manager().spawn_sibling(env.context(), force=True)
    assert not stopped and stopped.reason == "kill_switch"
    assert env.invoke_count() == 1


def test_c20_force_keeps_the_account_headroom_guard(aws: Aws, env: SiblingsEnv) -> None:
    """C20: with ``min_account_headroom`` set (it is off by default, so a sosw user's
    ``force=True`` is unchanged), a forced spawn near the account's limit is refused: a runaway
    under ``force`` is what that guard protects the account's other functions from. The
    EventBridge and concurrency guards are skipped."""
    aws.server.account_settings.concurrency_limit = 50
    put_concurrency_metrics(env.client("cloudwatch"), None, [45] * 5, clock=env.clock)
    manager = env.manager({"min_account_headroom": 5, "max_concurrency": 1})
    refused = manager.spawn_sibling(env.context(), force=True)
    assert not refused and refused.reason == "account_headroom", refused
    assert refused.guards["eventbridge"] == refused.guards["concurrency"] == {"skipped": "force"}
    roomy = env.manager({"max_concurrency": 1}).spawn_sibling(env.context(), force=True)
    assert roomy and roomy.guards["account_headroom"] == {"min_account_headroom": None}
    assert env.invoke_count() == 1


def test_c21_no_enabled_rule_no_invoke(env: SiblingsEnv) -> None:
    """C21: without an enabled rule (and without ``force``), nothing is invoked; the result
    says why where sosw logged an error and returned ``None``."""
    env.rule("paused", state="DISABLED")
    result = env.manager().spawn_sibling(env.context(), payload={"cursor": 1})
    assert not result and result.reason == "rules_disabled"
    assert env.invoke_count() == 0


def test_c22_a_failing_invoke_raises_spawn_failed(env: SiblingsEnv) -> None:
    """C22: sosw let the first boto3 error through; ours retries, then raises ``SpawnFailed``
    (a ``SiblingsError``, not a ``ClientError``) with the boto3 error as ``cause``."""
    unreachable = env.session.client("lambda", endpoint_url=closed_port_url())
    # The recursive-loop guard applies with force and would ask the same unreachable Lambda
    # first (a guard_error refusal): this case is about the Invoke.
    manager = env.manager(
        {"invoke_max_attempts": 2, "check_recursive_loop": False}, lambda_client=unreachable
    )
    with pytest.raises(SpawnFailed) as caught:
        manager.spawn_sibling(env.context(), force=True)
    assert isinstance(caught.value, SiblingsError) and not isinstance(caught.value, ClientError)
    assert caught.value.cause is not None
    assert manager.stats["failed"] == 1


def test_c23_one_sibling_per_execution(env: SiblingsEnv) -> None:
    """C23: sosw invoked once per call; ours spawns one sibling per execution (request id):
    a second call returns the first result as a ``duplicate``."""
    env.rule("schedule")
    manager = env.manager()
    context = env.context()
    first = manager.spawn_sibling(context, payload={"part": 1})
    second = manager.spawn_sibling(context, payload={"part": 2})
    assert first and second and second.duplicate and second.request_id == first.request_id
    assert only_payload(env) == {"part": 1}
