"""One GetMetricData call for Invocations (Sum) and Duration (Average) of many functions."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from estimator.exceptions import IncompleteMetrics
from estimator.formula import combine_buckets, littles_law
from estimator.validation import FunctionRef

log = logging.getLogger(__name__)

COMPLETE = "Complete"
"""The only ``StatusCode`` whose data counts."""

# GetMetricData takes at most 500 queries a call; each function needs two.
MAX_QUERIES_PER_CALL = 500
FUNCTIONS_PER_CALL = MAX_QUERIES_PER_CALL // 2
BUCKET_SECONDS = 60


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
    """Window totals of one function, and the concurrency they imply."""

    invocations: float
    avg_duration_ms: float | None
    period_s: int

    @property
    def concurrency(self) -> int:
        """Little's law over the window."""
        return littles_law(self.invocations, self.avg_duration_ms, self.period_s)


def aligned_window(now: datetime, minutes_back: int) -> MetricWindow:
    """The last ``minutes_back`` whole minutes before ``now``.

    The minute in progress is left out: its sums are still growing, so counting it would
    dilute the estimate.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    end = now.astimezone(UTC).replace(second=0, microsecond=0)
    return MetricWindow(end - timedelta(minutes=minutes_back), end)


def build_queries(functions: Sequence[FunctionRef]) -> list[dict[str, Any]]:
    """Two ``MetricDataQueries`` per function, ids ``i<n>`` and ``d<n>``."""
    queries: list[dict[str, Any]] = []
    for index, ref in enumerate(functions):
        dimensions = [{"Name": "FunctionName", "Value": ref.name}]
        if ref.qualifier:
            dimensions.append({"Name": "Resource", "Value": ref.resource})
        for prefix, metric, stat in (("i", "Invocations", "Sum"), ("d", "Duration", "Average")):
            queries.append(
                {
                    "Id": f"{prefix}{index}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/Lambda",
                            "MetricName": metric,
                            "Dimensions": dimensions,
                        },
                        "Period": BUCKET_SECONDS,
                        "Stat": stat,
                    },
                    "ReturnData": True,
                }
            )
    return queries


def fetch_metrics(
    cloudwatch: Any, functions: Sequence[FunctionRef], window: MetricWindow
) -> list[FunctionMetrics]:
    """Fetch the window totals of up to 250 functions in one GetMetricData call.

    NextToken pages (large windows) are followed; they belong to the same request.
    """
    if len(functions) > FUNCTIONS_PER_CALL:
        raise ValueError(f"at most {FUNCTIONS_PER_CALL} functions per call, got {len(functions)}")
    invocations: list[dict[datetime, float]] = [{} for _ in functions]
    durations: list[dict[datetime, float]] = [{} for _ in functions]
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
            status[query_id] = result.get("StatusCode")
            messages.extend(_messages(result.get("Messages")))
            target = invocations if query_id.startswith("i") else durations
            index = _index(query_id, len(functions))
            for stamp, value in zip(
                result.get("Timestamps", []), result.get("Values", []), strict=False
            ):
                # Pages may repeat a bucket's id; sums of one bucket are not split across pages.
                target[index][stamp] = _finite(query_id, value)
        token = response.get("NextToken")
        if not token:
            break
        request["NextToken"] = token
    _check_complete(request["MetricDataQueries"], status, messages)
    metrics = []
    for index in range(len(functions)):
        total, avg = combine_buckets(invocations[index], durations[index])
        metrics.append(FunctionMetrics(total, avg, window.period_s))
    return metrics


def _index(query_id: str, count: int) -> int:
    """The function index of a query id we sent (``i3``, ``d3``); anything else is foreign."""
    try:
        index = int(query_id[1:])
    except ValueError:
        index = -1
    if query_id[:1] not in ("i", "d") or not 0 <= index < count:
        raise IncompleteMetrics(f"unexpected query id {query_id!r} in the response")
    return index


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
