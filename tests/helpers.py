"""Small builders shared by the test modules."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from estimator.config import Config
from siblings.local.server import LocalAwsServer, WsgiApp


def put_lambda_metrics(
    cloudwatch: Any,
    function_name: str,
    buckets: list[tuple[float, float]],
    *,
    qualifier: str | None = None,
    margin_seconds: float = 12.0,
) -> None:
    """Publish per-minute (invocations, avg duration ms) buckets ending at the last published minute.

    Each bucket lands in the middle of a whole minute inside the estimator's aligned window.
    The window moves at each minute boundary, so this first waits until at least
    ``margin_seconds`` remain in the current minute: the test's estimates then see the same
    window the data was written for.
    """
    dimensions = _dimensions(function_name, qualifier)
    data = []
    for stamp, (invocations, duration_ms) in zip(
        _stamps(len(buckets), margin_seconds), buckets, strict=True
    ):
        data.append(
            {"MetricName": "Invocations", "Dimensions": dimensions, "Value": invocations,
             "Timestamp": stamp, "Unit": "Count"}
        )
        data.append(
            {"MetricName": "Duration", "Dimensions": dimensions, "Value": duration_ms,
             "Timestamp": stamp, "Unit": "Milliseconds"}
        )
    cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=data)


def put_concurrency_metrics(
    cloudwatch: Any,
    function_name: str | None,
    peaks: list[float],
    *,
    qualifier: str | None = None,
    margin_seconds: float = 12.0,
    metric: str = "ConcurrentExecutions",
) -> None:
    """Publish per-minute ``metric`` (``ConcurrentExecutions``) peaks ending at the last
    published minute, as Lambda does:
    for a function (``FunctionName`` dimension) or, with ``function_name=None``, for the whole
    account (no dimensions). Same timing as :func:`put_lambda_metrics`.

    moto answers a query without dimensions from *every* series of the metric (real CloudWatch
    keeps the account-level series separate), so the account's value seen through moto is the
    Maximum over the account series and every function series.
    """
    dimensions = [] if function_name is None else _dimensions(function_name, qualifier)
    data = [
        {"MetricName": metric, "Dimensions": dimensions, "Value": peak,
         "Timestamp": stamp, "Unit": "Count"}
        for stamp, peak in zip(_stamps(len(peaks), margin_seconds), peaks, strict=True)
    ]
    cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=data)


def _dimensions(function_name: str, qualifier: str | None) -> list[dict[str, str]]:
    dimensions = [{"Name": "FunctionName", "Value": function_name}]
    if qualifier:
        dimensions.append({"Name": "Resource", "Value": f"{function_name}:{qualifier}"})
    return dimensions


def _stamps(count: int, margin_seconds: float) -> list[datetime]:
    """Mid-minute stamps of the last ``count`` whole minutes Lambda has published, oldest
    first, once at least ``margin_seconds`` are left in the current minute. The minute just
    closed is left empty, as on AWS (its metrics come when its invocations finish), and so is
    outside the estimator's window (``publication_delay_seconds``, 60 s by default)."""
    left = 60 - time.time() % 60
    if left < margin_seconds:
        time.sleep(left + 0.2)
    current = datetime.fromtimestamp(time.time(), tz=UTC).replace(second=0, microsecond=0)
    return [
        current - timedelta(minutes=age + 1) + timedelta(seconds=30) for age in range(count, 0, -1)
    ]


def local_config(endpoint_url: str, **overrides: Any) -> Config:
    """A config pointed at the test server."""
    return Config(endpoint_url=endpoint_url, region_name="us-east-1", **overrides)


def closed_port_url() -> str:
    """A loopback URL nothing listens on: every call to it fails to connect."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Layer(Protocol):
    """WSGI middleware with a ``wrap`` method (a quota layer, a fault injector...)."""

    def wrap(self, app: WsgiApp) -> WsgiApp: ...


L = TypeVar("L", bound=Layer)


def serve_behind(layer: L) -> Iterator[tuple[LocalAwsServer, L]]:
    """A moto server of its own behind ``layer``, stopped afterwards."""
    server = LocalAwsServer(middleware=layer.wrap).start()
    server.reset()  # moto's state is per process, shared with every other server in it
    try:
        yield server, layer
    finally:
        server.stop()
