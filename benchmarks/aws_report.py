"""The AWS-time benchmark's report: tables, targets and the calls-per-function-minute plot."""

from __future__ import annotations

import argparse
import math
from typing import Any

from aws_jobs import PRICES

PARTITION_READS, PARTITION_WRITES = 3000, 1000
HOT_KEY_SHARE = 0.25
GMD_QUOTA = 50
OUTAGE_GMD_CEILING = 5
EVENTBRIDGE = ("ListRuleNamesByTarget", "DescribeRule", "ListRules", "ListTargetsByRule")
CLOUDWATCH = ("GetMetricData", "GetMetricStatistics")
BASELINES = ("per-container", "naive", "sosw-best", "sosw")


def limit_line(args: argparse.Namespace) -> float:
    """Fewest control-plane calls per function-minute of one function a fleet-wide cache makes
    with one refresh per TTL: one GetMetricData per estimate TTL, one DescribeRule per
    rule-state TTL, one ListRuleNamesByTarget per hour (the rule names' TTL)."""
    return 60 / args.ttl + 60 / args.rules_ttl + 60 / 3600


WARM_UP_S = 60.0
"""The warm-up: the first AWS minute, in which every container makes its first (cold) decision."""


def phase_rate(result: dict[str, Any], actions: tuple[str, ...], steady: bool = True) -> float:
    """Calls of ``actions`` per function-minute: in the warm-up (the first minute, when every
    container starts cold) or in the steady state after it. An injected outage splits the steady
    state into stretches before and after it (its own calls, and the refresh it leaves due at its
    end, are the outage's cost). With one function, the rate is measured between consecutive
    calls of each stretch (a refresh every 55 s is 1.09 a minute, whichever boundaries the run
    crosses); with several functions (a series each), or under two calls a stretch, as calls
    over the stretches' time."""
    seconds = result.get("per_second")
    if seconds is None:
        return float("nan")
    functions, end = result.get("functions", 1), result["duration_s"]
    calls = sorted((t, n) for action in actions for t, n in seconds.get(action, []))
    if not steady:
        return sum(n for t, n in calls if t < WARM_UP_S) / (WARM_UP_S / 60) / functions
    outage = result.get("outage")
    if outage:
        gap_end = outage["start_s"] + outage["length_s"]
        stretches = [(WARM_UP_S, outage["start_s"]), (gap_end + 1, end)]  # its end's refresh: its
    else:
        stretches = [(WARM_UP_S, end)]
    stretches = [(a, b) for a, b in stretches if b > a]
    intervals, timed, count, span = 0, 0.0, 0, 0.0
    for a, b in stretches:
        kept = [(t, n) for t, n in calls if a <= t < b]
        count, span = count + sum(n for _, n in kept), span + (b - a)
        if len(kept) >= 2:
            intervals += sum(n for _, n in kept) - kept[0][1]
            timed += kept[-1][0] - kept[0][0]
    if functions == 1 and timed > 0:
        return intervals / (timed / 60)
    return count / (span / 60) / functions if span > 0 else float("nan")


def rule_state_rate(result: dict[str, Any]) -> float:
    """EventBridge calls per function-minute of one function's rule state in the long run: the
    measured DescribeRule cadence (the mean interval between consecutive calls of the whole
    run, the warm-up's first included, the outage window's left out) plus the hourly rule-name
    listing at its configured period. A run of 10 minutes or less holds at most one steady
    refresh and no second listing, so counting calls in the steady window would read whatever
    the run's end happens to cut (one call in 299 s: 0.20; in 239 s: 0.25)."""
    seconds = result.get("per_second")
    if seconds is None:
        return float("nan")
    outage = result.get("outage")
    window = (outage["start_s"], outage["start_s"] + outage["length_s"] + 1) if outage else (0, 0)
    times = sorted(t for t, n in seconds.get("DescribeRule", []) for _ in range(n)
                   if not window[0] <= t < window[1])
    if len(times) < 2:
        return float("nan")
    cadence = (times[-1] - times[0]) / (len(times) - 1)
    return 60 / cadence + 60 / RULE_NAMES_PERIOD_S


RULE_NAMES_PERIOD_S = 3600.0
"""How often the rule names are listed again (``rule_names_ttl_seconds``' default)."""


def steady_rate(result: dict[str, Any]) -> float:
    """Control-plane calls per function-minute in the steady state (see :func:`phase_rate`; ours'
    rule state of one function: :func:`rule_state_rate`)."""
    events = float("nan")
    if result["contender"] == "ours" and result.get("functions", 1) == 1:
        events = rule_state_rate(result)
    if math.isnan(events):
        events = phase_rate(result, EVENTBRIDGE)
    return phase_rate(result, CLOUDWATCH) + events


def _find(fleets: list[dict[str, Any]], contender: str, size: int,
          functions: int = 1) -> dict[str, Any] | None:
    return next((r for r in fleets if r["contender"] == contender and r["size"] == size
                 and r.get("functions", 1) == functions), None)


def _n(r: dict[str, Any]) -> str:
    functions = r.get("functions", 1)
    return f"{functions}x{r['size']:,}" if functions > 1 else f"{r['size']:,}"


def checks(fleets: list[dict[str, Any]], accuracy: list[dict[str, Any]],
           args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each target of the issue: what it asks, what was measured, met or not."""
    out: list[dict[str, Any]] = []

    def add(name: str, met: bool, measured: str) -> None:
        out.append({"name": name, "met": bool(met), "measured": measured})

    ours = [r for r in fleets if r["contender"] == "ours"]
    single = [r for r in ours if r.get("functions", 1) == 1]
    accounts = [r for r in ours if r.get("functions", 1) > 1]
    if single:
        gmd = {r["size"]: phase_rate(r, ("GetMetricData",)) for r in single}
        add("1 function: <= 1.1 GetMetricData per function-minute in steady state at every N "
            f"(one refresh per TTL is {60 / args.ttl:g}; early refresh within 1.1x of it)",
            all(v <= 1.1 * 60 / args.ttl for v in gmd.values()),
            ", ".join(f"N={n}: {v:.2f}" for n, v in gmd.items()))
        events = {r["size"]: rule_state_rate(r) for r in single}
        add("<= 0.25 EventBridge calls per function-minute in steady state at default TTLs "
            "(the measured DescribeRule cadence plus the hourly name listing)",
            all(v <= 0.25 for v in events.values()),
            ", ".join(f"N={n}: {v:.3f}" for n, v in events.items()))
    for r in accounts:
        value = phase_rate(r, ("GetMetricData",))
        add(f"{r['functions']} functions at N={r['size']} each: <= 0.1 GetMetricData per "
            "function-minute in steady state", value <= 0.1,
            f"{value:.3f} (warm-up {phase_rate(r, ('GetMetricData',), False):.2f})")
    if ours:
        add("ours: 0 throttled requests and 0 failed decisions at every N",
            all(r["throttled"] == 0 and r["failed"] == 0 for r in ours),
            ", ".join(f"N={_n(r)}: {r['throttled']} throttled, {r['failed']} failed" for r in ours))
        outages = [r for r in ours if r.get("outage")]
        if outages:
            add(f"DynamoDB outage: the fleet's GetMetricData <= {OUTAGE_GMD_CEILING} per AWS second "
                "at every N", all(r["outage"]["max_getmetricdata_per_s"] <= OUTAGE_GMD_CEILING
                                  for r in outages),
                ", ".join(f"N={_n(r)}: max {r['outage']['max_getmetricdata_per_s']}/s, mean "
                          f"{r['outage']['mean_getmetricdata_per_s']:.2f}/s" for r in outages))
        big = max(single or ours, key=lambda r: r["size"])
        limit = PARTITION_READS * HOT_KEY_SHARE
        add(f"N={big['size']}: no item above {HOT_KEY_SHARE:.0%} of a partition's reads "
            f"({limit:g} RRU/s)", big["max_item_reads_per_s"] <= limit,
            f"hottest {big['max_item_reads_per_s']:g} RRU/s ({big['hottest_read_item']}); "
            f"{big['max_item_writes_per_s']:g} WRU/s ({big['hottest_write_item']})")
    return out


def _fleet_table(fleets: list[dict[str, Any]]) -> list[str]:
    rows = ["| contender | N | AWS min | decisions | successful | control plane per fn-min (run) "
            "| CloudWatch per fn-min: warm-up / steady | EventBridge per fn-min: warm-up / steady "
            "| requests per decision (all) | DynamoDB per decision | requests per spawn | throttled "
            "| $ per 1M decisions | $ per 1M spawns | max GetMetricData/s | wall s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in fleets:
        cw = (phase_rate(r, CLOUDWATCH, False), phase_rate(r, CLOUDWATCH))
        eb = (phase_rate(r, EVENTBRIDGE, False),
              phase_rate(r, EVENTBRIDGE))
        rows.append(
            f"| {r['label']} | {_n(r)} | {r['duration_s'] / 60:g} | {r['decisions']:,} | "
            f"{r['successful_pct']:.1f}% | {r['control_plane_per_function_minute']:,.2f} | "
            f"{cw[0]:,.2f} / {cw[1]:,.2f} | {eb[0]:,.2f} / {eb[1]:,.2f} | "
            f"{r['requests_per_decision']:.4g} | {r['dynamodb_per_decision']:.3f} | "
            f"{r['requests_per_spawn']:.4g} | {r['throttled']:,} | "
            f"{r['usd_per_million_decisions']:.3f} | {r['usd_per_million_spawns']:.3f} | "
            f"{r['max_getmetricdata_per_s']} | {r['wall_s']:.0f} |")
    return rows


def _ratio_table(fleets: list[dict[str, Any]]) -> list[str]:
    """Per N: how many times fewer requests (all, per decision) and control-plane calls (per
    function-minute, steady state) ours makes than each baseline run at that N."""
    present = [b for b in BASELINES if any(r["contender"] == b for r in fleets)]
    labels = {r["contender"]: r["label"] for r in fleets}
    rows = ["| N | " + " | ".join(labels[b] for b in present) + " |",
            "|---:|" + "---|" * len(present)]
    for mine in (r for r in fleets if r["contender"] == "ours" and r.get("functions", 1) == 1):
        cells = []
        for baseline in present:
            other = _find(fleets, baseline, mine["size"])
            if other is None:
                cells.append("not run")
                continue
            requests = other["requests_per_decision"] / max(mine["requests_per_decision"], 1e-12)
            control = steady_rate(other) / max(steady_rate(mine), 1e-12)
            note = f" ({other['throttled']:,} throttled)" if other["throttled"] else ""
            if math.isnan(control):  # a run no longer than the warm-up has no steady state
                whole = "control_plane_per_function_minute"
                control = other[whole] / max(mine[whole], 1e-12)
                note = f" (whole runs: it ran no longer than the warm-up; {other['throttled']:,} throttled)"
            cells.append(f"{requests:,.1f}x requests, {control:,.0f}x control plane{note}")
        rows.append(f"| {mine['size']:,} | " + " | ".join(cells) + " |")
    return rows


def _calls_table(fleets: list[dict[str, Any]]) -> list[str]:
    rows = ["| contender | N | calls by action (calls / throttled) | CloudWatch metrics requested |",
            "|---|---:|---|---|"]
    for r in fleets:
        text = ", ".join(f"{k} {v['calls']:,}/{v['throttled']:,}" for k, v in r["calls"].items())
        metrics = ", ".join(f"{k} {v:,}" for k, v in r.get("metrics_requested", {}).items())
        rows.append(f"| {r['label']} | {_n(r)} | {text} | {metrics} |")
    return rows


def _herd_table(fleets: list[dict[str, Any]]) -> list[str]:
    rows = ["| N | hottest item: RRU per AWS second | item(s) | WRU per AWS second | item(s) |",
            "|---:|---:|---|---:|---|"]
    for r in (f for f in fleets if f["contender"] == "ours"):
        rows.append(f"| {_n(r)} | {r['max_item_reads_per_s']:g} | `{r['hottest_read_item']}` | "
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
    "Little's law averages the window: it lags both edges by up to the window. The window ends "
    "`publication_delay_seconds` (60 s) before now, at the last minute Lambda has published, so "
    "a steady load reads itself (the unpublished minute no longer counts as zero; before this "
    "round a steady load read about (window - 1) / window of itself), at the price of one more "
    "minute of lag after each change. The observed peak sees a rise one "
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
    "exercised by the leases (the function's, then the account's) and the jittered expiry, not by "
    "overlapping requests; the wait for another process's account refresh is tested, not "
    "exercised here. Containers stay warm for the whole run (each starts cold at its first "
    "decision); Lambda's container churn is not modelled. Decisions come every interval from a "
    "random phase, so the fleet's reads spread over the interval whatever the read window.",
    "**A decision, per contender** (no Invoke in any: it costs the same for all). ours: the three "
    "guards `spawn_sibling` runs before its Invoke (kill switch: one eventually consistent "
    "GetItem, or the cold container's BatchGetItem with rule state and estimate; EventBridge rule "
    "state; concurrency estimate), each container with its own memory tier, breaker, kill switch "
    "and refresh jitter. per-container cache: the same guards with no table (what a user writes "
    "instead: each container caches the estimate for the TTL and the rule state for the rules "
    "TTL in memory; no kill switch). naive: one uncached GetMetricData per decision asking for "
    "what Little's law needs (Invocations and Duration: 2 metrics). sosw 0.7.47: "
    "`get_approximate_concurrent_executions()` (two GetMetricStatistics) and "
    "`any_events_rules_enabled()` (ListRules, then ListTargetsByRule for each enabled rule until "
    "the function's own: the account has 4 enabled rules of another function), in its best order "
    "(own rule first) and its worst (own rule last).",
    "**Many functions, one account**: 20 functions of 100 executions each, one table; each "
    "container guards its own function. The account refresher brings all 20 estimates in one "
    "GetMetricData per TTL.",
    "**Shared clients.** boto3 clients hold no cache, so containers share them (5,000 sets would "
    "not fit in memory); botocore's standard-mode retry quota is then shared too, which only "
    "matters when a contender is throttled. sosw keeps no state between calls: one manager serves "
    "every container at the same cost per decision.",
    "**Sizes.** Every size runs for the full AWS time unless the fleet table says fewer AWS minutes: "
    "the baselines cost one to eight server round trips per decision on this machine, so their "
    "N=1,000 runs are shorter and they do not run at N=5,000. Their calls per decision do not "
    "depend on N; only throttling grows with it (shown at N=1,000). sosw at N=100, ours at "
    "N=1,000 and 5,000 and the 20 functions run shorter too, so that `make bench` fits in 15 "
    "minutes on 2 cores: their GetMetricData, outage and hot-key figures need a few refreshes, "
    "which 5-7 minutes hold; sosw at N=1,000 (30 s) shows throttling only and has no steady "
    "state.",
    "**Cost columns**: CloudWatch metrics requested as metered in each request (GetMetricData: "
    "its queries, 3 per function and the account's for ours, 2 for naive; GetMetricStatistics: 1 "
    "per call) and DynamoDB request units as metered, at the list prices below; throttled "
    "CloudWatch calls are not billed; EventBridge list/describe calls and Lambda's control plane "
    "are free. Per spawn: a decision plus ours' ledger writes (3 requests, 4 write units; "
    "`spawn_path.md`).",
    "**Early refresh**: the first reader in the last `refresh_ahead_fraction` (8%) of a value's "
    "TTL refreshes it, and each process reads the item again at a random moment of that window: "
    "at large N the refresh comes as the window opens, one per 0.92 TTL = 1.09x one per TTL. "
    "Steady rates are measured between a series' first and last call after the warm-up; the "
    "rule state, refreshed once per 276 s, is too sparse for that in a run of 10 minutes or "
    "less: its target is the measured DescribeRule cadence plus the hourly rule-name listing "
    "(the fleet table's EventBridge column still counts the calls of the steady window).",
    "**Outage**: from 30 s after the warm-up (so that the steady state after it is one unbroken "
    "stretch), every DynamoDB item call is answered with "
    "ProvisionedThroughputExceededException during the window (injected before the quota layer, "
    "so not counted as quota throttles); the library's breaker, pynamodb's retries and the bounded "
    "outage refresh (each process asks CloudWatch with probability `outage_refresh_per_second` x "
    "back-off / the largest estimate it has seen: about 1 call per second fleet-wide at any N) run "
    "as they would.",
    "**Wall time**: the machine is shared with other work; each run's CPU time (client and "
    "server in one process) is in the JSON (`cpu_s`): their sum over 2 cores is what the run "
    "takes on an idle machine.",
]


def _cpu(fleets: list[dict[str, Any]], accuracy: list[dict[str, Any]]) -> float:
    return float(sum(r.get("cpu_s", 0.0) for r in [*fleets, *accuracy]))


def render(*, command: str, args: argparse.Namespace, fleets: list[dict[str, Any]],
           accuracy: list[dict[str, Any]], targets: list[dict[str, Any]], wall_s: float,
           machine: str) -> str:
    """The whole report as markdown."""
    line = limit_line(args)
    lines = [
        "# AWS-time benchmark", "",
        f"Command: `{command}`  ", f"Wall time: {wall_s:.0f} s on {machine}; CPU time "
        f"{_cpu(fleets, accuracy):.0f} s in all, {_cpu(fleets, accuracy) / 2:.0f} s over 2 idle cores "
        f"(the longest run alone: {max((r.get('cpu_s', 0.0) for r in fleets), default=0.0):.0f} s).", "",
        "## Targets", "", "| target | met | measured |", "|---|---|---|",
        *[f"| {t['name']} | {'yes' if t['met'] else '**no**'} | {t['measured']} |" for t in targets], "",
        "## Fleets", "",
        f"Each execution decides every {args.interval:g} s of AWS time; estimate TTL {args.ttl:g} s, "
        f"rule-state TTL {args.rules_ttl:g} s. One function refreshed once per TTL costs "
        f"60/TTL + 60/rules-TTL + 60/3600 (rule names, hourly) = {line:.3g} control-plane calls per "
        "function-minute. Counted at the server after setup; control plane = CloudWatch + "
        "EventBridge + Lambda other than Invoke; requests = control plane + DynamoDB. Warm-up: the "
        "first AWS minute, when every container makes its first (cold) decision; steady state: "
        "the rest, split by an injected outage into the stretches before and after it (its calls "
        "are counted under Herds); with one function, rates are measured between consecutive "
        "calls of a stretch. A spawn is a decision plus what a real "
        "spawn writes (ours: the ledger, see `spawn_path.md`; the others keep none). N: "
        "executions of one function, or functions x executions each (one account, one table).", "",
        *_fleet_table(fleets), "",
        "**How many times fewer** requests per decision (DynamoDB included) and steady-state "
        "control-plane calls per function-minute ours makes than each baseline, at the same N:", "",
        *_ratio_table(fleets), "", *_calls_table(fleets), "",
        "## Herds", "",
        "Per-item DynamoDB capacity, metered per AWS second by hash key (a partition serves 3,000 "
        f"RRU or 1,000 WRU per second; the target is {HOT_KEY_SHARE:.0%} of that). Items tied at "
        "the peak are all named.", "", *_herd_table(fleets), "",
    ]
    for r in (f for f in fleets if f.get("outage")):
        outage = r["outage"]
        lines += [f"DynamoDB outage at N={_n(r)}: every item call throttled from AWS second "
                  f"{outage['start_s']:g} for {outage['length_s']:g} s ({outage['injected_errors']:,} "
                  f"injected errors, counted apart from quota throttles): "
                  f"{outage['getmetricdata_calls']} GetMetricData calls, at most "
                  f"{outage['max_getmetricdata_per_s']} in one AWS second (ceiling "
                  f"{OUTAGE_GMD_CEILING}, quota {GMD_QUOTA}); {outage['control_plane_calls']} "
                  "control-plane calls in all.", ""]
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
        rows = [r for r in rows if r.get("functions", 1) == 1]
        if not rows:
            continue
        axis.plot([r["size"] for r in rows], [steady_rate(r) for r in rows], "o-", label=rows[0]["label"])
    sizes = sorted({r["size"] for r in fleets})
    line = limit_line(args)
    axis.plot(sizes, [line] * len(sizes), "k--", label=f"one refresh per TTL: {line:.3g}")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("fleet size N (concurrent executions)")
    axis.set_ylabel("control-plane calls per function-minute (steady state)")
    axis.set_title(f"one decision per execution every {args.interval:g} s of AWS time "
                   "(outside an injected outage)", fontsize=10)
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
