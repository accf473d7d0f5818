"""Little's law and bucket combination: examples and properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from estimator.formula import combine_buckets, littles_law
from estimator.metrics import aligned_window

counts = st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False)
durations = st.floats(min_value=0, max_value=900_000, allow_nan=False, allow_infinity=False)
periods = st.integers(min_value=60, max_value=86_400)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_sosw_example_values() -> None:
    # 600 invocations of 2 s each over 5 minutes keep 4 executions busy on average.
    assert littles_law(600, 2000, 300) == 4
    assert littles_law(601, 2000, 300) == 5  # any excess rounds up
    assert littles_law(1, 1, 300) == 1


def test_no_data_is_zero() -> None:
    assert littles_law(0, 1000, 300) == 0
    assert littles_law(100, None, 300) == 0
    assert littles_law(100, 0, 300) == 0


def test_bad_period() -> None:
    with pytest.raises(ValueError, match="period_s"):
        littles_law(1, 1, 0)


@given(counts, durations, periods)
def test_littles_law_is_exact_ceiling(invocations: float, duration: float, period: int) -> None:
    value = littles_law(invocations, duration, period)
    exact = Fraction(invocations) * Fraction(duration) / (1000 * period)
    assert value == math.ceil(exact)
    assert value - 1 < exact <= value or (exact == 0 and value == 0)


@given(counts, counts, durations, periods)
def test_more_invocations_never_lower_the_estimate(a: float, b: float, d: float, p: int) -> None:
    low, high = sorted((a, b))
    assert littles_law(low, d, p) <= littles_law(high, d, p)


@given(st.lists(st.tuples(st.floats(1, 1e6), durations), min_size=1, max_size=30))
def test_combined_buckets_sum_counts_and_weight_averages(buckets: list[tuple[float, float]]) -> None:
    inv = {T0 + timedelta(minutes=i): c for i, (c, _) in enumerate(buckets)}
    dur = {T0 + timedelta(minutes=i): d for i, (_, d) in enumerate(buckets)}
    total, avg = combine_buckets(inv, dur)
    assert total == pytest.approx(sum(c for c, _ in buckets))
    assert avg is not None
    expected = sum(c * d for c, d in buckets) / sum(c for c, _ in buckets)
    assert avg == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert min(d for _, d in buckets) - 1e-9 <= avg <= max(d for _, d in buckets) + 1e-9


@given(st.floats(1, 1e6), durations, st.integers(2, 10))
def test_splitting_a_bucket_changes_nothing(count: float, duration: float, parts: int) -> None:
    whole = combine_buckets({T0: count}, {T0: duration})
    inv = {T0 + timedelta(minutes=i): count / parts for i in range(parts)}
    dur = {T0 + timedelta(minutes=i): duration for i in range(parts)}
    split = combine_buckets(inv, dur)
    assert split[0] == pytest.approx(whole[0])
    assert split[1] == pytest.approx(whole[1])


def test_invocations_without_duration_give_no_average() -> None:
    assert combine_buckets({T0: 10}, {}) == (10, None)


def test_durations_without_invocations_are_averaged_plainly() -> None:
    total, avg = combine_buckets({}, {T0: 100, T0 + timedelta(minutes=1): 300})
    assert total == 0 and avg == 200


def test_window_is_whole_minutes_before_now() -> None:
    window = aligned_window(datetime(2026, 1, 1, 12, 7, 42, tzinfo=UTC), 5)
    assert window.end == datetime(2026, 1, 1, 12, 7, tzinfo=UTC)
    assert window.start == datetime(2026, 1, 1, 12, 2, tzinfo=UTC)
    assert window.period_s == 300


def test_naive_now_is_utc() -> None:
    window = aligned_window(datetime(2026, 1, 1, 12, 7, 42), 1)
    assert window.end.tzinfo is not None and window.period_s == 60


def test_window_ends_at_the_last_published_minute() -> None:
    # At 12:07:42 with Lambda's minute-late publication, 12:06 is not there yet: leave it out.
    window = aligned_window(datetime(2026, 1, 1, 12, 7, 42, tzinfo=UTC), 5, delay_seconds=60)
    assert window.end == datetime(2026, 1, 1, 12, 6, tzinfo=UTC)
    assert window.start == datetime(2026, 1, 1, 12, 1, tzinfo=UTC)
