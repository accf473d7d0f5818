"""Little's law over CloudWatch buckets: the arithmetic of the estimate, with no I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from fractions import Fraction


def littles_law(invocations: float, avg_duration_ms: float | None, period_s: float) -> int:
    """Concurrency = ceil(invocations * avg_duration_ms / (1000 * period_s)).

    This is the value sosw's ``get_approximate_concurrent_executions`` computes. Exact
    rational arithmetic keeps whole results whole (``ceil(2.0000000001)`` would be 3).
    No invocations, or no duration, gives 0.
    """
    if period_s <= 0:
        raise ValueError(f"period_s must be positive, got {period_s}")
    if not invocations or avg_duration_ms is None or invocations <= 0 or avg_duration_ms <= 0:
        return 0
    busy_ms = Fraction(invocations) * Fraction(avg_duration_ms)
    return math.ceil(busy_ms / (1000 * Fraction(period_s)))


def combine_buckets(
    invocations: Mapping[datetime, float], durations: Mapping[datetime, float]
) -> tuple[float, float | None]:
    """Combine per-bucket Invocations (Sum) and Duration (Average) into window totals.

    Returns ``(total_invocations, avg_duration_ms)``: the sum of the sums, and the average of
    the averages weighted by each bucket's invocations. Buckets with a duration but no
    invocation count (data still arriving) are weighted equally when no bucket has both;
    with no duration at all the average is ``None`` (and the estimate 0: Lambda publishes
    Duration with every finished invocation, so its absence means there is nothing to measure).
    """
    total = float(sum(v for v in invocations.values() if v > 0))
    weighted = 0.0
    weight = 0.0
    for stamp, avg in durations.items():
        count = invocations.get(stamp, 0.0)
        if count > 0 and avg >= 0:
            weighted += avg * count
            weight += count
    if weight > 0:
        return total, weighted / weight
    usable = [avg for avg in durations.values() if avg >= 0]
    if usable:
        return total, sum(usable) / len(usable)
    return total, None
