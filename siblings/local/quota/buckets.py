"""Token buckets, refilled lazily from a clock, taken all-or-nothing across one call's charges."""

from __future__ import annotations

from collections.abc import Iterable

from siblings.local.quota.costs import BucketKey, Charge
from siblings.local.quota.table import Quota


class _Bucket:
    __slots__ = ("tokens", "stamp")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class TokenBuckets:
    """Every bucket of a quota layer; not thread-safe (the layer holds its lock around calls).

    A bucket holds ``burst`` seconds of its rate (at least one token) and starts full.
    """

    def __init__(self) -> None:
        self._buckets: dict[BucketKey, _Bucket] = {}

    def clear(self) -> None:
        """Forget every bucket: each starts full again."""
        self._buckets.clear()

    def take(
        self, charges: Iterable[Charge], now: float, scale: float, burst: float
    ) -> tuple[Quota, str] | None:
        """Take every charge's tokens, or none; return the quota (and R/W) that fell short."""
        taken: list[tuple[_Bucket, float]] = []
        for key, quota, cost, rw in charges:
            rate = quota.tps * scale
            capacity = max(1.0, rate * burst)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(capacity, now)
            else:
                # A caller's clock may step back a little (a simulation whose actors each keep
                # their own time): an earlier call draws from the bucket as it stands.
                elapsed = max(0.0, now - bucket.stamp)
                bucket.tokens = min(capacity, bucket.tokens + elapsed * rate)
                bucket.stamp = max(bucket.stamp, now)
            # A call costing more than a whole bucket could never pass; let a full one pay.
            if bucket.tokens < min(cost, capacity):
                return quota, rw
            taken.append((bucket, cost))
        for bucket, cost in taken:
            bucket.tokens -= cost
        return None
