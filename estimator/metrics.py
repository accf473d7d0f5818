"""One GetMetricData call for the concurrency signals of many functions and of the account.

Per function: Invocations (Sum) and Duration (Average) for Little's law, and
ConcurrentExecutions (Maximum) for the observed peak. Once per call, without dimensions:
ConcurrentExecutions (Maximum), the account's concurrency, and ClaimedAccountConcurrency
(Maximum), what on-demand functions can no longer use (unreserved executions in use plus every
reserved and provisioned allocation, idle or not:
https://docs.aws.amazon.com/lambda/latest/dg/monitoring-concurrency.html). Everything rides in
the same request, so the extra signals cost no extra call.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from estimator.exceptions import IncompleteMetrics
from estimator.formula import combine_buckets, littles_law
from estimator.validation import FunctionRef

log = logging.getLogger(__name__)

COMPLETE = "Complete"
"""The only ``StatusCode`` whose data counts."""

# GetMetricData takes at most 500 queries a call; each function needs three, and two queries per
# call are the account's.
MAX_QUERIES_PER_CALL = 500
QUERIES_PER_FUNCTION = 3
FUNCTIONS_PER_CALL = (MAX_QUERIES_PER_CALL - 2) // QUERIES_PER_FUNCTION
BUCKET_SECONDS = 60
ACCOUNT_QUERY_ID = "account"
"""Id of the account-level ConcurrentExecutions query (ids must start with a lower-case letter)."""
CLAIMED_QUERY_ID = "claimed"
"""Id of the account-level ClaimedAccountConcurrency query."""
_ACCOUNT_IDS = (ACCOUNT_QUERY_ID, CLAIMED_QUERY_ID)

# Query id prefix -> (metric, statistic). Maximum for ConcurrentExecutions: the peak of the
# minute is what can exhaust a limit, and it is the only statistic that stays right when a
# query without dimensions is answered from several series (as moto does; see docs/reference.md, Development).
_FUNCTION_QUERIES = {
    "i": ("Invocations", "Sum"),
    "d": ("Duration", "Average"),
    "c": ("ConcurrentExecutions", "Maximum"),
}


@dataclass(frozen=True)
class MetricWindow:
    """The whole minutes ``[start, end)`` an estimate covers."""

    start: datetime
    end: datetime

    @property
    def period_s(self) -> int:
        """Length of the window in seconds."""
        return int((self.end - self.start).total_seconds())


@dataclass(frozen=True)
class FunctionMetrics:
    """Window totals of one function, the concurrency they imply, and the observed peak."""

    invocations: float
    avg_duration_ms: float | None
    period_s: int
    observed_peak: int | None = None
    """Highest ``ConcurrentExecutions`` (Maximum) of any minute; ``None`` without datapoints."""

    @property
    def concurrency(self) -> int:
        """Little's law over the window."""
        return littles_law(self.invocations, self.avg_duration_ms, self.period_s)


@dataclass(frozen=True)
class MetricsBatch:
    """What one GetMetricData call returned: each function's metrics, in the order asked,
    the account's concurrency (highest ``ConcurrentExecutions`` without dimensions) and its
    claimed concurrency (highest ``ClaimedAccountConcurrency``), each ``None`` without
    datapoints."""

    functions: list[FunctionMetrics]
    account_concurrency: int | None
    claimed_concurrency: int | None = None


def aligned_window(now: datetime, minutes_back: int, delay_seconds: float = 0.0) -> MetricWindow:
    """The last ``minutes_back`` whole minutes before ``now - delay_seconds``.

    The minute in progress is left out: its sums are still growing, so counting it would
    dilute the estimate. ``delay_seconds`` (``publication_delay_seconds``) leaves out the
    minutes Lambda has not published yet as well.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    published = now.astimezone(UTC) - timedelta(seconds=delay_seconds)
    end = published.replace(second=0, microsecond=0)
    return MetricWindow(end - timedelta(minutes=minutes_back), end)


def _query(query_id: str, metric: str, stat: str, dimensions: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Namespace": "AWS/Lambda", "MetricName": metric, "Dimensions": dimensions},
            "Period": BUCKET_SECONDS,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def build_queries(functions: Sequence[FunctionRef]) -> list[dict[str, Any]]:
    """Three ``MetricDataQueries`` per function (ids ``i<n>``, ``d<n>``, ``c<n>``) and the
    account's concurrency and claimed concurrency (ids ``account``, ``claimed``)."""
    queries: list[dict[str, Any]] = []
    for index, ref in enumerate(functions):
        dimensions = [{"Name": "FunctionName", "Value": ref.name}]
        if ref.qualifier:
            dimensions.append({"Name": "Resource", "Value": ref.resource})
        for prefix, (metric, stat) in _FUNCTION_QUERIES.items():
            queries.append(_query(f"{prefix}{index}", metric, stat, dimensions))
    queries.append(_query(ACCOUNT_QUERY_ID, "ConcurrentExecutions", "Maximum", []))
    queries.append(_query(CLAIMED_QUERY_ID, "ClaimedAccountConcurrency", "Maximum", []))
    return queries


def fetch_metrics(
    cloudwatch: Any, functions: Sequence[FunctionRef], window: MetricWindow
) -> MetricsBatch:
    """Fetch the signals of up to :data:`FUNCTIONS_PER_CALL` functions in one GetMetricData call.

    NextToken pages (large windows) are followed; they belong to the same request.
    """
    if len(functions) > FUNCTIONS_PER_CALL:
        raise ValueError(f"at most {FUNCTIONS_PER_CALL} functions per call, got {len(functions)}")
    series: dict[str, dict[datetime, float]] = {}
    request: dict[str, Any] = {
        "MetricDataQueries": build_queries(functions),
        "StartTime": window.start,
        "EndTime": window.end,
        "ScanBy": "TimestampAscending",
    }
    status: dict[str, Any] = {}
    messages: list[str] = []
    while True:
        response = cloudwatch.get_metric_data(**request)
        messages.extend(_messages(response.get("Messages")))
        for result in response.get("MetricDataResults", []):
            query_id = result.get("Id", "")
            _check_id(query_id, len(functions))
            status[query_id] = result.get("StatusCode")
            messages.extend(_messages(result.get("Messages")))
            target = series.setdefault(query_id, {})
            for stamp, value in zip(
                result.get("Timestamps", []), result.get("Values", []), strict=False
            ):
                # Pages may repeat a bucket's id; sums of one bucket are not split across pages.
                target[stamp] = _finite(query_id, value)
        token = response.get("NextToken")
        if not token:
            break
        request["NextToken"] = token
    _check_complete(request["MetricDataQueries"], status, messages)
    metrics = []
    for index in range(len(functions)):
        total, avg = combine_buckets(series.get(f"i{index}", {}), series.get(f"d{index}", {}))
        peak = _peak(series.get(f"c{index}", {}))
        metrics.append(FunctionMetrics(total, avg, window.period_s, peak))
    return MetricsBatch(
        metrics, _peak(series.get(ACCOUNT_QUERY_ID, {})), _peak(series.get(CLAIMED_QUERY_ID, {}))
    )


def _peak(buckets: Mapping[datetime, float]) -> int | None:
    """The highest per-minute Maximum, rounded up (executions are whole); ``None`` if empty."""
    if not buckets:
        return None
    return max(0, math.ceil(max(buckets.values())))


def _check_id(query_id: str, count: int) -> None:
    """A query id we sent (``i3``, ``d3``, ``c3``, ``account``, ``claimed``); anything else is
    foreign."""
    if query_id in _ACCOUNT_IDS:
        return
    try:
        index = int(query_id[1:])
    except ValueError:
        index = -1
    if query_id[:1] not in _FUNCTION_QUERIES or not 0 <= index < count:
        raise IncompleteMetrics(f"unexpected query id {query_id!r} in the response")


def _finite(query_id: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise IncompleteMetrics(f"query {query_id!r} returned a non-numeric value {value!r}")
    return float(value)


def _messages(raw: Any) -> list[str]:
    if not isinstance(raw, list):
        return []
    return [f"{m.get('Code', '?')}: {m.get('Value', '')}" for m in raw if isinstance(m, dict)]


def _check_complete(queries: list[dict[str, Any]], status: dict[str, Any], messages: list[str]) -> None:
    """Every query must end (after the last page) with ``StatusCode: Complete``."""
    if messages:
        log.warning("GetMetricData messages: %s", "; ".join(messages))
    for query in queries:
        code = status.get(query["Id"])
        if code != COMPLETE:
            raise IncompleteMetrics(f"query {query['Id']!r} ended with StatusCode {code!r}", messages)
