"""The AWS-time benchmark: fleets of 10 to 5,000 executions deciding at real rates, side by side.

Time is virtual and whole: every time-dependent part (quotas and burst sizes, cache TTLs,
leases, breakers, SDK retry backoffs, refresh waits, metric timestamps and their publication
delay) reads one clock of AWS time, and nothing is scaled. Each execution decides once every
``--interval`` seconds for ``--duration`` seconds of AWS time; every AWS call is a real HTTP
request to moto behind the quota layer, counted at the server. See ``aws_fleet`` for what one
decision is per contender, ``accuracy`` for the changing-load scenarios.

Runs are independent (each has its own server, account and clock) and go to ``--jobs``
processes, largest first.

Usage::

    python benchmarks/aws_time.py            # the full set (see --help)
    python benchmarks/aws_time.py --quick    # small sizes, 3 AWS-minutes
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aws_jobs import run_job  # noqa: E402
from aws_report import WARM_UP_S, checks, plot_calls, render  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Per contender: the sizes it runs at, and (size -> AWS seconds) where a size runs shorter than
# --duration because its per-decision cost would not fit the time budget (said in the report).
FULL_SIZES = {"ours": [10, 100, 1000, 5000], "per-container": [10, 100, 1000], "naive": [10, 100, 1000],
              "sosw": [10, 100, 1000], "sosw-best": [10, 100]}
FULL_SHORTER = {("naive", 1000): 120.0, ("sosw", 1000): 30.0, ("per-container", 1000): 300.0,
                ("sosw", 100): 300.0, ("sosw-best", 100): 300.0, ("ours", 1000): 420.0,
                ("ours", 5000): 420.0}
"""What keeps ``make bench`` under 15 minutes on 2 cores: every request costs about 5 ms of
CPU here (client and server in one process; the embedded server opens a connection per
request), so ours at N=5,000 runs 140,000 decisions in 7 AWS-minutes, the longest job: enough
for GetMetricData's steady rate, the outage and the hot keys, and for one rule-state refresh
after the warm-up's (the EventBridge target is their cadence, see ``aws_report.rule_state_rate``)."""
QUICK_SIZES = {"ours": [10, 100], "per-container": [10, 100], "naive": [10, 100], "sosw": [10],
               "sosw-best": [10]}
# Many functions in one account (the account-wide refresher): (contender, N each, functions,
# AWS seconds at most).
FULL_ACCOUNTS = [("ours", 100, 20, 300.0)]
QUICK_ACCOUNTS = [("ours", 10, 20, 180.0)]
OUTAGE_FROM_N = 100
"""ours' runs from this N up (every size given with --sizes) get the injected DynamoDB outage
(its cost must not grow with N)."""
OUTAGE_AFTER_WARM_UP_S = 30.0
"""The outage starts this long after the warm-up, so the steady state after it is one unbroken
stretch (at 10 minutes it holds two rule-state refreshes, measured between calls)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes 10 and 100, 3 AWS-minutes")
    parser.add_argument("--contenders", default="ours,per-container,naive,sosw,sosw-best")
    parser.add_argument("--only", help="only these runs ('accuracy': the changing-load scenarios), "
                        "e.g. 'ours:5000' or 'ours:10,naive:100' "
                        "(to split a full run over machines or time; merge with --render-only)")
    parser.add_argument("--skip", help="leave out these runs (same form as --only)")
    parser.add_argument("--no-accounts", action="store_true",
                        help="skip the many-functions-in-one-account runs")
    parser.add_argument("--sizes", help="one list of sizes for every contender (default per contender)")
    parser.add_argument("--duration", type=float, help="AWS seconds per run (default 600, quick 180)")
    parser.add_argument("--interval", type=float, default=15.0, help="AWS seconds between decisions")
    parser.add_argument("--ttl", type=float, default=60.0, help="estimate cache TTL (AWS s)")
    parser.add_argument("--rules-ttl", type=float, default=300.0, help="rule-state TTL (AWS s)")
    parser.add_argument("--outage", type=float, default=60.0,
                        help="AWS seconds of DynamoDB outage injected in ours' runs from N=100 (0: none)")
    parser.add_argument("--delay", type=float, default=60.0, help="CloudWatch publication delay (s)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--render-only", action="store_true",
                        help="re-render aws_time.md and the calls plot from --output-dir's aws_time.json")
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 180.0 if args.quick else 600.0
    args.contenders = [c for c in args.contenders.split(",") if c]
    if any(c.startswith("sosw") for c in args.contenders):
        import importlib.util

        if importlib.util.find_spec("sosw") is None:
            parser.error("the sosw contender needs sosw==0.7.47: pip install -e '.[bench]'")
    return args


def job_specs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every run to make, largest first (the longest job starts first)."""
    base = {"interval_s": args.interval, "ttl_s": args.ttl, "rules_ttl_s": args.rules_ttl,
            "seed": args.seed}
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    specs: list[dict[str, Any]] = []
    for contender in args.contenders:
        chosen = [int(s) for s in args.sizes.split(",")] if args.sizes else sizes[contender]
        for size in chosen:
            shorter = None if args.quick or args.sizes else FULL_SHORTER.get((contender, size))
            specs.append({**base, "kind": "fleet", "contender": contender, "size": size,
                          "duration_s": min(args.duration, shorter or args.duration)})
    if not args.no_accounts:
        for contender, size, functions, longest in QUICK_ACCOUNTS if args.quick else FULL_ACCOUNTS:
            if contender in args.contenders:
                specs.append({**base, "kind": "fleet", "contender": contender, "size": size,
                              "functions": functions, "duration_s": min(args.duration, longest)})
    def named(spec: dict[str, Any], runs: str | None) -> bool:
        return named_run(f"{spec['contender']}:{spec['size']}", runs)

    specs = [spec for spec in specs if (args.only is None or named(spec, args.only))
             and not named(spec, args.skip)]
    for spec in specs:
        big_enough = args.sizes is not None or spec["size"] >= OUTAGE_FROM_N  # --sizes: every run
        if (args.outage > 0 and spec["contender"] == "ours" and big_enough
                and spec.get("functions", 1) == 1):
            spec.update(outage_at_s=WARM_UP_S + OUTAGE_AFTER_WARM_UP_S, outage_s=args.outage)
    # ``--only accuracy`` re-runs the changing-load scenarios alone.
    for scenario in ("step", "ramp") if args.only is None or named_run("accuracy", args.only) else ():
        specs.append({"kind": "accuracy", "scenario": scenario, "delay_s": args.delay,
                      "interval_s": args.interval, "ttl_s": args.ttl, "minutes_back": 5,
                      "execution_s": 30.0, "max_concurrency": 250, "seed": args.seed})
    return sorted(specs, key=lambda s: -s.get("size", 0) * s.get("functions", 1) * s.get("duration_s", 0))


def named_run(name: str, runs: str | None) -> bool:
    """Whether ``name`` (``contender:size`` or ``accuracy``) is in a ``--only``/``--skip`` list."""
    return name in (runs or "").split(",")


def run_all(specs: list[dict[str, Any]], jobs: int) -> list[dict[str, Any]]:
    """Each spec in a fresh process (moto's backends are per process), ``jobs`` at a time."""
    results: list[dict[str, Any]] = []
    context = multiprocessing.get_context("spawn")
    with context.Pool(jobs, maxtasksperchild=1) as pool:
        for result in pool.imap_unordered(run_job, specs):
            results.append(result)
            if result["kind"] == "fleet":
                size = f"{result['functions']}x{result['size']}"
                print(f"  {result['label']:<44} N={size:<7} {result['decisions']:>7} "
                      f"decisions {result['failed']:>5} failed {result['throttled']:>6} throttled  "
                      f"wall {result['wall_s']:6.1f}s", file=sys.stderr, flush=True)
            else:
                print(f"  accuracy: {result['scenario']}", file=sys.stderr, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run every job, print the report and write .md, .json and the plots."""
    args = parse_args(argv)
    if args.render_only:
        return rerender(args)
    shown = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "benchmarks/aws_time.py", *shown])
    started = time.perf_counter()
    load = os.getloadavg()[0]
    results = run_all(job_specs(args), args.jobs)
    elapsed = time.perf_counter() - started
    fleets = sorted((r for r in results if r["kind"] == "fleet"),
                    key=lambda r: (r["contender"], r.get("functions", 1), r["size"]))
    accuracy = sorted((r for r in results if r["kind"] == "accuracy"), key=lambda r: r["scenario"])
    machine = (f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {args.jobs} processes, load "
               f"average {load:.1f} at start, {os.getloadavg()[0]:.1f} at the end")
    targets = checks(fleets, accuracy, args)
    report = render(command=command, args=args, fleets=fleets, accuracy=accuracy, targets=targets,
                    wall_s=elapsed, machine=machine)
    sys.stdout.write(report)
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "aws_time.md").write_text(report)
    summary = {"command": command, "wall_s": round(elapsed, 1), "machine": machine,
               "targets": targets, "fleets": fleets,
               "accuracy": [{k: v for k, v in r.items() if k != "samples"} for r in accuracy]}
    (out / "aws_time.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    if fleets:
        plot_calls(fleets, args, out / "aws_time_calls.png")
    if accuracy:
        from accuracy import plot

        plot(accuracy, out / "aws_time_accuracy.png")
    return 0


def rerender(args: argparse.Namespace) -> int:
    """The report and calls plot again from a run's JSON (after a change to the report only)."""
    summary = json.loads((args.output_dir / "aws_time.json").read_text())
    targets = checks(summary["fleets"], summary["accuracy"], args)
    report = render(command=summary["command"], args=args, fleets=summary["fleets"],
                    accuracy=summary["accuracy"], targets=targets, wall_s=summary["wall_s"],
                    machine=summary["machine"])
    (args.output_dir / "aws_time.md").write_text(report)
    summary["targets"] = targets
    (args.output_dir / "aws_time.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    plot_calls(summary["fleets"], args, args.output_dir / "aws_time_calls.png")
    sys.stdout.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
