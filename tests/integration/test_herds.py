"""A fleet does not move as one: reads spread over a window, one early refresh, and with the
table down only a bounded share of processes asks CloudWatch."""

from __future__ import annotations

import random
import time

import pytest

from estimator import ConcurrencyEstimator, ensure_table
from estimator.store import DynamoStore
from tests.conftest import Aws
from tests.fault.test_estimator_faults import closed_port_url
from tests.helpers import local_config, minute_clock, put_lambda_metrics, scoped

KEY = f"estimate#{scoped('worker')}#5"


@pytest.fixture(autouse=True)
def table(aws: Aws) -> None:
    ensure_table(local_config(aws.endpoint_url), aws.session)


def test_memory_expiries_spread_over_the_last_share_of_the_ttl(aws: Aws) -> None:
    clock = minute_clock()
    put_lambda_metrics(aws.client("cloudwatch"), "worker", [(600, 1000)] * 5, clock=clock)
    config = local_config(aws.endpoint_url, cache_ttl_seconds=60, use_dynamodb=False)
    until = []
    for seed in range(100):
        estimator = ConcurrencyEstimator(config, session=aws.session, clock=clock)
        estimator.cache.policy.random = random.Random(seed)
        expires = estimator.estimate("worker").expires_at
        served = estimator.cache.memory.served_until(KEY)
        assert served is not None and expires - 4.8 <= served <= expires  # 8% of 60 s
        until.append(expires - served)
    # Spread, not all at one instant: a process-fleet's reads land over ~4.8 s.
    assert max(until) - min(until) > 3.5
    assert sum(1 for gap in until if gap < 0.5) < 20  # about 10 of 100 when uniform


def test_one_reader_refreshes_early_and_nobody_serves_stale(aws: Aws) -> None:
    # Every process reads one virtual clock: the 20 readers take no time however slow the
    # machine, so none of them can find the value expired.
    clock = minute_clock()
    put_lambda_metrics(aws.client("cloudwatch"), "worker", [(600, 1000)] * 5, clock=clock)
    config = local_config(aws.endpoint_url, cache_ttl_seconds=2.0, refresh_ahead_fraction=0.5)
    first = ConcurrencyEstimator(config, session=aws.session, clock=clock).estimate("worker")
    clock.advance(first.expires_at - 0.8 - clock.now())  # inside the early window
    readers = [ConcurrencyEstimator(config, session=aws.session, clock=clock) for _ in range(20)]
    estimates = [reader.estimate("worker") for reader in readers]
    assert aws.recorder.count("monitoring", "GetMetricData") == 2  # the first, and one early
    assert not any(e.stale for e in estimates)
    refreshed = DynamoStore(config, session=aws.session).get(KEY)
    assert refreshed is not None and refreshed.fresh_until is not None
    assert refreshed.fresh_until > first.expires_at  # renewed before the old value expired
    # Only the lease winners wrote (each refresh: the function's lease, then the account's):
    # the others saw the lease or the new value.
    assert aws.recorder.count("dynamodb", "UpdateItem") <= 4


def test_with_the_table_down_only_a_share_of_processes_asks_cloudwatch(aws: Aws) -> None:
    # 200 executions at once, as the estimate says: each asks with 1/s x 5 s / 200 = 2.5%.
    clock = minute_clock()
    put_lambda_metrics(aws.client("cloudwatch"), "worker", [(12_000, 1000)] * 5, clock=clock)
    config = local_config(aws.endpoint_url, cache_ttl_seconds=3.0, outage_refresh_per_second=1.0,
                          error_backoff_seconds=5.0, refresh_ahead_fraction=0.0)
    fleet = []
    for seed in range(200):
        estimator = ConcurrencyEstimator(config, session=aws.session, clock=clock)
        estimator.cache.policy.random = random.Random(seed)
        fleet.append(estimator)
    fleet[0].estimate("worker")
    for estimator in fleet[1:]:
        assert estimator.estimate("worker").source == "dynamodb"
    aws.recorder.reset()
    clock.advance(3.1)  # every value is now stale, and the table goes away
    down = local_config(closed_port_url(), dynamodb_timeout_seconds=0.2)
    for estimator in fleet:
        assert estimator.cache.store is not None
        estimator.cache.store = DynamoStore(down, session=aws.session, clock=clock)
    served = [estimator.estimate("worker") for estimator in fleet]
    asked = aws.recorder.count("monitoring", "GetMetricData")
    assert 1 <= asked <= 15  # about 5 of 200 (1/s over one 5 s back-off), not 200
    assert sum(e.stale for e in served) == len(fleet) - asked
    assert all(e.value == 200 for e in served if e.stale)  # what each process held


def test_readers_with_a_shorter_ttl_refresh_a_longer_lived_item_once(aws: Aws) -> None:
    """An item written under a longer TTL (another function's config sharing the table) is
    refreshed by one lease winner, not by every reader that finds it too fresh to believe."""
    from estimator.shared_cache import TwoTierCache

    loads: list[int] = []

    def load() -> dict[str, int]:
        loads.append(1)
        # Real time (threads, real leases): the winner still holds its lease while the other
        # readers arrive. Shorter or longer, ``loads == [1]`` holds; this makes it a race.
        time.sleep(0.2)
        return {"limit": 1000}

    long_lived = local_config(aws.endpoint_url, cache_ttl_seconds=3600)
    TwoTierCache(long_lived, DynamoStore(long_lived, session=aws.session)).get(
        "limits#account", load, ttl=3600, origin="lambda"
    )
    # Ten threads on one server: allow slow replies on a loaded machine (timeouts are not tested).
    short = local_config(aws.endpoint_url, lease_wait_seconds=5, dynamodb_timeout_seconds=15.0)
    readers = [TwoTierCache(short, DynamoStore(short, session=aws.session)) for _ in range(10)]
    loads.clear()
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(10) as pool:
        values = list(pool.map(lambda c: c.get("limits#account", load, ttl=600, origin="lambda"), readers))
    assert loads == [1]
    assert all(v.value == {"limit": 1000} for v in values)
