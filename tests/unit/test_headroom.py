"""The account headroom arithmetic: ClaimedAccountConcurrency against the account's limit."""

from __future__ import annotations

from estimator import AccountLimit, Estimate
from siblings.guards import headroom


def estimate(claimed: int | None, account: int | None = 10) -> Estimate:
    return Estimate("worker", 2, 60.0, 2000.0, 300, "cloudwatch", 0.0, 60.0,
                    observed_peak=3, account_concurrency=account, claimed_concurrency=claimed)


def limit(unreserved: int | None) -> AccountLimit:
    return AccountLimit(1000, unreserved, "lambda", 0.0)


def test_idle_reserved_concurrency_of_others_is_claimed() -> None:
    seen = headroom(estimate(claimed=610), limit(unreserved=400), reserved=None)
    assert (seen["headroom"], seen["claimed_concurrency"], seen["limited_by"]) == (390, 610, "account")


def test_reserved_allocations_count_before_any_metric_is_published() -> None:
    seen = headroom(estimate(claimed=None, account=None), limit(unreserved=400), reserved=None)
    assert seen["headroom"] == 400


def test_a_function_inside_its_own_reservation_is_not_refused_by_it() -> None:
    # 900 of the account's 1,000 reserved for this very function, 3 in use: it has 897 left.
    seen = headroom(estimate(claimed=900), limit(unreserved=100), reserved=900)
    assert (seen["headroom"], seen["limited_by"]) == (897, "reserved_concurrency")
