"""What ``siblings simulate`` shows: the live view, the summary table and the PNG timeline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from siblings.local.fleet import Fleet, Sample


def live_view(fleet: Fleet, sample: Sample) -> Group:
    """The progress panel, rebuilt at every sample."""
    settings = fleet.settings
    total = settings.chains * settings.records
    spawns = fleet.spawn_stats()
    calls = fleet.recorder.counts()
    runtime = fleet.runtime.stats()
    refused = _refusals(spawns)
    metric_calls = calls.get(("monitoring", "GetMetricData"), 0) - fleet.monitor_metric_calls
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    table.add_row(
        "records",
        f"{sample.records_done} / {total}  chains done {fleet.chains_done()} / {settings.chains}",
    )
    table.add_row(
        "executions",
        f"running {sample.running} (true)   Little's law {_maybe(sample.estimate)}   "
        f"observed peak {_maybe(sample.observed_peak)}   "
        f"max_concurrency {_maybe(settings.max_concurrency)}",
    )
    table.add_row(
        "siblings",
        f"spawned {spawns['spawned']}   deferred {spawns['deferred']}   "
        f"refused {refused or 'none'}   "
        f"duplicates {spawns['duplicate']}   failed {spawns['failed']}",
    )
    table.add_row(
        "AWS calls",
        f"GetMetricData {metric_calls} (+{fleet.monitor_metric_calls} monitor)   "
        f"EventBridge {sum(n for (svc, _), n in calls.items() if svc == 'events')}   "
        f"Invoke {calls.get(('lambda', 'Invoke'), 0)}   "
        f"DynamoDB {sum(n for (svc, _), n in calls.items() if svc == 'dynamodb')}",
    )
    table.add_row(
        "throttles",
        f"quota layer {fleet.quota.throttled()}   injected Invoke "
        f"{fleet.throttles.injected('lambda', 'Invoke')} GetMetricData "
        f"{fleet.throttles.injected('monitoring', 'GetMetricData')}   "
        f"queued over reserved concurrency {runtime.throttled}",
    )
    windows = fleet.windows.counts()
    table.add_row(
        "faults",
        f"handler crashes {sum(fleet.crashes.crashes.values())}   crashes after Invoke "
        f"{windows['crash_after_invoke']}   lost Invoke replies {windows['lost_invoke_reply']}   "
        f"retries {runtime.retries}   timeouts {runtime.timeouts}   cold starts {runtime.cold_starts}",
    )
    title = Text(f"siblings simulate  t={sample.t:5.1f}s", style="bold")
    bar = ProgressBar(total=total, completed=sample.records_done, width=60)
    return Group(title, bar, table)


def summary_table(document: dict[str, Any]) -> Table:
    """The end-of-run table, from :func:`siblings.local.summary.summary`."""
    table = Table(title="siblings simulate: summary", show_header=False)
    table.add_column("", style="bold cyan", no_wrap=True)
    table.add_column("")
    for label, value in _run_rows(document) + _check_rows(document["verification"]):
        table.add_row(label, value)
    return table


def _in_parentheses(counts: dict[str, int]) -> str:
    """`` (A 1, B 2)``, or nothing when there are no counts."""
    text = _format_counts(counts)
    return f" ({text})" if text else ""


def _run_rows(document: dict[str, Any]) -> list[tuple[str, str]]:
    """What ran and what it cost."""
    settings = document["settings"]
    executions = document["executions"]
    concurrency = document["concurrency"]
    spawns = document["spawns"]
    calls = document["calls"]
    throttles = document["throttles"]
    return [
        ("workload",
         f"{settings['chains']} chains x {settings['records']} records, "
         f"{settings['invocation_seconds']} s per invocation, fault rate "
         f"{settings['fault_rate']}, seed {settings['seed']}"),
        ("time", f"{document['elapsed_seconds']} s (CloudWatch time x{settings['time_scale']:g})"),
        ("executions",
         f"{executions['invocations']} invocations, {executions['attempts']} attempts, "
         f"{executions['retries']} retries, {executions['timeouts']} timeouts, "
         f"{executions['crashed']} crashed, "
         f"{executions['cold_starts']} cold starts"),
        ("concurrency",
         f"true peak {concurrency['true_peak']}, Little's law peak "
         f"{_maybe(concurrency['estimate_peak'])}, observed peak "
         f"{_maybe(concurrency.get('observed_peak'))}, max_concurrency "
         f"{_maybe(settings['max_concurrency'])} (the estimate lags: Lambda publishes a minute's "
         "metrics after it ends, so the guard admits spawns until the figure it reads catches up; "
         "max_concurrency bounds the estimate, not the true peak)"),
        ("siblings",
         f"spawn decisions: {spawns['spawned']} spawned (a parent retried by Lambda decides again), "
         f"deferred {spawns['deferred']}"
         + (f" ({_format_counts(spawns['deferred_for'])})" if spawns["deferred"] else "")
         + f", refused {_format_counts(spawns['refused']) or 'none'}, "
         f"{spawns['duplicates']} duplicates, {spawns['failed']} failed"),
        ("AWS calls",
         f"GetMetricData {calls['cloudwatch_get_metric_data']} "
         f"(+{calls['cloudwatch_get_metric_data_by_monitor']} monitor), "
         f"EventBridge {calls['eventbridge']}{_in_parentheses(calls['eventbridge_by_action'])}, "
         f"Invoke {calls['lambda_invoke']}, DynamoDB {calls['dynamodb']}, "
         f"PutMetricData {calls['cloudwatch_put_metric_data']}"),
        ("faults",
         f"throttled by quotas {throttles['quota_layer']}, injected "
         f"{_format_counts(document['faults_injected']) or 'none'} (handler crashes "
         f"{_format_counts(throttles['handler_crashes_injected']) or 'none'})"),
    ]


def _check_rows(verification: dict[str, Any]) -> list[tuple[str, Any]]:
    """The verification, check by check, and its verdict."""
    records = verification["records"]
    generations = verification["generations"]
    lost = verification["spawns"]["lost"]
    steps = verification["steps"]
    verdict = (
        Text("PASSED", style="bold green")
        if verification["ok"]
        else Text("FAILED: " + "; ".join(verification["problems"]), style="bold red")
    )
    return [
        ("records",
         _check(records["exactly_once"] == records["expected"])
         + f" {records['exactly_once']} / {records['expected']} exactly once "
         f"({records['missing']} missing, {records['duplicated']} duplicated)"),
        ("generations",
         _check(generations["max_seen"] <= generations["limit"])
         + f" deepest {generations['max_seen']} (max_generations {generations['limit']})"),
        ("spawns", _check(lost == 0) + f" {verification['spawns']['reported']} distinct siblings "
         f"reported by the handlers, {lost} lost"),
        ("chain steps",
         _check(steps["started_twice"] == 0)
         + f" {steps['executed']} run, {steps['invoked_twice']} invoked twice, "
         f"{steps['duplicates_stopped']} duplicates stopped, {steps['started_twice']} started twice"),
        ("verification", verdict),
    ]


def plot_timeline(fleet: Fleet, path: Path) -> Path:
    """Write a PNG: true concurrency, Little's law and the observed peak, and siblings spawned,
    over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Seconds since the run started (the runtime's clock, shifted past the setup).
    shift = fleet.started_at - fleet.runtime.started_at
    timeline = [(t - shift, n) for t, n in fleet.runtime.timeline() if t >= shift]
    estimates = [(s.t, s.estimate) for s in fleet.samples if s.estimate is not None]
    peaks = [(s.t, s.observed_peak) for s in fleet.samples if s.observed_peak is not None]
    spawn_times = sorted(
        inv.accepted_at - fleet.started_at
        for inv in fleet.runtime.invocations()
        if inv.source == "invoke"
    )
    figure, axis = plt.subplots(figsize=(10, 5), dpi=100)
    if timeline:
        axis.step(
            [t for t, _ in timeline], [n for _, n in timeline], where="post",
            label="true concurrency (runtime)", color="tab:blue",
        )
    if estimates:
        axis.step(
            [t for t, _ in estimates], [e for _, e in estimates], where="post",
            label="Little's law estimate (CloudWatch, cached)", color="tab:orange",
        )
    if peaks:
        axis.step(
            [t for t, _ in peaks], [p for _, p in peaks], where="post",
            label="observed peak (ConcurrentExecutions, same call)", color="tab:purple",
        )
    if fleet.settings.max_concurrency is not None:
        axis.axhline(
            fleet.settings.max_concurrency, color="tab:red", linestyle="--", label="max_concurrency"
        )
    axis.set_xlabel("seconds")
    axis.set_ylabel("concurrent executions")
    spawns_axis = axis.twinx()
    spawns_axis.plot(
        spawn_times, range(1, len(spawn_times) + 1), color="tab:green", label="siblings spawned"
    )
    spawns_axis.set_ylabel("siblings spawned (cumulative)")
    lines = axis.get_legend_handles_labels()
    more = spawns_axis.get_legend_handles_labels()
    axis.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize="small")
    settings = fleet.settings
    axis.set_title(
        f"{settings.chains} chains x {settings.records} records, fault rate "
        f"{settings.fault_rate}, CloudWatch time x{settings.time_scale:g}"
    )
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _refusals(spawns: Any) -> str:
    return _format_counts(
        {k.removeprefix("refused_"): v for k, v in spawns.items() if k.startswith("refused_")}
    )


def _format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counts.items()) if value)


def _maybe(value: Any) -> str:
    return "-" if value is None else str(value)


def _check(ok: bool) -> str:
    return "[green]ok[/green]" if ok else "[red]FAIL[/red]"
