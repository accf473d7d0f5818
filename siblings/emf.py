"""Operator metrics of spawn decisions as CloudWatch Embedded Metric Format: no API call at all.

Every decision yields a few metrics (:func:`decision_metrics`): a count under the decision's
name (``spawned``, ``refused``, ``deferred``, ``duplicate``, ``failed``, ``dry_run``), a count
per refusal reason (``refused_<reason>``, e.g. ``refused_max_generations``) and per deferred
one (``deferred_max_concurrency``, ``deferred_account_headroom``), the sibling's ``generation``,
and ``guard_latency`` (ms spent in the guards). They leave the process in one of four ways,
chosen by :func:`make_emitter` (:func:`emf_path` names the one in use):

1. a Powertools for AWS Lambda ``Metrics`` object the caller passes: the metrics are added to
   it and published with the caller's own metrics when the caller flushes it (its
   ``log_metrics`` decorator); the caller's namespace and dimensions apply;
2. Powertools installed (``lambda-siblings[powertools]``), no object passed, running on Lambda
   (``AWS_EXECUTION_ENV`` is ``AWS_Lambda_<runtime>``): a private ``AmazonCloudWatchEMFProvider`` (never a
   ``Metrics``, whose metric set is shared by every instance in the process) prints one EMF
   document per decision to stdout, where Lambda ships it to CloudWatch Logs. Elsewhere stdout
   belongs to the program (a script, the CLI, the local simulation), so 4 applies;
3. on Lambda without Powertools: one EMF document per decision written to stdout as one line.
   CloudWatch extracts EMF only from a log event that *is* the JSON document; Lambda's Python
   runtime passes stdout lines through as written in both log formats, while it prefixes
   (``LogFormat: Text``) or wraps in its own JSON (``LogFormat: JSON``) every ``logging``
   record, so a document sent through ``logging`` would never be extracted
   (https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html,
   https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Lambda.html);
4. otherwise (off Lambda): the decision's JSON log line itself carries the EMF fields
   (:func:`emf_fields`), for a program that ships its log lines bare.

In 2, 3 and 4 the namespace is ``metrics_namespace`` and the one dimension is ``function_name``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from estimator.clock import SYSTEM_CLOCK, Clock
from siblings.config import SiblingsConfig

COUNT = "Count"
MILLISECONDS = "Milliseconds"
NONE = "None"
DIMENSION = "function_name"


@dataclass(frozen=True)
class Metric:
    """One value of one metric (``unit`` is a CloudWatch unit name)."""

    name: str
    unit: str
    value: float


def decision_metrics(
    decision: str,
    reason: str,
    generation: int,
    guard_ms: float | None,
    refused: bool,
    deferred_for: str | None = None,
) -> list[Metric]:
    """The metrics one decision adds; names match :attr:`SiblingsManager.stats` counters.
    A deferral (``deferred_for``: the capacity refusal it replaced) adds ``deferred_<reason>``
    beside ``deferred``, so that a chart puts it next to ``refused_<reason>``."""
    metrics = [Metric(decision, COUNT, 1)]
    if refused:
        metrics.append(Metric(f"refused_{reason}", COUNT, 1))
    if deferred_for is not None:
        metrics.append(Metric(f"deferred_{deferred_for}", COUNT, 1))
    metrics.append(Metric("generation", NONE, generation))
    if guard_ms is not None:
        metrics.append(Metric("guard_latency", MILLISECONDS, round(guard_ms, 3)))
    return metrics


def emf_fields(
    namespace: str, function_name: str, metrics: Sequence[Metric], timestamp_ms: int
) -> dict[str, Any]:
    """The EMF members of a document: ``_aws`` metadata, the dimension and each metric's value
    at the top level (the EMF specification's "target members"), stamped ``timestamp_ms`` (the
    caller's clock)."""
    fields: dict[str, Any] = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [[DIMENSION]],
                    "Metrics": [{"Name": m.name, "Unit": m.unit} for m in metrics],
                }
            ],
        },
        DIMENSION: function_name,
    }
    fields.update({m.name: m.value for m in metrics})
    return fields


class Emitter(Protocol):
    """Where a decision's metrics go."""

    def emit(self, function_name: str, metrics: Sequence[Metric]) -> None:
        """Publish ``metrics`` of one decision of ``function_name`` (outside the log line)."""

    def line_fields(self, function_name: str, metrics: Sequence[Metric]) -> dict[str, Any]:
        """What the decision's log line must carry for the metrics (empty: nothing)."""


class _Elsewhere:
    """Emitters whose metrics leave by another way than the log line."""

    def line_fields(self, function_name: str, metrics: Sequence[Metric]) -> dict[str, Any]:
        """Nothing: the log line stays as it is."""
        return {}


class CallerMetrics(_Elsewhere):
    """Adds the metrics to the caller's Powertools ``Metrics``; the caller flushes them."""

    def __init__(self, metrics: Any) -> None:
        if not callable(getattr(metrics, "add_metric", None)):
            raise TypeError(f"metrics must be a Powertools Metrics object, got {type(metrics).__name__}")
        self.metrics = metrics
        self._lock = threading.Lock()

    def emit(self, function_name: str, metrics: Sequence[Metric]) -> None:
        """Add each value to the caller's metric set (its dimensions, its namespace)."""
        with self._lock:
            for metric in metrics:
                self.metrics.add_metric(name=metric.name, unit=metric.unit, value=metric.value)


class PowertoolsDocuments(_Elsewhere):
    """One EMF document per decision, serialised and printed to stdout by Powertools."""

    def __init__(self, namespace: str, provider_class: Any) -> None:
        self.namespace = namespace
        self._provider_class = provider_class
        self._lock = threading.Lock()

    def emit(self, function_name: str, metrics: Sequence[Metric]) -> None:
        """Build a private provider's metric set and flush it (Powertools prints it)."""
        provider = self._provider_class(namespace=self.namespace)
        # POWERTOOLS_SERVICE_NAME would add a "service" dimension and change every metric's
        # identity (the template's dashboard and alarm name function_name only).
        provider.service = None
        for metric in metrics:
            provider.add_metric(name=metric.name, unit=metric.unit, value=metric.value)
        provider.add_dimension(name=DIMENSION, value=function_name)
        with self._lock:  # one document per line, never interleaved
            provider.flush_metrics()


class StdoutDocuments(_Elsewhere):
    """One EMF document per decision, written by us to stdout as one line (Lambda, no
    Powertools): the log event is the document in either of Lambda's log formats."""

    def __init__(self, namespace: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.namespace = namespace
        self.clock = clock
        self._lock = threading.Lock()

    def emit(self, function_name: str, metrics: Sequence[Metric]) -> None:
        """Write the document and flush, so a frozen or timed-out sandbox cannot keep it."""
        stamp = int(self.clock.now() * 1000)
        line = json.dumps(emf_fields(self.namespace, function_name, metrics, stamp), separators=(",", ":"))
        with self._lock:  # one document per line, never interleaved
            sys.stdout.write(line + "\n")
            sys.stdout.flush()


class LogLine:
    """The decision's JSON log line carries the metrics (see :func:`emf_fields`)."""

    def __init__(self, namespace: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.namespace = namespace
        self.clock = clock

    def emit(self, function_name: str, metrics: Sequence[Metric]) -> None:
        """Nothing to do here: :class:`~siblings.decisions.DecisionLog` writes the line."""

    def line_fields(self, function_name: str, metrics: Sequence[Metric]) -> dict[str, Any]:
        """The EMF members that make the log line a metrics document."""
        return emf_fields(self.namespace, function_name, metrics, int(self.clock.now() * 1000))


def powertools_provider() -> Any:
    """Powertools' ``AmazonCloudWatchEMFProvider`` class, or ``None`` when not installed."""
    try:
        from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
            AmazonCloudWatchEMFProvider,
        )
    except ImportError:
        return None
    return AmazonCloudWatchEMFProvider


def on_lambda() -> bool:
    """Whether this process is a Lambda sandbox, whose stdout is the function's log stream."""
    # Lambda's runtime sets AWS_EXECUTION_ENV; AWS_LAMBDA_FUNCTION_NAME alone is also set by
    # tools that imitate a function (sosw's benchmarks), whose stdout is not a log stream.
    return os.environ.get("AWS_EXECUTION_ENV", "").startswith("AWS_Lambda_")


def make_emitter(
    config: SiblingsConfig, metrics: Any = None, clock: Clock = SYSTEM_CLOCK
) -> Emitter | None:
    """The emitter for ``config`` (``None`` with ``metrics_enabled`` off); ``metrics`` is a
    Powertools ``Metrics`` object of the caller's, or ``None``; the documents we write are
    stamped by ``clock`` (Powertools stamps its own)."""
    if not config.metrics_enabled:
        return None
    if metrics is not None:
        return CallerMetrics(metrics)
    if not on_lambda():
        return LogLine(config.metrics_namespace, clock)
    provider = powertools_provider()
    if provider is not None:
        return PowertoolsDocuments(config.metrics_namespace, provider)
    return StdoutDocuments(config.metrics_namespace, clock)


def emf_path(emitter: Emitter | None) -> str:
    """A sentence naming where the metrics of ``emitter`` go (``siblings doctor`` prints it)."""
    if emitter is None:
        return "metrics off (metrics_enabled=false)"
    if isinstance(emitter, CallerMetrics):
        return "added to the caller's Powertools Metrics (published when it flushes)"
    if isinstance(emitter, PowertoolsDocuments):
        return "one EMF document per decision printed by Powertools to stdout"
    if isinstance(emitter, StdoutDocuments):
        return "one EMF document per decision written to stdout"
    return "EMF fields in the decision's log line (off Lambda: ship the line bare to extract them)"
