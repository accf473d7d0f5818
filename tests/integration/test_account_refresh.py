"""One GetMetricData per account and TTL: the functions of an account are refreshed together."""

from __future__ import annotations

from estimator import ConcurrencyEstimator
from estimator.clock import ManualClock
from estimator.shared_cache import TwoTierCache
from estimator.store import DynamoStore
from tests.conftest import Aws
from tests.helpers import local_config, minute_clock, put_lambda_metrics


def container(aws: Aws, clock: ManualClock) -> ConcurrencyEstimator:
    """A fresh container (own memory tier) on the shared table, in ``clock``'s time."""
    config = local_config(aws.endpoint_url)
    cache = TwoTierCache(config, DynamoStore(config, session=aws.session, clock=clock), clock)
    return ConcurrencyEstimator(config, session=aws.session, cache=cache, clock=clock)


def gmd(aws: Aws) -> int:
    return aws.recorder.count("monitoring", "GetMetricData")


def test_a_second_function_is_listed_and_then_refreshed_with_the_first(aws: Aws, table: str) -> None:
    cloudwatch = aws.client("cloudwatch")
    clock = minute_clock()
    put_lambda_metrics(cloudwatch, "alpha", [(600, 1000)] * 5, clock=clock)
    put_lambda_metrics(cloudwatch, "beta", [(1200, 1000)] * 5, clock=clock)
    assert container(aws, clock).estimate("alpha").value == 10
    assert container(aws, clock).estimate("beta").value == 20  # not listed yet: fetched alone
    assert gmd(aws) == 2
    clock.advance(61)  # both stale
    assert container(aws, clock).estimate("alpha").source == "cloudwatch"
    assert gmd(aws) == 3  # one call for both: alpha's refresher took the account lease
    beta = container(aws, clock).estimate("beta")
    assert beta.source == "dynamodb" and not beta.stale  # written by alpha's refresher
    assert gmd(aws) == 3
    for _ in range(3):  # steady state: one call per TTL for the whole account
        clock.advance(61)
        container(aws, clock).estimate("beta")
        assert container(aws, clock).estimate("alpha").source == "dynamodb"
    assert gmd(aws) == 6


def test_without_the_table_each_function_is_fetched_on_its_own(aws: Aws) -> None:
    clock = minute_clock()
    put_lambda_metrics(aws.client("cloudwatch"), "alpha", [(600, 1000)] * 5, clock=clock)
    config = local_config(aws.endpoint_url, use_dynamodb=False)
    assert ConcurrencyEstimator(config, session=aws.session, clock=clock).estimate("alpha").value == 10
    assert gmd(aws) == 1
