"""Publish the metrics Lambda itself would publish, in batches, to the emulated CloudWatch."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

LAMBDA_NAMESPACE = "AWS/Lambda"
# PutMetricData accepts at most 1000 metric datums per request.
_MAX_DATUMS_PER_CALL = 1000
# Kept when CloudWatch keeps failing, so a long outage cannot grow memory without bound.
_MAX_BACKLOG = 100_000


class MetricsPublisher:
    """Buffers per-invocation datums and sends them with few ``PutMetricData`` calls.

    Lambda publishes ``Invocations``, ``Errors`` and ``Duration`` per function when an
    invocation finishes, and ``ConcurrentExecutions`` per function and for the whole account
    (no dimensions), and the account's ``ClaimedAccountConcurrency`` (unreserved executions in
    use plus every reserved and provisioned allocation:
    https://docs.aws.amazon.com/lambda/latest/dg/monitoring-concurrency.html); the estimator
    reads those. An invocation dropped by recursive loop detection is counted in
    ``RecursiveInvocationsDropped``. A background thread flushes every
    ``flush_seconds``; :meth:`flush` sends what is buffered now. A failed call keeps its datums
    for the next flush (the buffer is bounded).
    """

    def __init__(self, cloudwatch: Any, flush_seconds: float = 1.0) -> None:
        self._cloudwatch = cloudwatch
        self._flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._buffer: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.calls = 0
        self.failures = 0
        self.datums_sent = 0

    def record_invocation(
        self,
        function_name: str,
        duration_ms: float,
        errored: bool,
        at: datetime | None = None,
        qualifier: str | None = None,
    ) -> None:
        """Buffer one finished invocation (Count 1, its duration, and an error if it failed).

        Like Lambda, an invocation through an alias or version is also published under the
        ``FunctionName`` + ``Resource`` (``name:qualifier``) dimensions.
        """
        timestamp = at or datetime.now(UTC)
        dimension_sets = [[{"Name": "FunctionName", "Value": function_name}]]
        if qualifier:
            dimension_sets.append(
                dimension_sets[0] + [{"Name": "Resource", "Value": f"{function_name}:{qualifier}"}]
            )
        datums = []
        for dimensions in dimension_sets:
            datums.append(_datum("Invocations", 1.0, "Count", dimensions, timestamp))
            datums.append(
                _datum("Duration", round(duration_ms, 3), "Milliseconds", dimensions, timestamp)
            )
            if errored:
                datums.append(_datum("Errors", 1.0, "Count", dimensions, timestamp))
        with self._lock:
            self._buffer.extend(datums)
            del self._buffer[:-_MAX_BACKLOG]

    def record_concurrency(
        self,
        function_name: str,
        running: int,
        account_running: int,
        at: datetime | None = None,
        claimed: int | None = None,
    ) -> None:
        """Buffer the concurrency seen when an execution starts: the function's, the
        account's and (when given) the account's claimed concurrency. CloudWatch's Maximum over
        a minute of these is Lambda's peak."""
        timestamp = at or datetime.now(UTC)
        function = [{"Name": "FunctionName", "Value": function_name}]
        datums = [
            _datum("ConcurrentExecutions", float(running), "Count", function, timestamp),
            _datum("ConcurrentExecutions", float(account_running), "Count", [], timestamp),
        ]
        if claimed is not None:
            datums.append(_datum("ClaimedAccountConcurrency", float(claimed), "Count", [], timestamp))
        with self._lock:
            self._buffer.extend(datums)
            del self._buffer[:-_MAX_BACKLOG]

    def record_recursion_dropped(self, function_name: str, at: datetime | None = None) -> None:
        """Buffer one invocation dropped by recursive loop detection, as Lambda counts it
        (``RecursiveInvocationsDropped``, per function;
        https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html)."""
        dimensions = [{"Name": "FunctionName", "Value": function_name}]
        datum = _datum("RecursiveInvocationsDropped", 1.0, "Count", dimensions, at or datetime.now(UTC))
        with self._lock:
            self._buffer.append(datum)
            del self._buffer[:-_MAX_BACKLOG]

    def flush(self) -> int:
        """Send everything buffered; returns the number of datums sent."""
        with self._send_lock:
            with self._lock:
                pending, self._buffer = self._buffer, []
            sent = 0
            for start in range(0, len(pending), _MAX_DATUMS_PER_CALL):
                chunk = pending[start : start + _MAX_DATUMS_PER_CALL]
                try:
                    self._cloudwatch.put_metric_data(Namespace=LAMBDA_NAMESPACE, MetricData=chunk)
                except Exception as exc:  # any failure: keep the data for the next flush
                    self.failures += 1
                    logger.warning("PutMetricData failed, will retry: %s", exc)
                    with self._lock:
                        self._buffer[:0] = pending[start:]
                        del self._buffer[:-_MAX_BACKLOG]
                    break
                self.calls += 1
                sent += len(chunk)
            self.datums_sent += sent
            return sent

    def pending(self) -> int:
        """Datums buffered and not yet sent."""
        with self._lock:
            return len(self._buffer)

    def start(self) -> None:
        """Start the background flusher."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="lambda-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the flusher after a last flush."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            self.flush()


def _datum(
    name: str, value: float, unit: str, dimensions: list[dict[str, str]], at: datetime
) -> dict[str, Any]:
    return {"MetricName": name, "Dimensions": dimensions, "Timestamp": at, "Value": value, "Unit": unit}
