"""One measured run of the AWS-time benchmark: a contender, a fleet size, a length of AWS time.

Each run gets its own server and clock (a fresh account), so runs are independent and can go
to separate processes. Everything counted is counted at the server, after setup.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from aws_fleet import FLEETS, Target, run_fleet
from aws_stack import Stack, create_rules, function_arn, put_steady_metrics

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

LEDGER_PER_SPAWN = {"ours": {"requests": 3, "write_units": 4}}
"""What a real spawn adds to its guards' decision, per contender (``benchmarks/results/
spawn_path.md``, measured): ours writes the spawn record (PutItem), then the record and the
child's chain position (BatchWriteItem of 2 items), and the child claims its step (PutItem):
3 requests, 4 items of under 1 KB. The others keep no ledger."""

_CONTROL_PLANE = {"monitoring", "events", "lambda"}
TIMELINE_ACTIONS = ("GetMetricData", "GetMetricStatistics", "ListRuleNamesByTarget", "DescribeRule",
                    "ListRules", "ListTargetsByRule")
"""Control-plane actions counted per AWS minute (warm-up and steady state are told apart)."""


def run_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one job (``kind`` ``fleet`` or ``accuracy``) in a fresh account; return its result."""
    logging.disable(logging.CRITICAL)  # every failure is counted; logs would only cost time
    began = time.process_time()
    if spec["kind"] == "accuracy":
        from accuracy import run_scenario

        result = run_scenario(spec)
    else:
        with Stack() as stack:
            result = _fleet_job(stack, spec)
    # CPU time of the job's process (client and server): what the run costs on an idle core.
    result["cpu_s"] = time.process_time() - began
    return result


def _fleet_job(stack: Stack, spec: dict[str, Any]) -> dict[str, Any]:
    contender, size, duration = spec["contender"], spec["size"], spec["duration_s"]
    functions = spec.get("functions", 1)
    tag = f"bench-{contender}-n{size}" + (f"x{functions}" if functions > 1 else "")
    names = [tag] if functions == 1 else [f"{tag}-f{i:02d}" for i in range(functions)]
    for name in names:
        put_steady_metrics(stack, name, size, math.ceil(duration / 60))
    fleet_class = FLEETS[contender]
    create_rules(stack, tag, [function_arn(n) for n in names],
                 own_first=getattr(fleet_class, "own_rule_first", False))
    targets = [Target(n, function_arn(n), f"{tag}-table", spec["ttl_s"], spec["rules_ttl_s"])
               for n in names]
    fleet = fleet_class(stack, targets, spec["seed"])
    stack.quota.reset()
    stack.meter.reset()
    window = None
    if spec.get("outage_at_s") is not None:
        begin = stack.clock.start + spec["outage_at_s"]
        window = (begin, begin + spec["outage_s"])
        stack.outage.window = window
    run = run_fleet(stack, fleet, size * functions, spec["interval_s"], duration, spec["seed"])
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
    functions = spec.get("functions", 1)
    minutes = spec["duration_s"] / 60
    function_minutes = minutes * functions
    cost = (_billed_metrics(stack, stats) * PRICES["cloudwatch_per_thousand_metrics_requested"] / 1000
            + stack.meter.read_units * PRICES["dynamodb_read_per_million_rru"] / 1e6
            + stack.meter.write_units * PRICES["dynamodb_write_per_million_wru"] / 1e6)
    decisions = max(run.decisions, 1)
    ledger = LEDGER_PER_SPAWN.get(spec["contender"], {"requests": 0, "write_units": 0})
    gmd = stack.meter.per_second("GetMetricData")
    whole_minutes = math.ceil(minutes)
    return {
        "kind": "fleet",
        **{k: spec[k] for k in ("contender", "size", "duration_s", "interval_s", "ttl_s", "rules_ttl_s")},
        "functions": functions,
        "label": label,
        "decisions": run.decisions,
        "failed": run.failed,
        "errors": run.errors,
        "successful_pct": 100.0 * (run.decisions - run.failed) / decisions,
        "estimates": sorted(set(run.estimates))[:10],
        "calls": calls,
        "per_minute": {action: stack.meter.per_minute(action, stack.clock.start, whole_minutes)
                       for action in TIMELINE_ACTIONS},
        "per_second": {action: sorted([int(second - stack.clock.start), n]
                                      for second, n in stack.meter.per_second(action).items())
                       for action in TIMELINE_ACTIONS},
        "control_plane_calls": control,
        "control_plane_per_function_minute": control / function_minutes,
        "control_plane_per_decision": control / decisions,
        "dynamodb_requests": dynamodb,
        "dynamodb_per_decision": dynamodb / decisions,
        "requests_per_decision": (control + dynamodb) / decisions,
        "requests_per_spawn": (control + dynamodb) / decisions + ledger["requests"],
        "throttled": sum(s.throttled for s in stats.values()),
        "retries": sum(s.retries for s in stats.values()),
        "metrics_requested": dict(stack.meter.metrics_requested),
        # Batch items the quota layer left unprocessed (a hot partition), sent again by the store.
        "unprocessed": sum(s.unprocessed for s in stats.values()),
        "read_units": stack.meter.read_units,
        "write_units": stack.meter.write_units,
        "cost_usd": cost,
        "usd_per_million_decisions": cost / decisions * 1e6,
        "usd_per_million_spawns": cost / decisions * 1e6
        + ledger["write_units"] * PRICES["dynamodb_write_per_million_wru"],
        "max_getmetricdata_per_s": max(gmd.values(), default=0),
        **stack.meter.hottest_item(),
        "virtual_sleep_s": stack.clock.slept,
        "wall_s": run.wall_seconds,
        "setup_s": run.setup_seconds,
    }


def _billed_metrics(stack: Stack, stats: dict[Any, Any]) -> float:
    """CloudWatch metrics billed: those requested, as metered, less the throttled calls' share
    (a throttled call is not billed)."""
    billed = 0.0
    for (svc, act), s in stats.items():
        asked = stack.meter.metrics_requested.get(act, 0)
        if svc == "monitoring" and asked and s.calls:
            billed += asked * (s.calls - s.throttled) / s.calls
    return billed


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
