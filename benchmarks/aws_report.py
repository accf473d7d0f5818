"""The AWS-time benchmark's report: tables, targets and the calls-per-function-minute plot."""

from __future__ import annotations

import argparse
from typing import Any

from aws_jobs import PRICES

PARTITION_READS, PARTITION_WRITES = 3000, 1000
GMD_QUOTA = 50


def limit_line(args: argparse.Namespace) -> float:
    """Fewest control-plane calls per function-minute a fleet-wide cache can make: one
    GetMetricData per estimate TTL, two EventBridge calls per rule-state TTL."""
    return 60 / args.ttl + 2 * 60 / args.rules_ttl


def steady_rate(result: dict[str, Any]) -> float:
    """Control-plane calls per function-minute, leaving out an injected outage's window."""
    outage = result.get("outage")
    if not outage:
        return float(result["control_plane_per_function_minute"])
    minutes = (result["duration_s"] - outage["length_s"]) / 60
    return (result["control_plane_calls"] - outage["control_plane_calls"]) / minutes


def _find(fleets: list[dict[str, Any]], contender: str, size: int) -> dict[str, Any] | None:
    return next((r for r in fleets if r["contender"] == contender and r["size"] == size), None)


def checks(fleets: list[dict[str, Any]], accuracy: list[dict[str, Any]],
           args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each target of the issue: what it asks, what was measured, met or not."""
    out: list[dict[str, Any]] = []
    ours = [r for r in fleets if r["contender"] == "ours"]
    line = limit_line(args)

    def add(name: str, met: bool, measured: str) -> None:
        out.append({"name": name, "met": bool(met), "measured": measured})

    if ours:
        ratios = {r["size"]: steady_rate(r) / line for r in ours}
        add(f"ours within 1.2x of the limit line ({line:g} calls per function-minute) at every N "
            "(a run with an outage: outside the outage)",
            all(v <= 1.2 for v in ratios.values()),
            ", ".join(f"N={n}: {v:.2f}x" for n, v in ratios.items()))
        add("ours: 0 throttled requests and 0 failed decisions at every N",
            all(r["throttled"] == 0 and r["failed"] == 0 for r in ours),
            ", ".join(f"N={r['size']}: {r['throttled']} throttled, {r['failed']} failed" for r in ours))
    seed, mine = _find(fleets, "sosw", 100), _find(fleets, "ours", 100)
    if seed and mine:
        ratio = seed["control_plane_per_decision"] / max(mine["control_plane_per_decision"], 1e-12)
        add(">= 1,000x fewer control-plane calls per decision than sosw 0.7.47 at N=100 "
            "(sosw unthrottled)", ratio >= 1000 and seed["throttled"] == 0,
            f"sosw {seed['control_plane_per_decision']:.2f} ({seed['throttled']} throttled), ours "
            f"{mine['control_plane_per_decision']:.5f} per decision: {ratio:,.0f}x")
    if ours:
        big = max(ours, key=lambda r: r["size"])
        add(f"N={big['size']}: no item above 50% of a partition (1,500 reads/s, 500 writes/s)",
            big["max_item_reads_per_s"] <= PARTITION_READS / 2
            and big["max_item_writes_per_s"] <= PARTITION_WRITES / 2,
            f"hottest item {big['max_item_reads_per_s']:g} RRU/s ({big['hottest_read_item']}), "
            f"{big['max_item_writes_per_s']:g} WRU/s ({big['hottest_write_item']})")
        outage = big.get("outage")
        if outage:
            add(f"N={big['size']}, {outage['length_s']:g} s DynamoDB outage: GetMetricData under "
                f"{GMD_QUOTA} TPS", outage["max_getmetricdata_per_s"] < GMD_QUOTA,
                f"max {outage['max_getmetricdata_per_s']} per AWS second, mean "
                f"{outage['mean_getmetricdata_per_s']:.2f}/s; {outage['injected_errors']} injected errors")
    return out


def _fleet_table(fleets: list[dict[str, Any]], line: float) -> list[str]:
    rows = ["| contender | N | AWS min | decisions | successful | control-plane calls | per function-minute "
            "| outside an outage | x limit | per decision | throttled | SDK retries | DynamoDB req/decision "
            "| $ per 1M decisions | max GetMetricData/s | wall s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in fleets:
        rows.append(
            f"| {r['label']} | {r['size']:,} | {r['duration_s'] / 60:g} | {r['decisions']:,} | "
            f"{r['successful_pct']:.1f}% | {r['control_plane_calls']:,} | "
            f"{r['control_plane_per_function_minute']:,.2f} | "
            f"{steady_rate(r):,.2f} | {steady_rate(r) / line:,.2f} | "
            f"{r['control_plane_per_decision']:.4g} | {r['throttled']:,} | {r['retries']:,} | "
            f"{r['dynamodb_per_decision']:.3f} | "
            f"{r['usd_per_million_decisions']:.3f} | {r['max_getmetricdata_per_s']} | {r['wall_s']:.0f} |")
    return rows


def _calls_table(fleets: list[dict[str, Any]]) -> list[str]:
    rows = ["| contender | N | calls by action (calls / throttled) |", "|---|---:|---|"]
    for r in fleets:
        text = ", ".join(f"{k} {v['calls']:,}/{v['throttled']:,}" for k, v in r["calls"].items())
        rows.append(f"| {r['label']} | {r['size']:,} | {text} |")
    return rows


def _herd_table(fleets: list[dict[str, Any]]) -> list[str]:
    rows = ["| N | hottest item: RRU per AWS second | item | WRU per AWS second | item |",
            "|---:|---:|---|---:|---|"]
    for r in (f for f in fleets if f["contender"] == "ours"):
        rows.append(f"| {r['size']:,} | {r['max_item_reads_per_s']:g} | `{r['hottest_read_item']}` | "
                    f"{r['max_item_writes_per_s']:g} | `{r['hottest_write_item']}` |")
    return rows


def _accuracy_table(accuracy: list[dict[str, Any]]) -> list[str]:
    rows = ["| scenario | signal | settle time after each change (s) | mean abs. error | admitted while "
            "truth >= max_concurrency | refused while truth < max_concurrency |",
            "|---|---|---|---:|---:|---:|"]
    for result in accuracy:
        for signal, score in result["signals"].items():
            settle = ", ".join("never" if s is None else f"{s:g}" for s in score["settle_s"])
            changes = ", ".join(str(c) for c in result["changes"])
            rows.append(f"| {result['scenario']} (changes at {changes} s) | {signal} | {settle} | "
                        f"{score['mae']:.1f} | {score['admitted_while_over_pct']:.0f}% | "
                        f"{score['refused_while_under_pct']:.0f}% |")
    return rows


SIGNAL_ADVICE = [
    "Little's law averages the window: it lags both edges by up to the window, and under the "
    "publication delay the window's newest minute is not yet published, so it counts as zero and a "
    "steady load reads about (window - 1) / window of itself. The observed peak sees a rise one "
    "publication delay plus a minute after it happens and holds a fallen peak for the whole "
    "window; `max` is the higher of the two (the peak, whenever executions are shorter than a "
    "minute's worth of the window).",
    "",
    "**Which to pick.** A guard that protects something (a database, a partner API, the account's "
    "other functions) and must not admit while over the limit: `observed_peak` or `max` (see "
    "'admitted while truth >= max_concurrency'). sosw's behaviour, steady loads, or a guard that "
    "should not stay shut for a window after a burst: `littles_law` (see 'refused while truth < "
    "max_concurrency').",
]

NOTES = [
    "**One clock of AWS time, nothing scaled.** Quotas run at AWS's default rates with a bucket "
    "of one AWS second; cache TTLs, leases, breaker back-offs, the wait for another execution's "
    "refresh (injected `sleep`), botocore's retry back-offs (its `time.sleep` patched), metric "
    "timestamps and their publication delay, and sosw's `datetime.now()` (patched) all read the "
    "same virtual clock. A sleep moves only the sleeping execution's time.",
    "**Not modelled: request latency.** A request takes no AWS time (the server's latency here is "
    "moto's on a shared 2-core machine, not AWS's), and decisions run one at a time in time order. "
    "So two containers never race for a lease inside one request's latency: the single flight is "
    "exercised by the lease and the jittered expiry, not by overlapping requests. Containers stay "
    "warm for the whole run (each starts cold at its first decision); Lambda's container churn is "
    "not modelled.",
    "**A decision, per contender** (no Invoke in any: it costs the same for all). ours: the three "
    "guards `spawn_sibling` runs before its Invoke (kill switch: one consistent GetItem, or the "
    "cold container's BatchGetItem with rule state and estimate; EventBridge rule state; "
    "concurrency estimate), each container with its own memory tier, breaker, kill switch and "
    "refresh jitter. naive: one uncached GetMetricData. sosw 0.7.47: "
    "`get_approximate_concurrent_executions()` (two GetMetricStatistics) and "
    "`any_events_rules_enabled()` (ListRules, then ListTargetsByRule for each enabled rule; the "
    "account has 4 enabled rules of another function that sort first, then the function's own).",
    "**Shared clients.** boto3 clients hold no cache, so containers share them (5,000 sets would "
    "not fit in memory); botocore's standard-mode retry quota is then shared too, which only "
    "matters when a contender is throttled. sosw keeps no state between calls: one manager serves "
    "every container at the same cost per decision.",
    "**Sizes.** Every size runs for the full AWS time unless the fleet table says fewer AWS minutes: "
    "naive and sosw cost one to eight server round trips per decision on this machine, so their "
    "N=1,000 runs are shorter and they do not run at N=5,000. Their calls per decision do not "
    "depend on N; only throttling grows with it (shown at N=1,000).",
    "**Cost column**: CloudWatch metrics requested (GetMetricData: 4 per call, 3 per function and "
    "the account's; GetMetricStatistics: 1 per call) and DynamoDB request units as metered, at the "
    "list prices below; throttled CloudWatch calls are not billed; EventBridge list/describe calls "
    "and Lambda's control plane are free.",
    "**Against the limit line**: the line assumes one refresh per TTL. The library refreshes "
    "early, when the first reader enters the last `refresh_ahead_fraction` (20%) of a value's TTL, "
    "so that the fleet's reads spread over that window: up to 1 / (1 - 0.2) = 1.25x the line in "
    "steady state, reached at large N where some reader enters the window at once (less at small "
    "N). A 10-minute "
    "run also starts cold: every value is fetched once at its start on top of the TTL's share.",
    "**Outage**: every DynamoDB item call is answered with "
    "ProvisionedThroughputExceededException during the window (injected before the quota layer, "
    "so not counted as quota throttles); the library's breaker, pynamodb's retries and the bounded "
    "outage refresh (`outage_refresh_probability`) run as they would.",
]


def render(*, command: str, args: argparse.Namespace, fleets: list[dict[str, Any]],
           accuracy: list[dict[str, Any]], targets: list[dict[str, Any]], wall_s: float,
           machine: str) -> str:
    """The whole report as markdown."""
    line = limit_line(args)
    lines = [
        "# AWS-time benchmark", "",
        f"Command: `{command}`  ", f"Wall time: {wall_s:.0f} s on {machine}.", "",
        "## Targets", "", "| target | met | measured |", "|---|---|---|",
        *[f"| {t['name']} | {'yes' if t['met'] else '**no**'} | {t['measured']} |" for t in targets], "",
        "## Fleets", "",
        f"Each execution decides every {args.interval:g} s of AWS time; estimate TTL {args.ttl:g} s, "
        f"rule-state TTL {args.rules_ttl:g} s; the limit line is 60/TTL + 2·60/rules-TTL = "
        f"{line:g} control-plane calls per function-minute. Counted at the server after setup; "
        "control plane = CloudWatch + EventBridge + Lambda other than Invoke.", "",
        *_fleet_table(fleets, line), "", *_calls_table(fleets), "",
        "## Herds", "",
        "Per-item DynamoDB capacity, metered per AWS second by hash key (a partition serves 3,000 "
        "RRU or 1,000 WRU per second; the target is half of that).", "", *_herd_table(fleets), "",
    ]
    outage = next((r["outage"] for r in fleets if r.get("outage")), None)
    if outage:
        lines += [f"DynamoDB outage: every item call throttled from AWS second {outage['start_s']:g} for "
                  f"{outage['length_s']:g} s ({outage['injected_errors']:,} injected errors, counted apart "
                  f"from quota throttles): {outage['getmetricdata_calls']} GetMetricData calls, at most "
                  f"{outage['max_getmetricdata_per_s']} in one AWS second (quota {GMD_QUOTA}); "
                  f"{outage['control_plane_calls']} control-plane calls in all during the outage (the "
                  "fleet table's figure for that run includes them; the 1.2x target leaves them out).", ""]
    if accuracy:
        first = accuracy[0]
        lines += ["## Accuracy under changing load", "",
                  f"One warm container decides every {first['interval_s']:g} s through the cache "
                  f"(TTL {first['ttl_s']:g} s, window {first['minutes_back']} min); Lambda's metrics of "
                  f"each minute become visible {first['delay_s']:g} s after it closes; executions last "
                  f"{first['execution_s']:g} s; max_concurrency {first['max_concurrency']}. Settle "
                  "time: from the change until the estimate stays within ±20% of the truth up to the "
                  "next change. Each minute's datapoints: the minute's mean concurrency x 60 / duration "
                  "invocations (as if each execution finished in the minute it ran), the duration, and "
                  "the minute's highest concurrency as ConcurrentExecutions.", "",
                  *_accuracy_table(accuracy), "", "![estimate vs truth](aws_time_accuracy.png)", "",
                  *SIGNAL_ADVICE, ""]
    lines += ["## How it is measured", "", *[f"* {note}" for note in NOTES], "",
              "## Prices", "", *[f"* {k}: {v}" for k, v in PRICES.items()], "",
              "![calls per function-minute](aws_time_calls.png)", ""]
    return "\n".join(lines)


def plot_calls(fleets: list[dict[str, Any]], args: argparse.Namespace, path: Any) -> None:
    """Control-plane calls per function-minute against N, log-log, with the limit line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7, 4.5))
    for contender in dict.fromkeys(r["contender"] for r in fleets):
        rows = [r for r in fleets if r["contender"] == contender]
        axis.plot([r["size"] for r in rows], [steady_rate(r) for r in rows], "o-", label=rows[0]["label"])
        for r in (r for r in rows if r.get("outage")):
            axis.plot([r["size"]], [r["control_plane_per_function_minute"]], "x", color="red",
                      label=f"{rows[0]['label']}, N={r['size']:,} with its "
                      f"{r['outage']['length_s']:g} s DynamoDB outage")
    sizes = sorted({r["size"] for r in fleets})
    line = limit_line(args)
    axis.plot(sizes, [line] * len(sizes), "k--", label=f"limit: 60/TTL + 2·60/rules-TTL = {line:g}")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("fleet size N (concurrent executions)")
    axis.set_ylabel("control-plane calls per function-minute")
    axis.set_title(f"one decision per execution every {args.interval:g} s of AWS time "
                   "(outside an injected outage)", fontsize=10)
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
