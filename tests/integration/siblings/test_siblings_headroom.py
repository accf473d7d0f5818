"""The concurrency signal and the account headroom guard, on the moto server over HTTP.

Metric data for ``ConcurrentExecutions`` is put per function and account-wide into
``AWS/Lambda``; the account limit comes from the embedded server's ``GetAccountSettings``
(moto 5.2.5 has none). moto answers the account query from every series of the metric, so the
account figures below are always at least the function's (as on AWS, where the account's
concurrency includes the function's).
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from estimator import ConcurrencyEstimator
from siblings.config import SiblingsConfig
from siblings.local.provision import create_function
from tests.conftest import Aws
from tests.helpers import put_concurrency_metrics, put_lambda_metrics
from tests.integration.siblings.support import FUNCTION, SiblingsEnv


def counts(env: SiblingsEnv) -> dict[str, int]:
    return {
        "GetMetricData": env.recorder.count("monitoring", "GetMetricData"),
        "GetAccountSettings": env.recorder.count("lambda", "GetAccountSettings"),
        "GetFunctionConcurrency": env.recorder.count("lambda", "GetFunctionConcurrency"),
    }


@pytest.fixture
def bursty(env: SiblingsEnv) -> SiblingsEnv:
    """Little's law 2 (60 x 2 s per minute), a burst of 6 in one minute, the account at 45."""
    env.rule("schedule")
    cloudwatch = env.client("cloudwatch")
    put_lambda_metrics(cloudwatch, FUNCTION, [(60, 2000)] * 5, clock=env.clock)
    put_concurrency_metrics(cloudwatch, FUNCTION, [1, 2, 6, 2, 1], clock=env.clock)
    put_concurrency_metrics(cloudwatch, None, [30, 45, 40, 38, 35], clock=env.clock)
    env.recorder.reset()
    return env


@pytest.mark.parametrize(
    ("signal", "spawned"), [("littles_law", True), ("observed_peak", False), ("max", False)]
)
def test_concurrency_signal_chooses_what_max_concurrency_is_compared_with(
    bursty: SiblingsEnv, signal: str, spawned: bool
) -> None:
    result = bursty.manager({"max_concurrency": 5, "concurrency_signal": signal}).spawn_sibling(
        bursty.context()
    )
    assert bool(result) is spawned, result
    seen = result.guards["concurrency"]
    assert (seen["littles_law"], seen["observed_peak"], seen["signal"]) == (2, 6, signal)
    if not spawned:
        assert result.reason == "max_concurrency" and seen["estimate"] == 6
    assert counts(bursty)["GetMetricData"] == 1


def test_signal_default_is_littles_law_and_is_read_from_the_environment(
    bursty: SiblingsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert bursty.manager().config.concurrency_signal == "littles_law"
    monkeypatch.setenv("SIBLINGS_CONCURRENCY_SIGNAL", "Observed_Peak")
    monkeypatch.setenv("SIBLINGS_MIN_ACCOUNT_HEADROOM", "100")
    config = SiblingsConfig.from_env()
    assert (config.concurrency_signal, config.min_account_headroom) == ("observed_peak", 100)
    with pytest.raises(ValueError, match="concurrency_signal"):
        bursty.manager({"concurrency_signal": "average"})
    with pytest.raises(ValueError, match="min_account_headroom"):
        bursty.manager({"min_account_headroom": -1})


def test_account_headroom_refuses_near_the_account_limit_even_forced(
    aws: Aws, bursty: SiblingsEnv
) -> None:
    aws.server.account_settings.concurrency_limit = 50  # the account at 45: headroom 5
    tight = bursty.manager({"min_account_headroom": 5})
    refused = tight.spawn_sibling(bursty.context())
    assert not refused and refused.reason == "account_headroom" and refused.refused
    seen = refused.guards["account_headroom"]
    assert seen["headroom"] == 5 and seen["limited_by"] == "account"
    assert (seen["account_concurrency"], seen["account_limit"]) == (45, 50)
    assert "min_account_headroom=5" in refused.detail
    # force skips the function's own guards, not the one protecting the account's others.
    forced = tight.spawn_sibling(bursty.context(), force=True)
    assert not forced and forced.reason == "account_headroom", forced
    assert forced.guards["eventbridge"] == {"skipped": "force"}
    assert forced.guards["account_headroom"]["headroom"] == 5
    roomy = bursty.manager({"min_account_headroom": 4}).spawn_sibling(bursty.context())
    assert roomy, roomy
    assert tight.stats["refused_account_headroom"] == 2
    # One refresh of the estimate, one GetAccountSettings, one GetFunctionConcurrency: shared
    # by both managers through the table.
    assert counts(bursty) == {"GetMetricData": 1, "GetAccountSettings": 1, "GetFunctionConcurrency": 1}


def test_reserved_concurrency_is_the_tighter_limit(bursty: SiblingsEnv) -> None:
    lam = bursty.client("lambda")
    lam.put_function_concurrency(FunctionName=FUNCTION, ReservedConcurrentExecutions=8)
    manager = bursty.manager({"min_account_headroom": 2})
    refused = manager.spawn_sibling(bursty.context())
    seen = refused.guards["account_headroom"]
    # The function: max(Little's law 2, observed peak 6) = 6 of 8 reserved; the account: 45 of
    # 1,000 (the embedded server's default). The tighter is the function's.
    assert refused.reason == "account_headroom", refused
    assert (seen["headroom"], seen["limited_by"], seen["reserved_concurrency"]) == (
        2, "reserved_concurrency", 8
    )
    assert seen["account_limit"] == 1000
    other = bursty.manager({"min_account_headroom": 1}).spawn_sibling(bursty.context())
    assert other and other.guards["account_headroom"]["headroom"] == 2


def test_many_spawns_across_containers_cost_one_call_of_each(bursty: SiblingsEnv) -> None:
    managers = [bursty.manager({"min_account_headroom": 10}) for _ in range(10)]
    for manager in managers:
        for _ in range(3):
            assert manager.spawn_sibling(bursty.context())
    assert counts(bursty) == {"GetMetricData": 1, "GetAccountSettings": 1, "GetFunctionConcurrency": 1}


class FailingLambda:
    """A Lambda client whose control-plane calls fail (as with a missing IAM permission)."""

    def get_account_settings(self, **_: Any) -> dict[str, Any]:
        """Raise AccessDenied."""
        error: Any = {"Error": {"Code": "AccessDeniedException", "Message": "no"}}
        raise ClientError(error, "GetAccountSettings")

    get_function_concurrency = get_account_settings


@pytest.mark.parametrize(("policy", "spawned"), [("refuse", False), ("allow", True)])
def test_an_unanswerable_headroom_follows_on_guard_error(
    bursty: SiblingsEnv, policy: str, spawned: bool
) -> None:
    config = bursty.config(min_account_headroom=1, on_guard_error=policy)
    estimator = ConcurrencyEstimator(
        config, session=bursty.session, lambda_client=FailingLambda(), clock=bursty.clock
    )
    manager = bursty.manager(config=config, estimator=estimator)
    result = manager.spawn_sibling(bursty.context())
    assert bool(result) is spawned
    assert "AccessDenied" in result.guards["account_headroom"]["error"]
    if not spawned:
        assert result.reason == "guard_error"


def test_headroom_off_by_default_makes_no_control_plane_call(bursty: SiblingsEnv) -> None:
    assert bursty.manager().spawn_sibling(bursty.context())
    assert counts(bursty) == {"GetMetricData": 0, "GetAccountSettings": 0, "GetFunctionConcurrency": 0}


def test_idle_reserved_concurrency_of_another_function_is_not_headroom(
    aws: Aws, bursty: SiblingsEnv
) -> None:
    # The account runs 45 executions of its 500, and another function holds 400 reserved,
    # idle: on-demand functions can use only 500 - (45 + 400) = 55 more, which Lambda
    # publishes as ClaimedAccountConcurrency 445. Limit minus running (455) is not the room.
    aws.server.account_settings.concurrency_limit = 500
    lam = bursty.client("lambda")
    create_function(lam, bursty.client("iam"), "idle-reserved")
    lam.put_function_concurrency(FunctionName="idle-reserved", ReservedConcurrentExecutions=400)
    put_concurrency_metrics(bursty.client("cloudwatch"), None, [445] * 5,
                            metric="ClaimedAccountConcurrency", clock=bursty.clock)
    refused = bursty.manager({"min_account_headroom": 100}).spawn_sibling(bursty.context())
    assert refused.reason == "account_headroom", refused
    seen = refused.guards["account_headroom"]
    assert (seen["headroom"], seen["claimed_concurrency"], seen["account_concurrency"]) == (55, 445, 45)
    assert counts(bursty)["GetMetricData"] == 1  # the claim rode in the estimate's own call
