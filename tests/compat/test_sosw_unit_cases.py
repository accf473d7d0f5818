"""sosw 0.7.47's own unit-test cases for ``SiblingsManager``, run against ours on a moto server.

Source: ``sosw/components/test/unit/test_siblings.py`` in the public repository ``sosw/sosw``
(class ``siblings_TestCase``). Each test below names the case it ports. The inputs and the
expected answers are sosw's; what sosw fed through ``MagicMock`` boto3 clients is real state
here: metric data put into ``AWS/Lambda``, rules and targets created in EventBridge. Where a
case asserted sosw's own boto3 calls, the test asserts the observable answer instead, and the
docstring says what differs and why (the contract table in docs/reference.md has every row).

sosw's module sets ``STAGE=test``, under which its ``spawn_sibling`` invokes with
``InvocationType='DryRun'``; ours has no such switch, so the same effect is asked for with the
``dry_run`` config key. sosw's ``CUSTOM_CONFIG`` (``{"test": True}``) is passed unchanged: an
unknown key that ours must accept.
"""

from __future__ import annotations

from typing import Any

import pytest

from estimator.store import DynamoStore
from siblings import SiblingsManager
from tests.compat.shapes import mock_context, only_payload, sosw_context
from tests.helpers import put_lambda_metrics
from tests.integration.siblings.support import SiblingsEnv

CUSTOM_CONFIG: dict[str, Any] = {"test": True}
"""sosw's ``siblings_TestCase.CUSTOM_CONFIG``."""
STAGE_TEST = {"dry_run": True}
"""What sosw's ``STAGE=test`` environment does to ``spawn_sibling``, as our config key."""

# sosw's test_any_events_rules_enabled lives in us-west-2.
WEST = "us-west-2"
FUNC1 = f"arn:aws:lambda:{WEST}:123456789012:function:my-test-func1"
FUNC2 = f"arn:aws:lambda:{WEST}:123456789012:function:my-test-func2"


@pytest.mark.parametrize(
    ("avg_duration_ms", "invocations", "expected"),
    [
        (1.0, 5, 1),  # extremely short: 1 ms
        (55_000.0, 5, 1),  # a little shorter than a minute
        (65_000.0, 5, 2),  # a little longer than a minute: ceiled
        (120_000.0, 5, 2),  # exactly two minutes
        (300_000.0, 1, 1),  # exactly five minutes, a single invocation
        (300_000.0, 5, 5),  # exactly five minutes, invoked every minute
    ],
    ids=["1ms-x5", "55s-x5", "65s-x5", "120s-x5", "300s-x1", "300s-x5"],
)
def test_get_approximate_concurrent_executions(
    env: SiblingsEnv,
    monkeypatch: pytest.MonkeyPatch,
    avg_duration_ms: float,
    invocations: int,
    expected: int,
) -> None:
    """Port of ``test_get_approximate_concurrent_executions`` (its six experiments).

    sosw mocked one aggregated ``GetMetricStatistics`` datapoint per experiment (``Sum`` of
    invocations, ``Average`` duration over the 5-minute window); here the same totals are put
    into ``AWS/Lambda`` as one invocation per minute at that duration, so that the window's
    sum and average are exactly sosw's. Each experiment is a test of its own because ours
    shares its estimate through the table: a new manager (sosw's "reimport") would otherwise
    read the previous experiment's value, which a fresh server per test rules out.
    Called without a name, as sosw's test does: sosw then reads ``AWS_LAMBDA_FUNCTION_NAME``
    and falls back to ``'test_function'``; ours reads the variable too (and has no placeholder
    fallback, see ``test_contract.py``), so it is set to the name sosw's test resolved.
    """
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "test_function")
    buckets = [(1, avg_duration_ms)] * invocations
    put_lambda_metrics(env.client("cloudwatch"), "test_function", buckets, clock=env.clock)
    manager = env.manager(CUSTOM_CONFIG)
    assert manager.get_approximate_concurrent_executions() == expected


@pytest.fixture
def west(env: SiblingsEnv) -> SiblingsEnv:
    """The shared table in us-west-2 too, for managers of a function living there."""
    DynamoStore(env.config(region_name=WEST), session=env.session).ensure_table()
    return env


def test_any_events_rules_enabled(west: SiblingsEnv) -> None:
    """Port of ``test_any_events_rules_enabled``.

    sosw's two functions: ``my-test-func1`` has one rule, DISABLED (``test-rule-1``);
    ``my-test-func2`` has a DISABLED one (``test-rule-2``) and an ENABLED one (``test-rule-3``).
    The rules are created in EventBridge (us-west-2, ``rate(5 minutes)``) with those targets
    instead of mocked ``ListRules``/``ListTargetsByRule`` answers. Expected, as in sosw:
    func1 False, func2 True; ``auto_spawning: False`` keeps func1 False; ``auto_spawning:
    True`` makes func1 True (the case our first version answered False).

    One input differs: sosw's ARNs carry the placeholder account ``123``. Ours invokes
    siblings through the context's ARN, so it requires a Lambda function ARN (AWS's 12-digit
    account) and raises ``ValueError`` for ``...:123:...`` before any call (a contract row);
    the moto account is used instead. Every manager is a fresh one, as in sosw.
    """
    events = west.session.client("events", endpoint_url=west.endpoint_url, region_name=WEST)
    for rule, state, target in [
        ("test-rule-1", "DISABLED", FUNC1),
        ("test-rule-2", "DISABLED", FUNC2),
        ("test-rule-3", "ENABLED", FUNC2),
    ]:
        events.put_rule(
            Name=rule, ScheduleExpression="rate(5 minutes)", State=state, Description="Test rule"
        )
        events.put_targets(Rule=rule, Targets=[{"Id": rule, "Arn": target}])

    def manager(custom_config: dict[str, Any]) -> SiblingsManager:
        return west.manager(custom_config, config=west.config(region_name=WEST))

    assert manager(CUSTOM_CONFIG).any_events_rules_enabled(sosw_context(FUNC1)) is False
    assert manager(CUSTOM_CONFIG).any_events_rules_enabled(sosw_context(FUNC2)) is True
    # auto_spawning from the config (copies: sosw's shared CUSTOM_CONFIG stays as it was)
    off = {**CUSTOM_CONFIG, "auto_spawning": False}
    assert manager(off).any_events_rules_enabled(sosw_context(FUNC1)) is False
    on = {**CUSTOM_CONFIG, "auto_spawning": True}
    assert manager(on).any_events_rules_enabled(sosw_context(FUNC1)) is True


def test_spawn_sibling(env: SiblingsEnv) -> None:
    """Port of ``test_spawn_sibling``: with an enabled rule the sibling is invoked, once, with
    the payload JSON-dumped, as a ``DryRun`` (sosw's ``STAGE=test``).

    sosw mocked ``any_events_rules_enabled`` to True; here an ENABLED rule targets the
    function. sosw's context is a bare ``MagicMock()``: its ``spawn_sibling`` never reads the
    context once the rule check is mocked and invokes ``AWS_LAMBDA_FUNCTION_NAME`` (or
    ``'test_function'``). Ours invokes through ``context.invoked_function_arn``, so the mock
    gets that one attribute; its made-up request id and remaining-time method count as absent.
    What differs on purpose: the Invoke goes to the context's ARN, the event also carries our
    reserved ``__siblings__`` key, and the call returns a falsy ``SpawnResult`` (``dry_run``:
    nothing was started) where sosw returned ``None``.
    """
    env.rule("schedule")
    manager = env.manager({**CUSTOM_CONFIG, **STAGE_TEST})
    result = manager.spawn_sibling(mock_context(env.function_arn), payload={"rows": [1, 2]})
    assert [(target, kind) for target, kind, _ in env.invokes.calls] == [(env.function_arn, "DryRun")]
    assert only_payload(env) == {"rows": [1, 2]}
    assert not result and result.reason == "dry_run"


def test_spawn_sibling__no_rules_enabled(env: SiblingsEnv) -> None:
    """Port of ``test_spawn_sibling__no_rules_enabled``: without an enabled rule (and without
    ``force``) no sibling is invoked.

    sosw mocked ``any_events_rules_enabled`` to False; here the function has no rule at all.
    sosw returned ``None``; ours returns a falsy ``SpawnResult`` saying why.
    """
    manager = env.manager({**CUSTOM_CONFIG, **STAGE_TEST})
    result = manager.spawn_sibling(mock_context(env.function_arn))
    assert env.invoke_count() == 0
    assert not result and result.reason == "rules_disabled"


def test_spawn_sibling__force_skips_rules_check(env: SiblingsEnv) -> None:
    """Port of ``test_spawn_sibling__force_skips_rules_check``: ``force=True`` skips the rule
    check, and a JSON string payload reaches the sibling as it was.

    sosw asserted its mocked ``any_events_rules_enabled`` was not called; here no EventBridge
    call reaches the server at all. sosw sent the string byte for byte; ours decodes it to
    add the reserved ``__siblings__`` key, so the sibling receives the same JSON object.
    """
    manager = env.manager({**CUSTOM_CONFIG, **STAGE_TEST})
    context = mock_context(env.function_arn)
    result = manager.spawn_sibling(context, payload='{"file_name": "some.txt"}', force=True)
    assert env.recorder.count("events") == 0
    assert [kind for _, kind, _ in env.invokes.calls] == ["DryRun"]
    assert only_payload(env) == {"file_name": "some.txt"}
    assert result.reason == "dry_run" and result.forced


def test_get_approximate_concurrent_executions__no_datapoints(
    env: SiblingsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Port of ``test_get_approximate_concurrent_executions__no_datapoints``: without
    datapoints (no recent invocations) the estimate is 0, after one CloudWatch call.

    sosw asserted one ``GetMetricStatistics`` call (the Duration query; the Invocations query
    is skipped when it is empty); ours makes one ``GetMetricData`` call for both metrics. The
    function name comes from ``AWS_LAMBDA_FUNCTION_NAME`` as in the first case.
    """
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "test_function")
    manager = env.manager(CUSTOM_CONFIG)
    assert manager.get_approximate_concurrent_executions() == 0
    assert env.recorder.count("monitoring", "GetMetricData") == 1
    assert env.recorder.count("monitoring", "GetMetricStatistics") == 0
