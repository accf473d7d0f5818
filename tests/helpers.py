"""Small builders shared by the test modules."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from estimator.config import Config


def put_lambda_metrics(
    cloudwatch: Any,
    function_name: str,
    buckets: list[tuple[float, float]],
    *,
    qualifier: str | None = None,
    margin_seconds: float = 12.0,
) -> None:
    """Publish per-minute (invocations, avg duration ms) buckets ending one minute ago.

    Each bucket lands in the middle of a whole minute inside the estimator's aligned window.
    The window moves at each minute boundary, so this first waits until at least
    ``margin_seconds`` remain in the current minute: the test's estimates then see the same
    window the data was written for.
    """
    left = 60 - time.time() % 60
    if left < margin_seconds:
        time.sleep(left + 0.2)
    current = datetime.fromtimestamp(time.time(), tz=UTC).replace(second=0, microsecond=0)
    dimensions = [{"Name": "FunctionName", "Value": function_name}]
    if qualifier:
        dimensions.append({"Name": "Resource", "Value": f"{function_name}:{qualifier}"})
    data = []
    for age, (invocations, duration_ms) in enumerate(reversed(buckets), start=1):
        stamp = current - timedelta(minutes=age) + timedelta(seconds=30)
        data.append(
            {"MetricName": "Invocations", "Dimensions": dimensions, "Value": invocations,
             "Timestamp": stamp, "Unit": "Count"}
        )
        data.append(
            {"MetricName": "Duration", "Dimensions": dimensions, "Value": duration_ms,
             "Timestamp": stamp, "Unit": "Milliseconds"}
        )
    cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=data)


def local_config(endpoint_url: str, **overrides: Any) -> Config:
    """A config pointed at the test server."""
    return Config(endpoint_url=endpoint_url, region_name="us-east-1", **overrides)
