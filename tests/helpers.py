"""Small builders shared by the test modules."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from estimator.clock import Clock, ManualClock
from estimator.config import Config
from siblings.local.server import LocalAwsServer, WsgiApp


def put_lambda_metrics(
    cloudwatch: Any,
    function_name: str,
    buckets: list[tuple[float, float]],
    *,
    qualifier: str | None = None,
    margin_seconds: float = 5.0,
    clock: Clock | None = None,
) -> None:
    """Publish per-minute (invocations, avg duration ms) buckets ending at the last published minute.

    Each bucket lands in the middle of a whole minute inside the estimator's aligned window.
    The window moves at each minute boundary. On the real clock this first waits until at
    least ``margin_seconds`` remain in the current minute, so the test's estimates see the
    window the data was written for (5 s: the in-process callers read their estimates within
    a second; the wait costs m²/120 s on average, 0.2 s, where 12 s cost 1.2 s); with ``clock``
    (a :func:`minute_clock` the estimators read too) the minute is the clock's and nothing
    waits.
    """
    dimensions = _dimensions(function_name, qualifier)
    data = []
    for stamp, (invocations, duration_ms) in zip(
        _stamps(len(buckets), margin_seconds, clock), buckets, strict=True
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
    margin_seconds: float = 5.0,
    clock: Clock | None = None,
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
        for stamp, peak in zip(_stamps(len(peaks), margin_seconds, clock), peaks, strict=True)
    ]
    cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=data)


def _dimensions(function_name: str, qualifier: str | None) -> list[dict[str, str]]:
    dimensions = [{"Name": "FunctionName", "Value": function_name}]
    if qualifier:
        dimensions.append({"Name": "Resource", "Value": f"{function_name}:{qualifier}"})
    return dimensions


def minute_clock() -> ManualClock:
    """A virtual clock one second into a minute: 59 virtual seconds before the estimators'
    metric window moves, whenever the test runs.

    The minute is the current one (the clock then lags the real one by at most 45 s) or, late
    in it, the next one (ahead by at most 16 s): either way within ``max_clock_skew_seconds``
    of items the real clock writes, and the metric data stamped from it lies in the past.
    """
    minute = math.floor(time.time() / 60) * 60
    if time.time() - minute >= 45:
        minute += 60
    return ManualClock(start=minute + 1.0)


class WaitingThreadsClock(ManualClock):
    """A manual clock for threads that wait for each other: a sleep does not move virtual time
    (the waits of concurrent threads overlap; summed, they would race the clock ahead), it only
    yields the thread for a moment so that the one being waited for (a lease holder's refresh,
    real HTTP) finishes. Time moves by :meth:`advance` alone."""

    def sleep(self, seconds: float) -> None:
        """Yield for at most 5 ms of real time; virtual time stands still."""
        if seconds > 0:
            time.sleep(min(seconds, 0.005))


class QuietRuntimeClock(ManualClock):
    """A manual clock for handlers in the local Lambda runtime that wait for one another: a
    sleep moves virtual time only while at most one execution runs (the sleeper itself), so a
    sibling waiting for the record its still-running parent is about to write keeps waiting
    however slow the machine is, and a true root's wait runs out at once. Each sleep yields the
    thread for at most 5 ms of real time so the others make progress."""

    def __init__(self, running: Callable[[], int], start: float | None = None) -> None:
        super().__init__(minute_clock().now() if start is None else start)
        self._running = running

    def sleep(self, seconds: float) -> None:
        """Yield for at most 5 ms; advance by ``seconds`` when no other execution runs."""
        if seconds > 0:
            time.sleep(min(seconds, 0.005))
            if self._running() <= 1:
                super().sleep(seconds)


def _stamps(count: int, margin_seconds: float, clock: Clock | None = None) -> list[datetime]:
    """Mid-minute stamps of the last ``count`` whole minutes Lambda has published by ``clock``'s
    time, oldest first; on the real clock (``None``) once at least ``margin_seconds`` are left in
    the current minute. The minute just closed is left empty, as on AWS (its metrics come when
    its invocations finish), and so is outside the estimator's window
    (``publication_delay_seconds``, 60 s by default)."""
    if clock is None:
        left = 60 - time.time() % 60
        if left < margin_seconds:
            time.sleep(left + 0.2)  # the real clock: wait for a minute the test can finish in
        now = time.time()
    else:
        now = clock.now()
    current = datetime.fromtimestamp(now, tz=UTC).replace(second=0, microsecond=0)
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


HOME = "123456789012:us-east-1"
"""The account and Region of the test server's clients (moto's default account)."""


def scoped(name: str, qualifier: str | None = None) -> str:
    """How a function of the test account and Region is named in table keys
    (:attr:`~estimator.validation.FunctionRef.scope`, with the qualifier if any)."""
    return f"{HOME}:{name}" + (f":{qualifier}" if qualifier else "")
