"""GetMetricData request building and response parsing, with a scripted client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from estimator.metrics import (
    FUNCTIONS_PER_CALL,
    MAX_QUERIES_PER_CALL,
    aligned_window,
    build_queries,
    fetch_metrics,
)
from estimator.validation import parse_function

NOW = datetime(2026, 3, 1, 10, 30, 15, tzinfo=UTC)


class ScriptedCloudWatch:
    """Returns the given pages in order and records the requests."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.requests: list[dict[str, Any]] = []

    def get_metric_data(self, **request: Any) -> dict[str, Any]:
        self.requests.append(dict(request))
        return self.pages[len(self.requests) - 1]


def minute(n: int) -> datetime:
    return datetime(2026, 3, 1, 10, 25, tzinfo=UTC) + timedelta(minutes=n)


def test_queries_carry_three_metrics_per_function_the_account_and_the_resource_dimension() -> None:
    queries = build_queries([parse_function("a"), parse_function("b", "live")])
    assert [q["Id"] for q in queries] == ["i0", "d0", "c0", "i1", "d1", "c1", "account", "claimed"]
    assert queries[0]["MetricStat"]["Stat"] == "Sum"
    assert queries[1]["MetricStat"]["Metric"]["MetricName"] == "Duration"
    assert queries[1]["MetricStat"]["Stat"] == "Average"
    peak = queries[2]["MetricStat"]
    assert (peak["Metric"]["MetricName"], peak["Stat"]) == ("ConcurrentExecutions", "Maximum")
    assert peak["Metric"]["Dimensions"] == [{"Name": "FunctionName", "Value": "a"}]
    dims = queries[3]["MetricStat"]["Metric"]["Dimensions"]
    assert {"Name": "Resource", "Value": "b:live"} in dims
    claimed = queries[-1]["MetricStat"]
    assert (claimed["Metric"]["MetricName"], claimed["Metric"]["Dimensions"], claimed["Stat"]) == (
        "ClaimedAccountConcurrency", [], "Maximum"
    )
    account = queries[-2]["MetricStat"]
    # No dimensions is the account-wide series; Maximum, never Sum or Average (see metrics.py).
    assert account["Metric"] == {
        "Namespace": "AWS/Lambda", "MetricName": "ConcurrentExecutions", "Dimensions": []
    }
    assert account["Stat"] == "Maximum"


def test_a_full_call_fits_the_query_limit() -> None:
    assert FUNCTIONS_PER_CALL == 166
    queries = build_queries([parse_function(f"f{i}") for i in range(FUNCTIONS_PER_CALL)])
    assert len(queries) == 500 <= MAX_QUERIES_PER_CALL
    assert len({q["Id"] for q in queries}) == len(queries)


def test_pages_are_followed_and_buckets_combined() -> None:
    window = aligned_window(NOW, 5)
    pages = [
        {
            "MetricDataResults": [
                {"Id": "i0", "Timestamps": [minute(0), minute(1)], "Values": [100, 300],
                 "StatusCode": "PartialData"},
                {"Id": "d0", "Timestamps": [minute(0)], "Values": [1000], "StatusCode": "PartialData"},
            ],
            "NextToken": "page-2",
        },
        {
            "MetricDataResults": [
                {"Id": "i0", "Timestamps": [], "Values": [], "StatusCode": "Complete"},
                {"Id": "d0", "Timestamps": [minute(1)], "Values": [3000], "StatusCode": "Complete"},
                {"Id": "i1", "Timestamps": [], "Values": [], "StatusCode": "Complete"},
                {"Id": "d1", "Timestamps": [], "Values": [], "StatusCode": "Complete"},
                {"Id": "c0", "Timestamps": [minute(0), minute(1)], "Values": [3, 7.0],
                 "StatusCode": "Complete"},
                {"Id": "c1", "Timestamps": [], "Values": [], "StatusCode": "Complete"},
                {"Id": "account", "Timestamps": [minute(1)], "Values": [41],
                 "StatusCode": "Complete"},
                {"Id": "claimed", "Timestamps": [minute(1)], "Values": [141],
                 "StatusCode": "Complete"},
            ]
        },
    ]
    client = ScriptedCloudWatch(pages)
    batch = fetch_metrics(client, [parse_function("a"), parse_function("b")], window)
    first, second = batch.functions
    assert len(client.requests) == 2
    assert client.requests[1]["NextToken"] == "page-2"
    assert client.requests[0]["StartTime"] == datetime(2026, 3, 1, 10, 25, tzinfo=UTC)
    assert client.requests[0]["EndTime"] == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    assert first.invocations == 400
    assert first.avg_duration_ms == pytest.approx((100 * 1000 + 300 * 3000) / 400)
    assert first.concurrency == 4  # ceil(400 * 2500 / 300000) = ceil(3.33)
    assert (second.invocations, second.avg_duration_ms, second.concurrency) == (0, None, 0)
    assert (first.observed_peak, second.observed_peak) == (7, None)
    assert (batch.account_concurrency, batch.claimed_concurrency) == (41, 141)


def test_too_many_functions_for_one_call() -> None:
    refs = [parse_function(f"f{i}") for i in range(FUNCTIONS_PER_CALL + 1)]
    with pytest.raises(ValueError, match="at most 166"):
        fetch_metrics(ScriptedCloudWatch([]), refs, aligned_window(NOW, 5))


def complete_page(target: str = "i0", **overrides: Any) -> dict[str, Any]:
    """One function's page, every query Complete, with ``overrides`` applied to query ``target``."""
    results = [
        {"Id": "i0", "Timestamps": [minute(0)], "Values": [600], "StatusCode": "Complete"},
        {"Id": "d0", "Timestamps": [minute(0)], "Values": [1000], "StatusCode": "Complete"},
        {"Id": "c0", "Timestamps": [minute(0)], "Values": [3], "StatusCode": "Complete"},
        {"Id": "account", "Timestamps": [minute(0)], "Values": [30], "StatusCode": "Complete"},
        {"Id": "claimed", "Timestamps": [], "Values": [], "StatusCode": "Complete"},
    ]
    for result in results:
        if result["Id"] == target:
            result.update(overrides)
    return {"MetricDataResults": results}


@pytest.mark.parametrize("target", ["c0", "account"])
@pytest.mark.parametrize(
    "overrides", [{"StatusCode": "PartialData"}, {"Values": [float("nan")]}, {"Values": [True]}]
)
def test_the_new_queries_are_validated_like_the_others(target: str, overrides: dict[str, Any]) -> None:
    from estimator.exceptions import IncompleteMetrics

    client = ScriptedCloudWatch([complete_page(target, **overrides)])
    with pytest.raises(IncompleteMetrics):
        fetch_metrics(client, [parse_function("a")], aligned_window(NOW, 5))


def test_a_missing_account_query_fails_the_fetch() -> None:
    from estimator.exceptions import IncompleteMetrics

    page = complete_page()
    page["MetricDataResults"].pop(-2)
    with pytest.raises(IncompleteMetrics, match="account"):
        fetch_metrics(ScriptedCloudWatch([page]), [parse_function("a")], aligned_window(NOW, 5))


@pytest.mark.parametrize(
    "overrides",
    [
        {"StatusCode": "PartialData"},
        {"StatusCode": "InternalError", "Messages": [{"Code": "InternalError", "Value": "boom"}]},
        {"StatusCode": "Forbidden"},
        {"StatusCode": None},
        {"Values": [float("inf")]},
        {"Values": ["600"]},
        {"Id": "x9"},
        {"Id": "c1"},
        {"Id": "accounts"},
    ],
)
def test_anything_but_complete_plausible_data_fails_the_fetch(overrides: dict[str, Any]) -> None:
    """A partial answer must not become an estimate (today it becomes 0, cached as fresh)."""
    from estimator.exceptions import IncompleteMetrics

    client = ScriptedCloudWatch([complete_page(**overrides)])
    with pytest.raises(IncompleteMetrics):
        fetch_metrics(client, [parse_function("a")], aligned_window(NOW, 5))


def test_a_complete_page_gives_the_estimate() -> None:
    batch = fetch_metrics(
        ScriptedCloudWatch([complete_page()]), [parse_function("a")], aligned_window(NOW, 5)
    )
    (metrics,) = batch.functions
    assert metrics.concurrency == 2  # 600 * 1000 ms over 300 s
    assert (metrics.observed_peak, batch.account_concurrency) == (3, 30)
