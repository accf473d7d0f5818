"""One measured run of the AWS-time benchmark: a contender, a fleet size, a length of AWS time.

Each run gets its own server and clock (a fresh account), so runs are independent and can go
to separate processes. Everything counted is counted at the server, after setup.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from aws_fleet import FLEETS, Target, run_fleet
from aws_stack import Stack, create_rules, function_arn, put_steady_metrics

from estimator.metrics import QUERIES_PER_FUNCTION

PRICES = {
    "date": "2026-11-28",
    "region": "us-east-1",
    "dynamodb_read_per_million_rru": 0.125,
    "dynamodb_write_per_million_wru": 0.625,
    "cloudwatch_per_thousand_metrics_requested": 0.01,
    "eventbridge_list_describe": 0.0,
    "source": "aws.amazon.com/dynamodb/pricing/on-demand/ (on-demand request units, after the "
    "November 2024 reduction) and aws.amazon.com/cloudwatch/pricing/ (GetMetricData and "
    "GetMetricStatistics: $0.01 per 1,000 metrics requested); EventBridge's control-plane "
    "APIs (ListRules, ListTargetsByRule, ListRuleNamesByTarget, DescribeRule) carry no request "
    "charge. List prices as known on the date given, not fetched by the benchmark.",
}
"""List prices the cost column uses, and when and where they were taken."""

_CONTROL_PLANE = {"monitoring", "events", "lambda"}
# GetMetricData bills per metric requested: three queries per function and the account's one.
_METRICS_PER_GMD = QUERIES_PER_FUNCTION + 1


def run_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one job (``kind`` ``fleet`` or ``accuracy``) in a fresh account; return its result."""
    logging.disable(logging.CRITICAL)  # every failure is counted; logs would only cost time
    if spec["kind"] == "accuracy":
        from accuracy import run_scenario

        return run_scenario(spec)
    with Stack() as stack:
        return _fleet_job(stack, spec)


def _fleet_job(stack: Stack, spec: dict[str, Any]) -> dict[str, Any]:
    contender, size, duration = spec["contender"], spec["size"], spec["duration_s"]
    name = f"bench-{contender}-n{size}"
    arn = function_arn(name)
    put_steady_metrics(stack, name, size, math.ceil(duration / 60))
    create_rules(stack, name, arn)
    target = Target(name, arn, f"{name}-table", spec["ttl_s"], spec["rules_ttl_s"])
    fleet = FLEETS[contender](stack, target, spec["seed"])
    stack.quota.reset()
    stack.meter.reset()
    window = None
    if spec.get("outage_at_s") is not None:
        begin = stack.clock.start + spec["outage_at_s"]
        window = (begin, begin + spec["outage_s"])
        stack.outage.window = window
    run = run_fleet(stack, fleet, size, spec["interval_s"], duration, spec["seed"])
    result = _summary(stack, spec, fleet.label, run)
    if window is not None:
        result["outage"] = _outage_summary(stack, window)
    return result


def _summary(stack: Stack, spec: dict[str, Any], label: str, run: Any) -> dict[str, Any]:
    stats = stack.quota.stats()
    calls = {f"{svc}.{act}": {"calls": s.calls, "throttled": s.throttled, "retries": s.retries,
                              "unprocessed": s.unprocessed}
             for (svc, act), s in sorted(stats.items())}
    control = sum(s.calls for (svc, act), s in stats.items()
                  if svc in _CONTROL_PLANE and act != "Invoke")
    dynamodb = sum(s.calls for (svc, _), s in stats.items() if svc == "dynamodb")
    minutes = spec["duration_s"] / 60
    billed_metrics = sum(
        (s.calls - s.throttled) * (_METRICS_PER_GMD if act == "GetMetricData" else 1)
        for (svc, act), s in stats.items()
        if svc == "monitoring" and act in {"GetMetricData", "GetMetricStatistics"}
    )
    cost = (billed_metrics * PRICES["cloudwatch_per_thousand_metrics_requested"] / 1000
            + stack.meter.read_units * PRICES["dynamodb_read_per_million_rru"] / 1e6
            + stack.meter.write_units * PRICES["dynamodb_write_per_million_wru"] / 1e6)
    decisions = max(run.decisions, 1)
    gmd = stack.meter.per_second("GetMetricData")
    return {
        "kind": "fleet",
        **{k: spec[k] for k in ("contender", "size", "duration_s", "interval_s", "ttl_s", "rules_ttl_s")},
        "label": label,
        "decisions": run.decisions,
        "failed": run.failed,
        "errors": run.errors,
        "successful_pct": 100.0 * (run.decisions - run.failed) / decisions,
        "estimates": sorted(set(run.estimates))[:10],
        "calls": calls,
        "control_plane_calls": control,
        "control_plane_per_function_minute": control / minutes,
        "control_plane_per_decision": control / decisions,
        "dynamodb_requests": dynamodb,
        "dynamodb_per_decision": dynamodb / decisions,
        "throttled": sum(s.throttled for s in stats.values()),
        "retries": sum(s.retries for s in stats.values()),
        # Batch items the quota layer left unprocessed (a hot partition), sent again by the store.
        "unprocessed": sum(s.unprocessed for s in stats.values()),
        "read_units": stack.meter.read_units,
        "write_units": stack.meter.write_units,
        "cost_usd": cost,
        "usd_per_million_decisions": cost / decisions * 1e6,
        "max_getmetricdata_per_s": max(gmd.values(), default=0),
        **stack.meter.hottest_item(),
        "virtual_sleep_s": stack.clock.slept,
        "wall_s": run.wall_seconds,
        "setup_s": run.setup_seconds,
    }


def _outage_summary(stack: Stack, window: tuple[float, float]) -> dict[str, Any]:
    """GetMetricData per AWS second while DynamoDB was down, and what was injected."""
    seconds = (int(window[0]), int(window[1]))
    gmd = stack.meter.per_second("GetMetricData", seconds)
    span = seconds[1] - seconds[0]
    return {
        "start_s": window[0] - stack.clock.start,
        "length_s": window[1] - window[0],
        "injected_errors": stack.outage.injected,
        "getmetricdata_calls": sum(gmd.values()),
        "control_plane_calls": stack.meter.calls_between(_CONTROL_PLANE, seconds),
        "max_getmetricdata_per_s": max(gmd.values(), default=0),
        "mean_getmetricdata_per_s": sum(gmd.values()) / span if span else 0.0,
    }
