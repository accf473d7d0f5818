"""One function's concurrency estimate: its value, the signal to act on, and the shape and
bounds a shared item of it must have to be believed (any writer may have written it)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from pynamodb.attributes import NumberAttribute

from estimator.item_kinds import ItemKind, ItemValue, whole_count
from estimator.items import number_in
from estimator.keys import ESTIMATE_PREFIX
from estimator.memory import Cached
from estimator.validation import FunctionRef

MAX_ESTIMATE = 10_000_000
"""The largest concurrency believed from a shared item (far above any account's quota)."""

_MAX_DURATION_MS = 900_000.0  # Lambda's 15-minute limit


class ConcurrencySignal(StrEnum):
    """Which measure of a function's concurrency to act on (see :meth:`Estimate.concurrency`)."""

    LITTLES_LAW = "littles_law"
    """``Estimate.value``: the average over the window (sosw's estimate); smooth, lags bursts."""
    OBSERVED_PEAK = "observed_peak"
    """``Estimate.observed_peak``: the highest ConcurrentExecutions of any minute of the window."""
    MAX = "max"
    """The higher of the two: the most cautious."""


@dataclass(frozen=True)
class Estimate:
    """An approximate concurrency of one function and where it came from.

    ``value`` is ``ceil(invocations * avg_duration_ms / (1000 * period_s))`` over the last
    ``period_s`` seconds of whole minutes (Little's law). ``observed_peak`` is the highest
    ``ConcurrentExecutions`` (Maximum) Lambda published for the function in any minute of the
    window, and ``account_concurrency`` the same for the whole account (the metric without
    dimensions), and ``claimed_concurrency`` the account's highest ``ClaimedAccountConcurrency``
    (executions on-demand functions cannot use: unreserved ones in use plus every reserved and
    provisioned allocation); each is ``None`` when CloudWatch has no datapoints. ``source`` is
    ``"memory"``, ``"dynamodb"`` or ``"cloudwatch"``; ``stale`` is True when a refresh failed
    and an older value is served. Times are epoch seconds.
    """

    function_name: str
    value: int
    invocations: float
    avg_duration_ms: float | None
    period_s: int
    source: str
    fetched_at: float
    expires_at: float
    stale: bool = False
    observed_peak: int | None = None
    account_concurrency: int | None = None
    claimed_concurrency: int | None = None

    def __int__(self) -> int:
        return self.value

    def concurrency(self, signal: ConcurrencySignal | str = ConcurrencySignal.LITTLES_LAW) -> int:
        """The concurrency by ``signal``; without an observed peak, Little's law stands in."""
        chosen = ConcurrencySignal(signal)
        if chosen is ConcurrencySignal.LITTLES_LAW or self.observed_peak is None:
            return self.value
        if chosen is ConcurrencySignal.OBSERVED_PEAK:
            return self.observed_peak
        return max(self.value, self.observed_peak)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        return asdict(self)


class EstimateValue(ItemValue):
    """A shared estimate's value: what :meth:`Estimate.to_dict` stores of it."""

    value = NumberAttribute()
    invocations = NumberAttribute()
    period_s = NumberAttribute()
    avg_duration_ms = NumberAttribute(null=True)
    # Added later: items written before them lack them and still read (as None).
    observed_peak = NumberAttribute(null=True)
    account_concurrency = NumberAttribute(null=True)
    claimed_concurrency = NumberAttribute(null=True)

    @classmethod
    def in_bounds(cls, fields: Any, now: float, skew: float) -> bool:
        """Counts are whole and believable; the window is 1 minute to a day; the duration
        within Lambda's 15 minutes."""
        optional = (fields.observed_peak, fields.account_concurrency, fields.claimed_concurrency)
        return (
            whole_count(fields.value, MAX_ESTIMATE)
            and number_in(fields.invocations, 0, 1e12)
            and isinstance(fields.period_s, int) and number_in(fields.period_s, 60, 1440 * 60)
            and (fields.avg_duration_ms is None or number_in(fields.avg_duration_ms, 0, _MAX_DURATION_MS))
            and all(count is None or whole_count(count, math.inf) for count in optional)
        )


class EstimateItem(ItemKind):
    """``estimate#<scope>[:q]#<minutes>``: one function's cached estimate over one window
    (anything else under the key is foreign or damaged, and is refreshed instead of served)."""

    prefix = ESTIMATE_PREFIX
    schema = EstimateValue


def to_estimate(ref: FunctionRef, cached: Cached) -> Estimate:
    """The :class:`Estimate` of ``ref`` that a cached (validated) value holds."""
    value = cached.value
    avg = value.get("avg_duration_ms")
    peak = value.get("observed_peak")
    account = value.get("account_concurrency")
    claimed = value.get("claimed_concurrency")
    return Estimate(
        function_name=ref.resource,
        value=int(value["value"]),
        invocations=float(value["invocations"]),
        avg_duration_ms=float(avg) if avg is not None else None,
        period_s=int(value["period_s"]),
        source=cached.source,
        fetched_at=cached.fetched_at,
        expires_at=cached.expires_at,
        stale=cached.stale,
        observed_peak=None if peak is None else int(peak),
        account_concurrency=None if account is None else int(account),
        claimed_concurrency=None if claimed is None else int(claimed),
    )
