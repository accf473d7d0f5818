"""Bounded exponential backoff with jitter for unprocessed batch items, on a virtual clock."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from estimator.batch_retry import BatchBackoff, resend_unprocessed
from estimator.clock import ManualClock


def sender(unprocessed_times: int) -> tuple[list[list[str]], Callable[[list[str]], list[str]]]:
    """A ``send`` that leaves everything unprocessed ``unprocessed_times`` times."""
    sent: list[list[str]] = []

    def send(pending: list[str]) -> list[str]:
        sent.append(list(pending))
        return list(pending) if len(sent) <= unprocessed_times else []

    return sent, send


def test_what_is_left_is_sent_again_until_it_goes_through() -> None:
    clock = ManualClock()
    sent, send = sender(2)
    done = resend_unprocessed(send, ["a", "b"], backoff=BatchBackoff(), clock=clock)
    assert not done.left and done.requests == 3
    assert sent == [["a", "b"]] * 3
    assert 0 < clock.slept <= 0.05 + 0.1  # two waits, each within its doubling bound


def test_the_resends_are_bounded_and_the_rest_is_returned() -> None:
    clock = ManualClock()
    sent, send = sender(100)
    backoff = BatchBackoff(attempts=5, base_seconds=0.05, max_seconds=0.4)
    done = resend_unprocessed(send, ["a"], backoff=backoff, clock=clock)
    assert done.left == ["a"] and done.requests == 5 and len(sent) == 5
    assert clock.slept <= 0.05 + 0.1 + 0.2 + 0.4


def test_waits_are_jittered_below_an_exponential_capped_bound() -> None:
    backoff = BatchBackoff(attempts=8, base_seconds=0.05, max_seconds=0.4)
    assert [backoff.bound(n) for n in range(1, 6)] == [0.05, 0.1, 0.2, 0.4, 0.4]
    waits = []
    for seed in range(20):
        clock = ManualClock()
        _, send = sender(1)
        resend_unprocessed(send, ["a"], backoff=backoff, clock=clock, rng=random.Random(seed))
        waits.append(clock.slept)
    assert all(0 <= w <= 0.05 for w in waits) and len(set(waits)) > 10  # spread, not one value


def test_a_bad_backoff_is_refused() -> None:
    with pytest.raises(ValueError):
        BatchBackoff(attempts=0)
    with pytest.raises(ValueError):
        BatchBackoff(base_seconds=1.0, max_seconds=0.5)
