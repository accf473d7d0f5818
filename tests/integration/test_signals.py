"""Observed peak, account concurrency and the limits, against the moto server over HTTP.

Every figure is counted at the server. Which moto behaviour each test relies on is said where it
matters: moto answers a GetMetricData query *without* dimensions from every series of that metric
(real CloudWatch keeps the account-level series apart), so the account query uses ``Maximum``;
and moto 5.2.5 has no ``GetAccountSettings``, which the embedded server answers itself
(:mod:`siblings.local.account_settings`).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest

from estimator import ConcurrencyEstimator, ConcurrencySignal
from estimator.clock import Clock, ManualClock
from estimator.keys import estimate_key
from estimator.store import DynamoStore
from estimator.validation import parse_function
from siblings.local.provision import create_function
from tests.conftest import Aws
from tests.helpers import (
    WaitingThreadsClock,
    local_config,
    minute_clock,
    put_concurrency_metrics,
    put_lambda_metrics,
)


def make(aws: Aws, clock: Clock, **overrides: Any) -> ConcurrencyEstimator:
    config = local_config(aws.endpoint_url, **overrides)
    return ConcurrencyEstimator(config, session=aws.session, clock=clock)


def calls(aws: Aws, action: str) -> int:
    service = "monitoring" if action == "GetMetricData" else "lambda"
    return aws.recorder.count(service, action)


def test_observed_peak_and_account_concurrency_ride_in_the_one_call(
    aws: Aws, table: str, clock: ManualClock
) -> None:
    cloudwatch = aws.client("cloudwatch")
    buckets = [(120, 1500), (60, 3000), (300, 500)]
    put_lambda_metrics(cloudwatch, "worker", buckets, clock=clock)
    put_concurrency_metrics(cloudwatch, "worker", [3, 9, 4], clock=clock)
    put_concurrency_metrics(cloudwatch, None, [20, 41, 30], clock=clock)  # the account-wide series
    estimate = make(aws, clock, minutes_back=3).estimate("worker")
    invocations = sum(c for c, _ in buckets)
    avg = sum(c * d for c, d in buckets) / invocations
    assert estimate.value == math.ceil(invocations * avg / (1000 * 180))  # Little's law, unchanged
    assert estimate.observed_peak == 9
    # moto: Maximum over the account series and every function series, max(41, 9); AWS: 41.
    assert estimate.account_concurrency == 41
    assert calls(aws, "GetMetricData") == 1


def test_signals_choose_the_concurrency(aws: Aws, table: str, clock: ManualClock) -> None:
    cloudwatch = aws.client("cloudwatch")
    put_lambda_metrics(cloudwatch, "bursty", [(60, 2000)] * 5, clock=clock)  # Little's law: 2
    put_concurrency_metrics(cloudwatch, "bursty", [1, 1, 6, 1, 1], clock=clock)  # a burst Little's law hides
    estimate = make(aws, clock).estimate("bursty")
    assert estimate.value == 2 and estimate.observed_peak == 6
    assert estimate.concurrency() == estimate.concurrency("littles_law") == 2
    assert estimate.concurrency(ConcurrencySignal.OBSERVED_PEAK) == 6
    assert estimate.concurrency(ConcurrencySignal.MAX) == 6
    with pytest.raises(ValueError):
        estimate.concurrency("average")


def test_no_datapoints_give_none_and_the_signals_fall_back_to_littles_law(
    aws: Aws, table: str, clock: ManualClock
) -> None:
    put_lambda_metrics(aws.client("cloudwatch"), "quiet", [(60, 1000)] * 5, clock=clock)
    estimate = make(aws, clock).estimate("quiet")
    assert (estimate.value, estimate.observed_peak, estimate.account_concurrency) == (1, None, None)
    assert estimate.concurrency(ConcurrencySignal.OBSERVED_PEAK) == 1
    assert estimate.to_dict()["observed_peak"] is None


def test_moto_answers_the_account_query_from_function_series(
    aws: Aws, table: str, clock: ManualClock
) -> None:
    """The moto behaviour the account query is built for: with only a function's series,
    moto's account value is that function's peak (AWS would have no datapoint: None).
    Maximum keeps the figure a lower bound of the account's true concurrency either way."""
    put_concurrency_metrics(aws.client("cloudwatch"), "worker", [5, 7], clock=clock)
    assert make(aws, clock, minutes_back=2).estimate("worker").account_concurrency == 7


def test_the_shared_item_carries_the_new_signals_and_old_items_still_read(
    aws: Aws, table: str, clock: ManualClock
) -> None:
    cloudwatch = aws.client("cloudwatch")
    put_lambda_metrics(cloudwatch, "worker", [(60, 1000)] * 5, clock=clock)
    put_concurrency_metrics(cloudwatch, "worker", [2, 3], clock=clock)
    assert make(aws, clock).estimate("worker").observed_peak == 3
    other = make(aws, clock).estimate("worker")  # another container: from DynamoDB
    assert (other.source, other.observed_peak, other.account_concurrency) == ("dynamodb", 3, 3)
    assert calls(aws, "GetMetricData") == 1

    # An item written by the previous version: no observed_peak, no account_concurrency.
    config = local_config(aws.endpoint_url)
    store = DynamoStore(config, session=aws.session)
    # (Times within the bounds a reader believes: written now, fresh for the TTL.)
    now = clock.now()
    old = {"value": 4, "invocations": 1200.0, "avg_duration_ms": 1000.0, "period_s": 300}
    key = estimate_key(parse_function("legacy").at("us-east-1", "123456789012"), 5)
    store.put(key, {"value": old, "fetched_at": now}, fresh_until=now + 60, keep_until=now + 3600)
    legacy = make(aws, clock).estimate("legacy")
    assert (legacy.source, legacy.value, legacy.observed_peak) == ("dynamodb", 4, None)
    assert calls(aws, "GetMetricData") == 1

    # A foreign shape of a new field is corrupt: ignored and refreshed.
    bad = {**old, "observed_peak": "many"}
    store.put(key, {"value": bad, "fetched_at": now}, fresh_until=now + 60, keep_until=now + 3600)
    assert make(aws, clock).estimate("legacy").source == "cloudwatch"


def test_estimate_many_uses_one_call_per_166_functions(aws: Aws, table: str, clock: ManualClock) -> None:
    names = [f"fn-{i}" for i in range(167)]
    put_concurrency_metrics(aws.client("cloudwatch"), "fn-166", [4], clock=clock)
    estimates = make(aws, clock, minutes_back=1).estimate_many(names[:166])
    assert calls(aws, "GetMetricData") == 1
    assert estimates["fn-0"].observed_peak is None
    # Each call carries the account query: every item knows the account's concurrency.
    assert {e.account_concurrency for e in estimates.values()} == {4}
    more = make(aws, clock, minutes_back=1).estimate_many(names, use_cache=False)
    assert calls(aws, "GetMetricData") == 3  # 166 + 1: two calls
    assert more["fn-166"].observed_peak == 4


def test_limits_come_from_the_embedded_server_once_per_hour_fleet_wide(aws: Aws, table: str) -> None:
    clock = WaitingThreadsClock(minute_clock().now())  # 19 containers wait on one refresh
    lam = aws.client("lambda")
    create_function(lam, aws.client("iam"), "capped")
    create_function(lam, aws.client("iam"), "free")
    lam.put_function_concurrency(FunctionName="capped", ReservedConcurrentExecutions=25)
    aws.server.account_settings.concurrency_limit = 400
    aws.recorder.reset()
    # 20 threads on one server: a loaded machine answers slowly (timeouts are not tested here).
    containers = [make(aws, clock, dynamodb_timeout_seconds=15.0) for _ in range(20)]
    answers: list[tuple[int, int | None, int | None, int | None]] = []
    lock = threading.Lock()
    start = threading.Barrier(len(containers))

    def run(estimator: ConcurrencyEstimator) -> None:
        start.wait()
        for _ in range(5):
            limit = estimator.account_limit()
            capped = estimator.reserved_concurrency("capped").reserved
            free = estimator.reserved_concurrency("arn:aws:lambda:us-east-1:123456789012:function:free:live")
            with lock:
                unreserved = limit.unreserved_concurrent_executions
                answers.append((limit.concurrent_executions, unreserved, capped, free.reserved))

    threads = [threading.Thread(target=run, args=(c,)) for c in containers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(answers) == {(400, 375, 25, None)}
    assert calls(aws, "GetAccountSettings") == 1
    assert calls(aws, "GetFunctionConcurrency") == 2  # one per function, not per alias
    assert aws.server.account_settings.calls == 1
    assert make(aws, clock).account_limit().source == "dynamodb"  # a new container: the shared item


def test_get_account_settings_has_aws_response_shape(aws: Aws) -> None:
    lam = aws.client("lambda")
    create_function(lam, aws.client("iam"), "fn")
    settings = lam.get_account_settings()
    assert set(settings["AccountLimit"]) == {
        "TotalCodeSize", "CodeSizeUnzipped", "CodeSizeZipped",
        "ConcurrentExecutions", "UnreservedConcurrentExecutions",
    }
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 1000  # AWS's default quota
    assert settings["AccountUsage"]["FunctionCount"] == 1
    assert settings["AccountUsage"]["TotalCodeSize"] > 0
    aws.server.account_settings.concurrency_limit = 10
    assert lam.get_account_settings()["AccountLimit"]["ConcurrentExecutions"] == 10
    with pytest.raises(ValueError):
        aws.server.account_settings.concurrency_limit = -1
