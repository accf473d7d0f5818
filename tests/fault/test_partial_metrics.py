"""CloudWatch partial answers are failures: never an estimate of 0 (issue: guards fail closed)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from estimator import ConcurrencyEstimator, EstimateUnavailable, ensure_table
from estimator.clock import ManualClock
from tests.conftest import Aws
from tests.helpers import local_config, put_lambda_metrics


class DegradingCloudWatch:
    """The real moto client, whose answers a test can mark partial as CloudWatch may."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.status: str | None = None
        self.calls = 0

    def get_metric_data(self, **kwargs: Any) -> Any:
        self.calls += 1
        response = self.client.get_metric_data(**kwargs)
        if self.status is not None:
            for result in response["MetricDataResults"]:
                result["StatusCode"] = self.status
                result["Values"], result["Timestamps"] = [], []
            response["Messages"] = [{"Code": "MaxQueryTimeRangeExceed", "Value": "too much data"}]
        return response


@pytest.mark.parametrize("status", ["PartialData", "InternalError", "Forbidden"])
def test_a_partial_answer_serves_the_stale_value_not_zero(
    aws: Aws, status: str, caplog: pytest.LogCaptureFixture, clock: ManualClock
) -> None:
    ensure_table(local_config(aws.endpoint_url), aws.session)
    put_lambda_metrics(aws.client("cloudwatch"), "worker", [(600, 1000)] * 5, clock=clock)
    cloudwatch = DegradingCloudWatch(aws.client("cloudwatch"))
    config = local_config(aws.endpoint_url, cache_ttl_seconds=0.3, error_backoff_seconds=0.0)
    estimator = ConcurrencyEstimator(
        config, session=aws.session, cloudwatch_client=cloudwatch, clock=clock
    )
    assert estimator.estimate("worker").value == 10
    clock.advance(0.35)  # past the TTL
    cloudwatch.status = status
    with caplog.at_level(logging.WARNING, logger="estimator"):
        served = estimator.estimate("worker")
    assert (served.value, served.stale) == (10, True)
    assert cloudwatch.calls == 2
    assert any("too much data" in record.getMessage() for record in caplog.records)


def test_a_partial_answer_with_nothing_cached_is_unavailable(aws: Aws, clock: ManualClock) -> None:
    ensure_table(local_config(aws.endpoint_url), aws.session)
    put_lambda_metrics(aws.client("cloudwatch"), "worker", [(600, 1000)] * 5, clock=clock)
    cloudwatch = DegradingCloudWatch(aws.client("cloudwatch"))
    cloudwatch.status = "PartialData"
    estimator = ConcurrencyEstimator(
        local_config(aws.endpoint_url), session=aws.session, cloudwatch_client=cloudwatch, clock=clock
    )
    with pytest.raises(EstimateUnavailable, match="StatusCode 'PartialData'"):
        estimator.estimate("worker")
    # Nothing was cached as fresh: once CloudWatch answers fully, the next caller refreshes.
    cloudwatch.status = None
    other = ConcurrencyEstimator(
        local_config(aws.endpoint_url, lease_wait_seconds=0.2),
        session=aws.session,
        cloudwatch_client=cloudwatch,
        clock=clock,
    )
    with pytest.raises(EstimateUnavailable):  # within the back-off: the failure is shared
        other.estimate("worker")
    clock.advance(5.1)  # the fleet-wide back-off after the failed refresh (error_backoff_seconds)
    assert other.estimate("worker").value == 10
