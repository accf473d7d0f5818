"""The estimator against a real moto server over HTTP, calls counted at the server."""

from __future__ import annotations

import json
import math
import threading
from typing import Any

import pytest

from estimator import ConcurrencyEstimator, EstimateUnavailable, ensure_table, estimate_concurrency
from estimator.clock import Clock, ManualClock
from estimator.store import DynamoStore
from tests.conftest import Aws
from tests.helpers import WaitingThreadsClock, local_config, minute_clock, put_lambda_metrics, scoped


def make(aws: Aws, clock: Clock, **overrides: Any) -> ConcurrencyEstimator:
    config = local_config(aws.endpoint_url, **overrides)
    return ConcurrencyEstimator(config, session=aws.session, clock=clock)


# Many threads share one server (and ten connections a client): a loaded machine answers slowly,
# and a DynamoDB timeout would open the breaker and send containers to CloudWatch. Timeouts are
# not what these tests are about.
PATIENT = {"dynamodb_timeout_seconds": 15.0}


def gmd(aws: Aws) -> int:
    return aws.recorder.count("monitoring", "GetMetricData")


def test_littles_law_from_published_metrics(aws: Aws, table: str, clock: ManualClock) -> None:
    buckets = [(120, 1500), (60, 3000), (300, 500), (0, 0), (90, 2000)]
    put_lambda_metrics(aws.client("cloudwatch"), "worker", [b for b in buckets if b[0]], clock=clock)
    estimate = make(aws, clock).estimate("worker")
    invocations = sum(c for c, _ in buckets)
    avg = sum(c * d for c, d in buckets) / invocations
    assert estimate.invocations == invocations
    assert estimate.avg_duration_ms == pytest.approx(avg)
    assert estimate.value == math.ceil(invocations * avg / (1000 * 300))
    assert estimate.source == "cloudwatch" and not estimate.stale
    assert gmd(aws) == 1


def test_no_data_gives_zero(aws: Aws, table: str, clock: ManualClock) -> None:
    estimate = make(aws, clock).estimate("idle-function")
    assert (estimate.value, estimate.invocations, estimate.avg_duration_ms) == (0, 0, None)


def test_qualifier_uses_the_resource_dimension(aws: Aws, table: str, clock: ManualClock) -> None:
    cloudwatch = aws.client("cloudwatch")
    put_lambda_metrics(cloudwatch, "worker", [(600, 2000)], qualifier="live", clock=clock)
    estimator = make(aws, clock, minutes_back=1)
    assert estimator.estimate("worker", qualifier="live").value == 20
    arn = "arn:aws:lambda:us-east-1:123456789012:function:worker:live"
    assert estimator.estimate(arn).function_name == "worker:live"


def test_sources_memory_then_dynamodb_for_another_container(aws: Aws, table: str, clock: ManualClock) -> None:
    put_lambda_metrics(aws.client("cloudwatch"), "worker", [(60, 1000)] * 5, clock=clock)
    first = make(aws, clock)
    assert first.estimate("worker").source == "cloudwatch"
    assert first.estimate("worker").source == "memory"
    other = make(aws, clock)  # a separate warm container: its own memory, the same table
    shared = other.estimate("worker")
    assert shared.source == "dynamodb" and shared.value == 1
    assert gmd(aws) == 1


def test_memory_only_mode_skips_dynamodb(aws: Aws, table: str, clock: ManualClock) -> None:
    estimator = make(aws, clock, use_dynamodb=False)
    estimator.estimate("worker")
    estimator.estimate("worker")
    assert gmd(aws) == 1
    assert aws.recorder.count("dynamodb") == 0


def test_no_cache_always_asks_cloudwatch(aws: Aws, table: str, clock: ManualClock) -> None:
    estimator = make(aws, clock)
    for _ in range(3):
        assert estimator.estimate("worker", use_cache=False).source == "cloudwatch"
    assert gmd(aws) == 3


def test_estimate_many_batches_calls_and_shares_the_values(aws: Aws, table: str, clock: ManualClock) -> None:
    names = [f"fn-{i}" for i in range(260)]
    put_lambda_metrics(aws.client("cloudwatch"), "fn-7", [(600, 1000)], clock=clock)
    estimates = make(aws, clock, minutes_back=1).estimate_many(names)
    assert set(estimates) == set(names)
    assert estimates["fn-7"].value == 10
    assert estimates["fn-8"].value == 0
    assert gmd(aws) == 2
    again = make(aws, clock, minutes_back=1).estimate_many(names[:5])
    assert {e.source for e in again.values()} == {"dynamodb"}
    assert gmd(aws) == 2


def test_standalone_function(aws: Aws, table: str) -> None:
    # estimate_concurrency builds its own estimator on the real clock: the data waits for a minute
    # it can be read in (tests.helpers._stamps).
    put_lambda_metrics(aws.client("cloudwatch"), "script-fn", [(300, 1000)])
    value = estimate_concurrency(
        "script-fn", minutes_back=1, endpoint_url=aws.endpoint_url, region_name="us-east-1"
    )
    assert value == 5


def test_fifty_containers_one_window_one_cloudwatch_call(aws: Aws, table: str) -> None:
    # 49 containers wait on the lease winner's real HTTP refresh: their waits must not run out
    # virtual time faster than that refresh runs, so their sleeps only yield.
    clock = WaitingThreadsClock(minute_clock().now())
    put_lambda_metrics(aws.client("cloudwatch"), "hot", [(6000, 1000)] * 5, clock=clock)
    estimators = [make(aws, clock, **PATIENT) for _ in range(50)]
    values: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(50)

    def run(estimator: ConcurrencyEstimator) -> None:
        start.wait()
        for _ in range(20):
            value = estimator.estimate("hot").value
            with lock:
                values.append(value)

    threads = [threading.Thread(target=run, args=(e,)) for e in estimators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(values) == 1000 and set(values) == {100}
    assert gmd(aws) == 1


def test_three_ttl_windows_at_most_four_calls(aws: Aws, table: str) -> None:
    clock = WaitingThreadsClock(minute_clock().now())  # waits overlap (see the test above)
    put_lambda_metrics(aws.client("cloudwatch"), "hot", [(600, 1000)] * 5, clock=clock)
    ttl = 1.0
    estimators = [
        make(aws, clock, cache_ttl_seconds=ttl, error_backoff_seconds=0.2, **PATIENT) for _ in range(20)
    ]
    sources: list[str] = []
    lock = threading.Lock()
    # Rounds of 0.05 virtual seconds over three TTL windows: in each, all 20 containers read at
    # once; the clock moves only between rounds, so a slow machine changes nothing.
    rounds = int(3 * ttl / 0.05)
    start, done = threading.Barrier(21), threading.Barrier(21)

    def run(estimator: ConcurrencyEstimator) -> None:
        for _ in range(rounds):
            start.wait()
            source = estimator.estimate("hot").source
            with lock:
                sources.append(source)
            done.wait()

    threads = [threading.Thread(target=run, args=(e,)) for e in estimators]
    for thread in threads:
        thread.start()
    for _ in range(rounds):
        start.wait()
        done.wait()
        clock.advance(0.05)
    for thread in threads:
        thread.join()
    assert len(sources) == 20 * rounds
    assert 2 <= gmd(aws) <= 4, f"{gmd(aws)} GetMetricData calls over 3 windows"
    assert sources.count("cloudwatch") == gmd(aws)


def _raw_put(aws: Aws, item: dict[str, Any]) -> None:
    aws.client("dynamodb").put_item(TableName="lambda-siblings", Item=item)


def test_expired_item_still_returned_is_not_fresh(aws: Aws, table: str, clock: ManualClock) -> None:
    now = clock.now()
    key = f"estimate#{scoped('worker')}#5"
    value = {"value": {"value": 999, "invocations": 1.0, "avg_duration_ms": 1.0, "period_s": 300},
             "fetched_at": now - 600}
    # Past its freshness, inside its DynamoDB TTL: usable only as a stale fallback.
    _raw_put(aws, {"pk": {"S": key}, "value": {"S": json.dumps(value)},
                   "fresh_until": {"N": str(now - 540)}, "ttl": {"N": str(int(now + 3000))}})
    estimate = make(aws, clock).estimate("worker")
    assert estimate.source == "cloudwatch" and estimate.value == 0
    # Past its TTL but not yet deleted by DynamoDB, even with a "fresh" stamp: never served.
    _raw_put(aws, {"pk": {"S": key}, "value": {"S": json.dumps(value)},
                   "fresh_until": {"N": str(now + 60)}, "ttl": {"N": str(int(now - 10))}})
    estimate = make(aws, clock).estimate("worker")
    assert estimate.source == "cloudwatch" and estimate.value == 0
    assert gmd(aws) == 2


@pytest.mark.parametrize(
    "item",
    [
        {"value": {"N": "3"}, "fresh_until": {"S": "soon"}},
        {"value": {"S": "not json"}, "fresh_until": {"N": "9999999999"}},
        {"value": {"S": json.dumps({"value": {"foreign": True}, "fetched_at": 1})},
         "fresh_until": {"N": "9999999999"}},
        {"value": {"S": json.dumps({"value": {"value": "1", "invocations": 1, "period_s": 300},
                                    "fetched_at": 1})}, "fresh_until": {"N": "9999999999"}},
        {"lease_until": {"S": "forever"}},
    ],
)
def test_corrupt_or_foreign_item_is_ignored_and_overwritten(
    aws: Aws, table: str, item: dict[str, Any], clock: ManualClock
) -> None:
    _raw_put(aws, {"pk": {"S": f"estimate#{scoped('worker')}#5"}, **item})
    estimate = make(aws, clock).estimate("worker")
    assert estimate.source == "cloudwatch" and estimate.value == 0
    stored = DynamoStore(local_config(aws.endpoint_url), aws.session).get(f"estimate#{scoped('worker')}#5")
    assert stored is not None and not stored.corrupt
    assert stored.value is not None and stored.value["value"]["value"] == 0


def test_dead_leaseholder_is_replaced_after_its_lease_expires(
    aws: Aws, table: str, clock: ManualClock
) -> None:
    now = clock.now()
    _raw_put(aws, {"pk": {"S": f"estimate#{scoped('worker')}#5"}, "lease_owner": {"S": "dead-container"},
                   "lease_until": {"N": str(now + 1.0)}})
    estimate = make(aws, clock, lease_wait_seconds=5).estimate("worker")
    assert estimate.source == "cloudwatch"
    assert clock.now() >= now + 1.0  # it could only refresh once the lease had run out
    stored = DynamoStore(local_config(aws.endpoint_url), aws.session).get(f"estimate#{scoped('worker')}#5")
    assert stored is not None and stored.lease_owner is None and stored.value is not None
    assert gmd(aws) == 1


def test_live_lease_and_no_value_times_out_as_unavailable(aws: Aws, table: str, clock: ManualClock) -> None:
    now = clock.now()
    _raw_put(aws, {"pk": {"S": f"estimate#{scoped('worker')}#5"}, "lease_owner": {"S": "busy"},
                   "lease_until": {"N": str(now + 60)}})
    with pytest.raises(EstimateUnavailable, match="timed out waiting"):
        make(aws, clock, lease_wait_seconds=0.3).estimate("worker")
    assert gmd(aws) == 0


def test_stale_value_is_served_while_another_execution_refreshes(
    aws: Aws, table: str, clock: ManualClock
) -> None:
    put_lambda_metrics(aws.client("cloudwatch"), "worker", [(600, 1000)] * 5, clock=clock)
    make(aws, clock, cache_ttl_seconds=0.5).estimate("worker")
    clock.advance(0.6)
    store = DynamoStore(local_config(aws.endpoint_url), aws.session)
    assert store.try_lease(f"estimate#{scoped('worker')}#5", "someone-else", clock.now(), 30)
    estimate = make(aws, clock, cache_ttl_seconds=0.5).estimate("worker")
    assert estimate.stale and estimate.source == "dynamodb" and estimate.value == 10
    assert gmd(aws) == 1


def test_ensure_table_is_idempotent_and_enables_ttl(aws: Aws) -> None:
    config = local_config(aws.endpoint_url, table_name="fresh-table")
    assert ensure_table(config, aws.session) is True
    assert ensure_table(config, aws.session) is False
    ttl = aws.client("dynamodb").describe_time_to_live(TableName="fresh-table")
    assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"


def test_a_steady_load_reads_itself_when_the_newest_minute_is_unpublished(
    aws: Aws, table: str, clock: ManualClock
) -> None:
    # 600 invocations of 2 s a minute: 20 executions. The minute just closed has no data yet
    # (Lambda publishes it when its invocations end); counting it would read 4/5 of the load.
    put_lambda_metrics(aws.client("cloudwatch"), "steady", [(600, 2000)] * 5, clock=clock)
    assert make(aws, clock).estimate("steady").value == 20
    late = make(aws, clock, publication_delay_seconds=0)
    assert late.estimate("steady", use_cache=False).value == 16
