"""Throttle-load benchmark: the whole spawn decision path under AWS quotas, four contenders.

A fleet of N simulated executions (threads, each with its own boto3 session, clients and
in-process cache, like separate warm containers) makes spawn decisions at a set rate for T
seconds against one moto server behind the quota layer (``siblings.local.quota``), which runs
in its own process and answers over-quota calls exactly as AWS does, so boto3's own retries run.

Contenders, same run, same quota layer, same metric data:

1. seed: sosw 0.7.47 ``SiblingsManager.get_approximate_concurrent_executions()`` then
   ``spawn_sibling(force=False)``;
2. naive: one GetMetricData per decision, no cache, then Invoke;
3. ours, tier 1 only (``use_dynamodb=False``);
4. ours, tier 1 + the shared DynamoDB table.

Time base: ``--quota-scale s`` multiplies every quota *and* the decision rate, so one second
of this run stands for ``s`` seconds of AWS time; calls per decision and the throttled share
are those of an unscaled run. TTLs and the run length are given in this run's seconds.

Usage::

    python benchmarks/throttle_load.py            # default run (< 10 min on 2 cores)
    python benchmarks/throttle_load.py --quick    # smaller set (< 2 min)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shlex
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_contenders import CONTENDERS, Contender, OursExecution, Target, context_for, new_session
from bench_fleet import run_fleet
from bench_report import CallCounts, RunResult, check_targets, percentile, plot, render

from siblings.local.quota import DEFAULT_QUOTAS, QuotaServerProcess, QuotaStatsClient
from siblings.local.server import LOCAL_CREDENTIALS, LOCAL_REGION

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Each simulated execution runs this long; the metric data says N of them run at once.
EXECUTION_MS = 30_000.0
OTHER_RULES = 4  # enabled rules in the account that target another function


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes 10,50; 8 s runs; no extra run")
    parser.add_argument("--sizes", help="fleet sizes, comma-separated (default 10,100,500)")
    parser.add_argument("--duration", type=float, help="seconds per run (default 20, quick 8)")
    parser.add_argument(
        "--contenders", default=",".join(CONTENDERS), help="comma-separated: %(default)s"
    )
    parser.add_argument("--rate", type=float, default=1.0,
                        help="decisions per execution per second of AWS time (default %(default)s)")
    parser.add_argument("--fleet-rate", type=float, default=10.0,
                        help="decisions per second of the whole fleet in this run, what the "
                        "2-core server sustains; sets each size's quota scale to "
                        "fleet-rate / (N x rate) (default %(default)s)")
    parser.add_argument("--quota-scale", type=float,
                        help="one fixed quota scale for every size instead (the fleet rate is "
                        "then N x rate x scale)")
    parser.add_argument("--ttl", type=float, default=10.0,
                        help="estimate cache TTL in seconds of this run (default %(default)s)")
    parser.add_argument("--rules-ttl", type=float,
                        help="rule-state TTL (default 5 x --ttl, the library's default ratio)")
    parser.add_argument("--max-concurrency", type=int, default=100_000,
                        help="guard threshold, far above N so that every healthy decision spawns")
    parser.add_argument("--default-quota-check", action=argparse.BooleanOptionalAction,
                        default=None, help="also run ours (tier 1 + DynamoDB) at the largest N "
                        "with quota scale 1 (default: on, off with --quick)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--seed", type=int, default=1, help="random phases of the executions")
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = "10,50" if args.quick else "10,100,500"
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s]
    if args.duration is None:
        args.duration = 8.0 if args.quick else 20.0
    if args.rules_ttl is None:
        args.rules_ttl = 5 * args.ttl
    if args.default_quota_check is None:
        args.default_quota_check = not args.quick
    args.contenders = [c for c in args.contenders.split(",") if c]
    unknown = set(args.contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders: {sorted(unknown)}")
    if "seed" in args.contenders and importlib.util.find_spec("sosw") is None:
        parser.error("the seed contender needs sosw==0.7.47: pip install -e '.[bench]'")
    positive = [args.duration, args.rate, args.fleet_rate, args.ttl, args.rules_ttl]
    if any(n < 1 for n in args.sizes) or any(v <= 0 for v in positive):
        parser.error("sizes, durations, rates and TTLs must be positive")
    if args.quota_scale is not None and args.quota_scale <= 0:
        parser.error("--quota-scale must be positive")
    return args


def scale_for(args: argparse.Namespace, size: int) -> float:
    """The quota scale (= time base) of fleet size ``size``."""
    if args.quota_scale is not None:
        return float(args.quota_scale)
    return args.fleet_rate / (size * args.rate)


def point_clients_at(endpoint_url: str) -> None:
    """Make every boto3 client of this process (sosw's too) use the local server."""
    for name in list(os.environ):
        if name.startswith("SIBLINGS_") or name.startswith("AWS_ENDPOINT_URL"):
            del os.environ[name]
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
            "AWS_SESSION_TOKEN": LOCAL_CREDENTIALS["aws_session_token"],
            "AWS_DEFAULT_REGION": LOCAL_REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    os.environ.pop("STAGE", None)  # sosw would DryRun its invokes


def provision(endpoint_url: str, tag: str, size: int) -> tuple[str, str, list[str]]:
    """Create function ``bench-worker-<tag>``, its metric data and the account's rules.

    Returns ``(function name, function ARN, rule names)``. The metric data says ``size``
    executions of ``EXECUTION_MS`` run at once, for every minute from 10 minutes ago to 30
    minutes ahead, so every estimate during the benchmark sees the same truth.
    """
    from siblings.local.provision import create_function, create_schedule_rule

    session = new_session()
    client = lambda service: session.client(service, endpoint_url=endpoint_url)  # noqa: E731
    name = f"bench-worker-{tag}"
    arn = create_function(client("lambda"), client("iam"), name)
    per_minute = size * 60_000.0 / EXECUTION_MS
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    dimensions = [{"Name": "FunctionName", "Value": name}]
    data = []
    for minute in range(-10, 31):
        stamp = now + timedelta(minutes=minute)
        data.append({"MetricName": "Invocations", "Dimensions": dimensions,
                     "Timestamp": stamp, "Value": per_minute, "Unit": "Count"})
        data.append({"MetricName": "Duration", "Dimensions": dimensions,
                     "Timestamp": stamp, "Value": EXECUTION_MS, "Unit": "Milliseconds"})
    client("cloudwatch").put_metric_data(Namespace="AWS/Lambda", MetricData=data)
    events = client("events")
    other = arn.rsplit(":", 1)[0] + ":bench-other"
    rules = []
    # sosw lists rules in name order and checks the targets of each enabled one: the
    # function's own rule comes last, after the other enabled rules of the account.
    for index in range(OTHER_RULES):
        rule = f"bench-{tag}-a-other-{index}"
        create_schedule_rule(events, rule, other)
        rules.append(rule)
    rule = f"bench-{tag}-z-{name}"
    create_schedule_rule(events, rule, arn)
    rules.append(rule)
    return name, arn, rules


def remove_rules(endpoint_url: str, rules: list[str]) -> None:
    """Delete a size's rules so the next size's account looks the same to sosw."""
    events = new_session().client("events", endpoint_url=endpoint_url)
    for rule in rules:
        targets = events.list_targets_by_rule(Rule=rule).get("Targets", [])
        if targets:
            events.remove_targets(Rule=rule, Ids=[t["Id"] for t in targets])
        events.delete_rule(Name=rule)


def measure_tier1(execution: OursExecution, target: Target, iterations: int = 2000) -> dict[str, float]:
    """Latency of tier-1 hits on one warm execution: the estimate alone, and the rules and
    concurrency guards together (the decision minus the kill switch read and the Invoke)."""
    from siblings.context import read_context

    manager = execution.manager
    info = read_context(context_for(target))
    guards = manager.guards
    manager.estimator.estimate(target.function_name)
    guards.check_rules(info)
    guards.check_concurrency(info)
    estimate_s, guard_s = [], []
    memory = 0
    for _ in range(iterations):
        began = time.perf_counter()
        estimate = manager.estimator.estimate(target.function_name)
        middle = time.perf_counter()
        guards.check_rules(info)
        guards.check_concurrency(info)
        ended = time.perf_counter()
        estimate_s.append(middle - began)
        guard_s.append(ended - middle)
        memory += estimate.source == "memory"
    return {
        "estimate_p50": percentile(estimate_s, 0.5) or 0.0,
        "estimate_p99": percentile(estimate_s, 0.99) or 0.0,
        "guards_p50": percentile(guard_s, 0.5) or 0.0,
        "guards_p99": percentile(guard_s, 0.99) or 0.0,
        "memory_share": memory / iterations,
    }


def run_one(
    contender: Contender,
    target: Target,
    stats: QuotaStatsClient,
    *,
    quota_scale: float,
    rate: float,
    duration: float,
    seed: int,
) -> RunResult:
    """One contender at one fleet size: set up with throttling off, then run with it on.

    ``rate`` is each execution's decision rate in this run's seconds.
    """
    size = target.true_concurrency
    stats.configure(enabled=False, quota_scale=quota_scale)
    began = time.perf_counter()
    contender.prepare(target)
    executions = [contender.execution(target) for _ in range(size)]
    setup_s = time.perf_counter() - began
    stats.reset()
    stats.configure(enabled=True)
    fleet = run_fleet(executions, rate, duration, seed=seed, drain_timeout_s=90.0)
    calls = {
        call: CallCounts(c.calls, c.throttled, c.retries) for call, c in stats.stats().items()
    }
    stats.configure(enabled=False)
    result = RunResult(
        contender.name, contender.label, size, duration, setup_s, fleet, calls, size,
        quota_scale=quota_scale,
    )
    if isinstance(executions[0], OursExecution):
        result.micro = measure_tier1(executions[0], target)
    print(f"  {result.label:<40} N={size:<4} scale {quota_scale:<6.3g} "
          f"{result.decisions:>5} decisions {result.throttled:>5} throttled  "
          f"setup {setup_s:4.1f}s run {fleet.elapsed_s:4.1f}s", file=sys.stderr, flush=True)
    return result


def quota_table() -> str:
    """The enforced quotas as markdown."""
    lines = ["| quota | service | actions | per second | scope | error | source |",
             "|---|---|---|---|---|---|---|"]
    for name, q in DEFAULT_QUOTAS.items():
        actions = ", ".join(sorted(q.actions)) if q.actions else f"all but {', '.join(sorted(q.excluded))}"
        lines.append(f"| {name} | {q.service} | {actions} | {q.tps:g} | {q.scope} | "
                     f"{q.status} {q.error} | {q.source} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the report and write it (and the plot) to ``--output-dir``."""
    args = parse_args(argv)
    shown = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "benchmarks/throttle_load.py", *shown])
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    with QuotaServerProcess(enabled=False) as server:
        point_clients_at(server.endpoint_url)
        if "seed" in args.contenders:
            import sosw.components.siblings  # noqa: F401 - sosw sets the root logger to INFO

        # Neither contender's logging is part of a decision's cost here, and every failure is
        # counted in the report: keep stderr for progress lines.
        logging.getLogger().setLevel(logging.CRITICAL)
        stats = server.client
        results: list[RunResult] = []
        for size in args.sizes:
            scale = scale_for(args, size)
            name, arn, rules = provision(server.endpoint_url, f"n{size}", size)
            os.environ["AWS_LAMBDA_FUNCTION_NAME"] = name  # sosw invokes the function named here
            target = Target(name, arn, server.endpoint_url, size, args.max_concurrency,
                            args.ttl, args.rules_ttl)
            for contender_name in args.contenders:
                results.append(run_one(CONTENDERS[contender_name](), target, stats,
                                       quota_scale=scale, rate=args.rate * scale,
                                       duration=args.duration, seed=args.seed))
            remove_rules(server.endpoint_url, rules)
        extra: list[RunResult] = []
        if args.default_quota_check and "ours-ddb" in args.contenders:
            size = max(args.sizes)
            name, arn, rules = provision(server.endpoint_url, f"n{size}-scale1", size)
            target = Target(name, arn, server.endpoint_url, size, args.max_concurrency,
                            args.ttl, args.rules_ttl)
            contender = CONTENDERS["ours-ddb"]()
            contender.label += ", quota scale 1"
            # Same fleet rate, unscaled quotas: each execution decides less often.
            extra.append(run_one(contender, target, stats, quota_scale=1.0,
                                 rate=args.rate * scale_for(args, size),
                                 duration=args.duration, seed=args.seed))
            remove_rules(server.endpoint_url, rules)

    elapsed = time.perf_counter() - started
    scales = {size: scale_for(args, size) for size in args.sizes}
    parameters = {
        "fleet sizes": args.sizes,
        "contenders": args.contenders,
        "run length T (s)": args.duration,
        "decision rate per execution": f"{args.rate:g}/s of AWS time",
        "quota scale (= time base) per size": ", ".join(
            f"N={n}: {s:.3g}" for n, s in scales.items()
        ),
        "fleet decision rate (this run's seconds)": ", ".join(
            f"N={n}: {n * args.rate * s:.3g}/s" for n, s in scales.items()
        ),
        "estimate TTL (s)": args.ttl,
        "rule-state TTL (s)": args.rules_ttl,
        "max_concurrency guard": args.max_concurrency,
        "true concurrency": f"N (the metric data: N executions of {EXECUTION_MS / 1000:g} s at once)",
        "default-quota check": args.default_quota_check,
        "total wall time (s)": f"{elapsed:.0f}",
        "machine": f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average "
        f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at the end (other processes "
        "on the machine slow every contender alike)",
    }
    notes = [
        "Time base: at quota scale s every quota and every decision rate are multiplied by s, "
        "so one second of this run stands for s seconds of AWS time and calls per decision "
        "and the throttled share are those of an unscaled run at the AWS-time rate. The scale "
        "of each size keeps the fleet's decisions per second within what the 2-core moto "
        "server sustains. TTLs and T are in this run's seconds, the same at every size.",
        "Counts are taken at the server (quota layer): every call, throttled ones and SDK "
        "retries included. `SDK retries` are requests botocore marked as attempt 2 or later; "
        "ours' Invoke retries its own way (each attempt looks like a first try).",
        "control-plane = CloudWatch + EventBridge + Lambda calls other than Invoke; DynamoDB "
        "item calls and Invoke are data plane.",
        "Latency covers the whole decision as the handler sees it, Invoke included, failed "
        "decisions included. `first` is each execution's first decision (cold caches; ours "
        "also builds its lazily created clients then, sosw builds them in its constructor, "
        "outside the timing); `warm` is every later one, with their count.",
        "Estimate error: mean |estimate - N| / N over decisions that had an estimate; `no "
        "estimate` counts the decisions that got none (failed, or refused on a guard error "
        "before the concurrency guard). The metric data is steady, so every estimate that "
        "exists is exact (stale ones too): what differs between contenders is whether a "
        "decision gets one.",
        "Absolute latencies are those of moto on a shared 2-core machine, not of AWS; compare "
        "contenders within a size.",
        "Ours reads the kill switch (one GetItem) and records each spawn (GetItem, conditional "
        "PutItem, UpdateItem) on every decision with DynamoDB; those are most DDB calls.",
        "The naive contender makes no EventBridge check; the seed checks the first ListRules "
        f"page and the targets of each enabled rule ({OTHER_RULES} others come first).",
    ]
    checks = check_targets(results, args.duration, args.ttl, extra)
    report = render(command=command, parameters=parameters, notes=notes, results=results,
                    extra=extra, checks=checks, quotas=quota_table())
    sys.stdout.write(report)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "throttle_load.md").write_text(report)
    summary = {
        "parameters": {k: str(v) for k, v in parameters.items()},
        "targets": [{"name": c.name, "met": c.met, "measured": c.measured} for c in checks],
    }
    (args.output_dir / "throttle_load.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not args.no_plot:
        plot(results, args.output_dir / "throttle_load.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
