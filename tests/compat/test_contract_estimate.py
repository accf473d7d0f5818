"""The sosw contract, rows C31-C40: ``get_approximate_concurrent_executions``, the stats, and
the event a sibling receives.

One test per row of the contract table (docs/reference.md) (see ``test_contract_setup.py``).
"""

from __future__ import annotations

import pytest

from siblings import EstimateUnavailable, SiblingsManager, load_payload
from tests.compat.shapes import without_metadata
from tests.helpers import closed_port_url, put_lambda_metrics
from tests.integration.siblings.support import FakeContext, SiblingsEnv


def gmd(env: SiblingsEnv) -> int:
    """GetMetricData calls seen by the server."""
    return env.recorder.count("monitoring", "GetMetricData")


def test_c31_littles_law_and_zero_without_data(env: SiblingsEnv) -> None:
    """C31: ``ceil(invocations * avg duration ms / (1000 * 60 * minutes_back))``, 0 without
    datapoints: sosw's formula (its own cases are in ``test_sosw_unit_cases.py``)."""
    put_lambda_metrics(env.client("cloudwatch"), "worker", [(600, 1000), (300, 4000)], clock=env.clock)
    manager = env.manager()
    assert manager.get_approximate_concurrent_executions(name="worker") == 6  # 1.8 M ms / 300 s
    assert manager.get_approximate_concurrent_executions(name="idle") == 0


def test_c32_minutes_back_defaults_to_five_whole_minutes(env: SiblingsEnv) -> None:
    """C32: the default window is 5 minutes, as in sosw, counted in whole minutes."""
    buckets = [(1200, 1000), (60, 1000), (60, 1000), (60, 1000), (60, 1000)]
    put_lambda_metrics(env.client("cloudwatch"), "worker", buckets, clock=env.clock)
    manager = env.manager()
    assert manager.get_approximate_concurrent_executions(name="worker") == 5  # 1.44 M ms / 300 s
    assert manager.get_approximate_concurrent_executions(1, "worker") == 1  # the last minute


def test_c33_the_default_name(env: SiblingsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """C33: ``AWS_LAMBDA_FUNCTION_NAME``, else the function of the last context the manager
    saw, else ``ValueError`` (sosw measured a function called ``test_function``: always 0)."""
    put_lambda_metrics(env.client("cloudwatch"), "worker", [(600, 1000)], clock=env.clock)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    manager = env.manager()
    with pytest.raises(ValueError, match="name is required"):
        manager.get_approximate_concurrent_executions()
    assert gmd(env) == 0
    manager.any_events_rules_enabled(env.context())
    assert manager.get_approximate_concurrent_executions() == 2
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "idle")
    assert env.manager().get_approximate_concurrent_executions() == 0


def test_c34_names_arns_and_qualifiers(env: SiblingsEnv) -> None:
    """C34: sosw used ``name`` as the ``FunctionName`` dimension (an ARN found nothing); ours
    takes a name, an ARN, or ``name:qualifier`` (the ``Resource`` dimension)."""
    cloudwatch = env.client("cloudwatch")
    put_lambda_metrics(cloudwatch, "worker", [(600, 1000)], clock=env.clock)
    put_lambda_metrics(cloudwatch, "worker", [(1800, 1000)], qualifier="live", clock=env.clock)
    manager = env.manager()
    assert manager.get_approximate_concurrent_executions(1, env.function_arn) == 10
    assert manager.get_approximate_concurrent_executions(1, "worker:live") == 30
    assert manager.get_approximate_concurrent_executions(1, f"{env.function_arn}:live") == 30


def test_c35_one_getmetricdata_per_function_per_cache_window(env: SiblingsEnv) -> None:
    """C35: sosw made two ``GetMetricStatistics`` calls per estimate; ours one
    ``GetMetricData`` per function per ``cache_ttl_seconds``, shared through the table."""
    put_lambda_metrics(env.client("cloudwatch"), "worker", [(600, 1000)] * 5, clock=env.clock)
    values = [env.manager().get_approximate_concurrent_executions(name="worker") for _ in range(3)]
    assert values == [10, 10, 10]
    assert gmd(env) == 1
    assert env.recorder.count("monitoring", "GetMetricStatistics") == 0


def test_c36_cloudwatch_failing_raises_estimate_unavailable() -> None:
    """C36: sosw let CloudWatch's error through; ours raises ``EstimateUnavailable`` when no
    value is cached (a stale one is served otherwise)."""
    manager = SiblingsManager({"endpoint_url": closed_port_url(), "region_name": "us-east-1"})
    with pytest.raises(EstimateUnavailable):
        manager.get_approximate_concurrent_executions(name="worker")


@pytest.mark.parametrize(("minutes_back", "error"), [(0, ValueError), (1441, ValueError), ("5", TypeError)])
def test_c37_minutes_back_is_checked(env: SiblingsEnv, minutes_back: object, error: type) -> None:
    """C37: ``minutes_back`` is an int in 1..1440, checked before any call (sosw sent a zero
    period to CloudWatch)."""
    with pytest.raises(error, match="minutes_back"):
        env.manager().get_approximate_concurrent_executions(minutes_back, "worker")  # type: ignore[arg-type]
    assert env.recorder.count() == 0


def test_c38_get_stats_counts_every_decision(env: SiblingsEnv) -> None:
    """C38: sosw's manager counted nothing; ours counts each decision by reason.
    ``recursive`` is accepted as sosw's ``Processor`` passes it."""
    env.rule("schedule")
    manager = env.manager()
    manager.spawn_sibling(env.context())
    manager.spawn_sibling(env.context(qualifier="prod"))
    stats = manager.get_stats(recursive=True)
    assert stats["spawned"] == 1 and stats["refused"] == 1 and stats["refused_rules_disabled"] == 1
    assert manager.get_stats(recursive=False) == stats == manager.stats


def test_c39_reset_stats_zeroes(env: SiblingsEnv) -> None:
    """C39: sosw's ``reset_stats`` moved counters to ``total_<name>``; ours zeroes them."""
    env.rule("schedule")
    manager = env.manager()
    manager.spawn_sibling(env.context())
    manager.reset_stats(recursive=True)
    assert not any(manager.get_stats().values())
    assert not any(key.startswith("total_") for key in manager.get_stats())


def test_c40_load_payload_gives_back_the_payload(env: SiblingsEnv) -> None:
    """C40: sosw's sibling received the payload as its event; ours receives one more key,
    which ``load_payload`` strips (also placing the execution in its chain)."""
    env.rule("schedule")
    manager = env.manager()
    result = manager.spawn_sibling(env.context(), payload={"cursor": 3})
    (event,) = env.invokes.events
    assert "__siblings__" in event and without_metadata(event) == {"cursor": 3}
    child = FakeContext(invoked_function_arn=env.function_arn, aws_request_id=str(result.request_id))
    assert manager.load_payload(event, child) == {"cursor": 3}
    assert load_payload({"cursor": 3}) == {"cursor": 3}  # not a sibling's event: as it is
    assert manager.spawn_sibling(child).generation == 2
