"""The estimator when AWS fails: throttled or unreachable CloudWatch and DynamoDB, bad input."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig

from estimator import ConcurrencyEstimator, EstimateUnavailable, ensure_table
from estimator.clock import ManualClock
from estimator.store import DynamoStore
from siblings.local.quota import QuotaLayer
from siblings.local.server import LOCAL_CREDENTIALS, LOCAL_REGION, LocalAwsServer
from tests.conftest import Aws
from tests.helpers import closed_port_url, local_config, put_lambda_metrics, scoped, serve_behind


class SwitchableCloudWatch:
    """Delegates to a real client that a test can swap for a failing one."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get_metric_data(self, **kwargs: Any) -> Any:
        return self.client.get_metric_data(**kwargs)


def unreachable_cloudwatch() -> Any:
    return boto3.client(
        "cloudwatch",
        endpoint_url=closed_port_url(),
        region_name=LOCAL_REGION,
        config=BotoConfig(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=1),
        **LOCAL_CREDENTIALS,
    )


@pytest.fixture
def table(aws: Aws) -> None:
    ensure_table(local_config(aws.endpoint_url), aws.session)


def test_unreachable_cloudwatch_without_cache_is_a_documented_error(aws: Aws, table: None) -> None:
    estimator = ConcurrencyEstimator(
        local_config(aws.endpoint_url), session=aws.session, cloudwatch_client=unreachable_cloudwatch()
    )
    with pytest.raises(EstimateUnavailable) as caught:
        estimator.estimate("worker")
    assert caught.value.function_name == "worker"
    assert "EndpointConnectionError" in type(caught.value.cause).__name__ + str(caught.value)
    # Back-off: the same process does not hammer a failing CloudWatch.
    with pytest.raises(EstimateUnavailable):
        estimator.estimate("worker")


def test_failing_cloudwatch_serves_the_stale_value_from_memory(
    aws: Aws, table: None, clock: ManualClock
) -> None:
    put_lambda_metrics(aws.client("cloudwatch"), "worker", [(600, 1000)] * 5, clock=clock)
    cloudwatch = SwitchableCloudWatch(aws.client("cloudwatch"))
    estimator = ConcurrencyEstimator(
        local_config(aws.endpoint_url, cache_ttl_seconds=0.3, use_dynamodb=False),
        session=aws.session,
        cloudwatch_client=cloudwatch,
        clock=clock,
    )
    assert estimator.estimate("worker").value == 10
    cloudwatch.client = unreachable_cloudwatch()
    clock.advance(0.35)  # past the TTL
    stale = estimator.estimate("worker")
    assert stale.stale and stale.value == 10 and stale.source == "memory"


def test_failing_cloudwatch_serves_the_stale_value_from_dynamodb(
    aws: Aws, table: None, clock: ManualClock
) -> None:
    put_lambda_metrics(aws.client("cloudwatch"), "worker", [(600, 1000)] * 5, clock=clock)
    config = local_config(aws.endpoint_url, cache_ttl_seconds=0.3)
    ConcurrencyEstimator(config, session=aws.session, clock=clock).estimate("worker")
    clock.advance(0.35)  # past the TTL
    other = ConcurrencyEstimator(
        config, session=aws.session, cloudwatch_client=unreachable_cloudwatch(), clock=clock
    )
    stale = other.estimate("worker")
    assert stale.stale and stale.value == 10 and stale.source == "dynamodb"


def test_unreachable_dynamodb_degrades_to_memory_and_cloudwatch(
    aws: Aws, caplog: pytest.LogCaptureFixture, clock: ManualClock
) -> None:
    put_lambda_metrics(aws.client("cloudwatch"), "worker", [(600, 1000)] * 5, clock=clock)
    broken_store = DynamoStore(
        local_config(closed_port_url(), dynamodb_timeout_seconds=0.5), session=aws.session, clock=clock
    )
    estimator = ConcurrencyEstimator(
        local_config(aws.endpoint_url), session=aws.session, store=broken_store, clock=clock
    )
    with caplog.at_level(logging.WARNING, logger="estimator"):
        first = estimator.estimate("worker")
        second = estimator.estimate("worker")
    assert (first.source, first.value) == ("cloudwatch", 10)
    assert second.source == "memory"
    assert any("shared cache unavailable" in r.getMessage() for r in caplog.records)
    assert aws.recorder.count("monitoring", "GetMetricData") == 1


def test_missing_table_degrades_too(aws: Aws) -> None:
    estimator = ConcurrencyEstimator(
        local_config(aws.endpoint_url, table_name="no-such-table"), session=aws.session
    )
    assert estimator.estimate("worker").source == "cloudwatch"


@pytest.fixture
def throttling_server() -> Iterator[tuple[LocalAwsServer, QuotaLayer]]:
    from siblings.local.quota import DEFAULT_QUOTAS

    # Only GetMetricData is limited, at 50 * 0.001 = 0.05 calls/s: one call, then throttled.
    gmd = DEFAULT_QUOTAS["cloudwatch.GetMetricData"]
    yield from serve_behind(QuotaLayer(quota_scale=0.001, quotas={"gmd": gmd}))


def test_throttled_cloudwatch_is_retried_then_unavailable(
    throttling_server: tuple[LocalAwsServer, QuotaLayer], sdk_sleeps_on_clock: ManualClock
) -> None:
    server, layer = throttling_server
    session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
    config = local_config(server.endpoint_url)
    ensure_table(config, session)
    clock = sdk_sleeps_on_clock
    ConcurrencyEstimator(config, session=session, clock=clock).estimate("first")  # the only token
    with pytest.raises(EstimateUnavailable) as caught:
        ConcurrencyEstimator(config, session=session, clock=clock).estimate("second")
    assert "Throttling" in str(caught.value)
    assert layer.throttled("monitoring", "GetMetricData") == 4  # 1 attempt + 3 retries
    assert layer.retries("monitoring", "GetMetricData") == 3
    assert clock.slept > 0  # the SDK backed off between them (on the virtual clock)


def test_throttled_cloudwatch_with_a_stale_value_serves_it(
    throttling_server: tuple[LocalAwsServer, QuotaLayer], sdk_sleeps_on_clock: ManualClock
) -> None:
    clock = sdk_sleeps_on_clock
    server, layer = throttling_server
    session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
    config = local_config(server.endpoint_url, cache_ttl_seconds=0.2)
    ensure_table(config, session)
    cloudwatch = session.client("cloudwatch", endpoint_url=server.endpoint_url)
    put_lambda_metrics(cloudwatch, "worker", [(600, 1000)] * 5, clock=clock)
    assert ConcurrencyEstimator(config, session=session, clock=clock).estimate("worker").value == 10
    clock.advance(0.25)  # past the TTL (the quota layer's bucket refills in real time: 0.05/s)
    stale = ConcurrencyEstimator(config, session=session, clock=clock).estimate("worker")
    assert stale.stale and stale.value == 10
    assert layer.throttled("monitoring", "GetMetricData") >= 1


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("bad name!",), ValueError, "function_name"),
        ((42,), TypeError, "function_name"),
        (("fn", 0), ValueError, "minutes_back"),
        (("fn", 1441), ValueError, "minutes_back"),
        (("fn", "5"), TypeError, "minutes_back"),
        (("fn", 5, "bad/qualifier"), ValueError, "qualifier"),
    ],
)
def test_bad_arguments_name_the_argument(
    aws: Aws, args: tuple[Any, ...], error: type[Exception], match: str
) -> None:
    estimator = ConcurrencyEstimator(local_config(aws.endpoint_url), session=aws.session)
    with pytest.raises(error, match=match):
        estimator.estimate(*args)
    assert aws.recorder.count() == 0


def test_estimate_many_rejects_a_single_string(aws: Aws) -> None:
    estimator = ConcurrencyEstimator(local_config(aws.endpoint_url), session=aws.session)
    with pytest.raises(TypeError, match="function_names"):
        estimator.estimate_many("worker")


def test_unreachable_dynamodb_is_skipped_for_a_while_after_a_failure(
    aws: Aws, caplog: pytest.LogCaptureFixture, clock: ManualClock
) -> None:
    broken_store = DynamoStore(
        local_config(closed_port_url(), dynamodb_timeout_seconds=0.5), session=aws.session, clock=clock
    )
    estimator = ConcurrencyEstimator(
        # Every process of this one-process "fleet" asks the origin itself while the table is
        # down (the default lets only a share of a fleet do so: tested in test_herds).
        local_config(
            aws.endpoint_url, cache_ttl_seconds=0.1, error_backoff_seconds=60, outage_refresh_probability=1.0
        ),
        session=aws.session,
        store=broken_store,
        clock=clock,
    )
    with caplog.at_level(logging.WARNING, logger="estimator"):
        for _ in range(3):
            assert estimator.estimate("worker").source == "cloudwatch"
            clock.advance(0.15)  # past the TTL, well inside the table's back-off
    warnings = [r for r in caplog.records if "shared cache unavailable" in r.getMessage()]
    assert len(warnings) == 1
    assert aws.recorder.count("monitoring", "GetMetricData") == 3


def test_a_failed_refresh_stops_the_fleet_from_waiting(aws: Aws, table: None, clock: ManualClock) -> None:
    config = local_config(aws.endpoint_url, lease_wait_seconds=30, error_backoff_seconds=30)
    failing = ConcurrencyEstimator(
        config, session=aws.session, cloudwatch_client=unreachable_cloudwatch(), clock=clock
    )
    with pytest.raises(EstimateUnavailable):
        failing.estimate("worker")
    stored = DynamoStore(config, aws.session).get(f"estimate#{scoped('worker')}#5")
    assert stored is not None and stored.recently_failed(clock.now())
    assert stored.last_error and "EndpointConnectionError" in stored.last_error
    # Another container with no value: told at once instead of waiting 30 s for a lease, and
    # CloudWatch is not asked again during the back-off.
    started = clock.monotonic()
    with pytest.raises(EstimateUnavailable, match="refresh just failed"):
        ConcurrencyEstimator(config, session=aws.session, clock=clock).estimate("worker")
    assert clock.monotonic() - started < 25
    assert aws.recorder.count("monitoring", "GetMetricData") == 0


def test_the_wait_for_a_refresh_can_be_bounded(aws: Aws, table: None, clock: ManualClock) -> None:
    from estimator.exceptions import LookupFailed
    from estimator.shared_cache import TwoTierCache

    config = local_config(aws.endpoint_url, lease_wait_seconds=30)
    store = DynamoStore(config, aws.session)
    assert store.try_lease("rules#worker", "busy-elsewhere", clock.now(), 60)
    cache = TwoTierCache(config, store, clock)
    started = clock.monotonic()
    with pytest.raises(LookupFailed, match="timed out waiting"):
        cache.get("rules#worker", lambda: {"enabled": True}, ttl=60, origin="test", max_wait=0.3)
    assert 0.3 <= clock.monotonic() - started < 25  # waited max_wait (virtual), not lease_wait


@pytest.fixture
def ddb_throttling_server() -> Iterator[tuple[LocalAwsServer, QuotaLayer]]:
    from siblings.local.quota import DEFAULT_QUOTAS

    # Only DynamoDB item calls are limited, to a trickle: every table read/write is throttled.
    table_reads = DEFAULT_QUOTAS["dynamodb.table-read"]._replace(tps=0.001)
    table_writes = DEFAULT_QUOTAS["dynamodb.table-write"]._replace(tps=0.001)
    yield from serve_behind(
        QuotaLayer(quotas={"r": table_reads, "w": table_writes}, burst_seconds=0.001)
    )


def test_throttled_dynamodb_degrades_to_memory_and_cloudwatch(
    ddb_throttling_server: tuple[LocalAwsServer, QuotaLayer],
    caplog: pytest.LogCaptureFixture,
    sdk_sleeps_on_clock: ManualClock,
) -> None:
    clock = sdk_sleeps_on_clock
    server, layer = ddb_throttling_server
    session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
    config = local_config(server.endpoint_url, table_name="throttled-table")
    ensure_table(config, session)
    cloudwatch = session.client("cloudwatch", endpoint_url=server.endpoint_url)
    put_lambda_metrics(cloudwatch, "worker", [(600, 1000)] * 5, clock=clock)
    estimator = ConcurrencyEstimator(config, session=session, clock=clock)
    with caplog.at_level(logging.WARNING, logger="estimator"):
        first = estimator.estimate("worker")
        second = estimator.estimate("worker")
    assert (first.source, first.value, second.source) == ("cloudwatch", 10, "memory")
    assert layer.throttled("dynamodb") >= 1
    assert any("ProvisionedThroughputExceeded" in r.getMessage() or "RequestLimitExceeded"
               in r.getMessage() for r in caplog.records)
