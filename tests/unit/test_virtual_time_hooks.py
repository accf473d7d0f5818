"""The injection points a simulation in virtual time relies on."""

from __future__ import annotations

from typing import Any

from estimator.clock import ManualClock
from estimator.config import Config
from estimator.items import StoredItem
from estimator.shared_cache import TwoTierCache
from siblings.local.quota.buckets import TokenBuckets
from siblings.local.quota.table import DEFAULT_QUOTAS


class _LeasedStore:
    """A store whose item is leased by someone else and never refreshed."""

    def get(self, key: str) -> StoredItem | None:
        return StoredItem(key=key, value=None, fresh_until=None, lease_owner="other", lease_until=1e12)

    def try_lease(self, *args: Any, **kwargs: Any) -> bool:
        return False


def test_wait_for_refresh_passes_time_through_the_injected_clock() -> None:
    clock = ManualClock(1000.0)
    config = Config(lease_wait_seconds=2.0)
    cache = TwoTierCache(config, _LeasedStore(), clock)  # type: ignore[arg-type]
    outcome = cache.get_many(["k"], lambda keys: {}, ttl=60, origin="test")
    assert "timed out" in str(outcome["k"])
    assert clock.slept > 0 and abs(clock.slept - 2.0) < 1e-9  # virtual seconds, no real wait


def test_token_bucket_ignores_a_clock_stepping_back() -> None:
    quota = DEFAULT_QUOTAS["cloudwatch.GetMetricData"]
    key = ("q", ("a", "r"), None)
    buckets = TokenBuckets()
    charge = [(key, quota, 1.0, "")]
    for _ in range(50):  # a full bucket: one second of 50 TPS
        assert buckets.take(charge, 10.0, 1.0, 1.0) is None
    assert buckets.take(charge, 10.0, 1.0, 1.0) is not None
    # A call stamped earlier neither refills nor empties the bucket further.
    assert buckets.take(charge, 9.5, 1.0, 1.0) is not None
    assert buckets.take(charge, 10.1, 1.0, 1.0) is None  # 0.1 s of refill: 5 tokens
