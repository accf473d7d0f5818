"""One function's concurrency estimate: its value, the signal to act on, and the shape and
bounds a shared item of it must have to be believed (any writer may have written it)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from estimator.memory import Cached
from estimator.validation import FunctionRef

MAX_ESTIMATE = 10_000_000
"""The largest concurrency believed from a shared item (far above any account's quota)."""

# Each field of a shared estimate: its types and the range a believable value lies in.
_VALUE_FIELDS: dict[str, tuple[type | tuple[type, ...], float, float]] = {
    "value": (int, 0, MAX_ESTIMATE),
    "invocations": ((int, float), 0, 1e12),
    "period_s": (int, 60, 1440 * 60),
}
_MAX_DURATION_MS = 900_000.0  # Lambda's 15-minute limit
# Added later: items written before them lack them and still read (as None).
_OPTIONAL_INT_FIELDS = ("observed_peak", "account_concurrency", "claimed_concurrency")


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


def valid_value(value: dict[str, Any]) -> bool:
    """A shared estimate value has our fields, with the right types, in believable ranges (anything else
    is foreign or damaged, and is refreshed instead of served)."""
    for name, (kind, low, high) in _VALUE_FIELDS.items():
        if not _in_range(value.get(name), kind, low, high):
            return False
    for name in _OPTIONAL_INT_FIELDS:
        optional = value.get(name)
        if optional is not None and (
            isinstance(optional, bool) or not isinstance(optional, int) or optional < 0
        ):
            return False
    avg = value.get("avg_duration_ms")
    return avg is None or _in_range(avg, (int, float), 0, _MAX_DURATION_MS)


def _in_range(value: Any, kind: type | tuple[type, ...], low: float, high: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, kind):
        return False
    number = float(value)  # type: ignore[arg-type]
    return math.isfinite(number) and low <= number <= high


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
