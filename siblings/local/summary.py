"""Everything a simulated run measured, as one JSON-able document (``siblings simulate --json``)."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from siblings.local.calls import Call
from siblings.local.settings import FaultKind
from siblings.local.verify import Verification

if TYPE_CHECKING:
    from siblings.local.fleet import Fleet


def summary(fleet: Fleet, verification: Verification) -> dict[str, Any]:
    """Everything the run measured, JSON-able."""
    stats = fleet.runtime.stats()
    # Counted before _shared_table scans the table: that scan is not one of the fleet's calls.
    calls = _calls(fleet.recorder.counts(), fleet.monitor_metric_calls)
    estimates = [s.estimate for s in fleet.samples if s.estimate is not None]
    peaks = [s.observed_peak for s in fleet.samples if s.observed_peak is not None]
    elapsed = (fleet.finished_at or time.monotonic()) - fleet.started_at
    return {
        "settings": _settings(fleet),
        "shared_table": _shared_table(fleet),
        "completed": fleet.completed,
        "elapsed_seconds": round(elapsed, 2),
        "records_done": fleet.records_done(),
        "executions": {
            "invocations": stats.accepted,
            "attempts": stats.attempts,
            "retries": stats.retries,
            "errors": stats.errors,
            "timeouts": stats.timeouts,
            "failed_after_retries": stats.failed,
            "cold_starts": stats.cold_starts,
            "crashed": stats.crashes,
            "duplicates_stopped": verification.duplicates_stopped,
            "throttled_by_reserved_concurrency": stats.throttled,
            "peak_true_concurrency": stats.peak_concurrency,
        },
        "concurrency": {
            "true_peak": stats.peak_concurrency,
            "estimate_last": estimates[-1] if estimates else None,
            "estimate_peak": max(estimates) if estimates else None,
            # ConcurrentExecutions (Maximum) from the same GetMetricData call as Little's law.
            "observed_peak_last": peaks[-1] if peaks else None,
            "observed_peak": max(peaks) if peaks else None,
        },
        "spawns": _spawns(fleet.spawn_stats()),
        "calls": calls,
        "throttles": _throttles(fleet),
        "faults_injected": faults_injected(fleet),
        "verification": verification.to_dict(),
    }


def to_json(document: dict[str, Any]) -> str:
    """The summary as indented JSON."""
    return json.dumps(document, indent=2, sort_keys=True, default=str)


def _settings(fleet: Fleet) -> dict[str, Any]:
    settings = fleet.settings
    assert fleet.config is not None
    return {
        "chains": settings.chains,
        "records": settings.records,
        "max_concurrency": settings.max_concurrency,
        "invocation_seconds": settings.invocation_seconds,
        "shutdown_seconds": settings.shutdown_seconds,
        "fault_rate": settings.fault_rate,
        "fault_rates": {str(kind): settings.rate(kind) for kind in FaultKind},
        "seed": settings.seed,
        "time_scale": settings.time_scale,
        "max_generations": settings.max_generations,
        "reserved_concurrency": settings.reserved_concurrency,
        "template": str(settings.template) if settings.template else None,
        "table_name": fleet.config.table_name,
        "payload_bucket": fleet.config.payload_bucket,
    }


def _shared_table(fleet: Fleet) -> dict[str, Any]:
    assert fleet.config is not None
    return {
        "name": fleet.config.table_name,
        "created_by_fleet": fleet.table_created,
        "stack_outputs": fleet.stack_outputs,
        "items_by_kind": fleet.shared_table_items(),
    }


def _spawns(spawns: Counter[str]) -> dict[str, Any]:
    return {
        "spawned": spawns["spawned"],
        "duplicates": spawns["duplicate"],
        "failed": spawns["failed"],
        "deferred": spawns["deferred"],
        "deferred_for": {
            key.removeprefix("deferred_"): value
            for key, value in sorted(spawns.items())
            if key.startswith("deferred_")
        },
        "refused": {
            key.removeprefix("refused_"): value
            for key, value in sorted(spawns.items())
            if key.startswith("refused_")
        },
    }


def _calls(calls: dict[Call, int], by_monitor: int) -> dict[str, Any]:
    def of(service: str) -> int:
        return sum(n for (svc, _), n in calls.items() if svc == service)

    return {
        "cloudwatch_get_metric_data": calls.get(("monitoring", "GetMetricData"), 0) - by_monitor,
        "cloudwatch_get_metric_data_by_monitor": by_monitor,
        "cloudwatch_put_metric_data": calls.get(("monitoring", "PutMetricData"), 0),
        "eventbridge": of("events"),
        "eventbridge_by_action": {
            act: n for (svc, act), n in sorted(calls.items()) if svc == "events"
        },
        "lambda_invoke": calls.get(("lambda", "Invoke"), 0),
        "dynamodb": of("dynamodb"),
        "s3": of("s3"),
    }


def _throttles(fleet: Fleet) -> dict[str, Any]:
    return {
        "quota_layer": fleet.quota.throttled(),
        "injected": {
            "lambda_invoke": fleet.throttles.injected("lambda", "Invoke"),
            "cloudwatch_get_metric_data": fleet.throttles.injected("monitoring", "GetMetricData"),
        },
        "handler_crashes_injected": {str(where): n for where, n in fleet.crashes.crashes.items()},
    }


def faults_injected(fleet: Fleet) -> dict[str, int]:
    """Every fault injected in the run, by :class:`~siblings.local.settings.FaultKind`."""
    counts = {
        FaultKind.INVOKE_THROTTLE: fleet.throttles.injected("lambda", "Invoke"),
        FaultKind.METRIC_DATA_THROTTLE: fleet.throttles.injected("monitoring", "GetMetricData"),
        FaultKind.HANDLER_CRASH: sum(fleet.crashes.crashes.values()),
        **{FaultKind(kind): n for kind, n in fleet.windows.counts().items()},
    }
    return {str(kind): counts[kind] for kind in FaultKind}
