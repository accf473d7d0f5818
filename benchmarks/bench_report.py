"""Figures of a throttle-load run: per-run metrics, the markdown report, targets and the plot."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_fleet import FleetRun

Call = tuple[str, str]


@dataclass(frozen=True)
class CallCounts:
    """Server-side counts of one ``(service, action)`` during a run."""

    calls: int
    throttled: int
    retries: int


@dataclass
class RunResult:
    """One contender at one fleet size."""

    contender: str
    label: str
    size: int
    duration_s: float
    setup_s: float
    fleet: FleetRun
    calls: dict[Call, CallCounts]
    true_concurrency: int
    quota_scale: float = 1.0
    micro: dict[str, float] = field(default_factory=dict)
    """Tier-1 latencies measured after the run (seconds), for ours."""

    # --- server-side counts ---
    def count(self, service: str, action: str | None = None, exclude: Sequence[str] = ()) -> int:
        """Calls of ``service`` (optionally one action; ``exclude`` leaves actions out)."""
        return sum(
            c.calls
            for (svc, act), c in self.calls.items()
            if svc == service and (action is None or act == action) and act not in exclude
        )

    @property
    def throttled(self) -> int:
        """Throttling errors the quota layer answered."""
        return sum(c.throttled for c in self.calls.values())

    @property
    def retries(self) -> int:
        """SDK retries seen by the server (``amz-sdk-request: attempt>1``)."""
        return sum(c.retries for c in self.calls.values())

    @property
    def cloudwatch(self) -> int:
        """CloudWatch calls."""
        return self.count("monitoring")

    @property
    def get_metric_data(self) -> int:
        """GetMetricData calls."""
        return self.count("monitoring", "GetMetricData")

    @property
    def eventbridge(self) -> int:
        """EventBridge calls."""
        return self.count("events")

    @property
    def dynamodb(self) -> int:
        """DynamoDB calls."""
        return self.count("dynamodb")

    @property
    def invokes(self) -> int:
        """Lambda Invoke calls (throttled ones included)."""
        return self.count("lambda", "Invoke")

    @property
    def control_plane(self) -> int:
        """Calls against account-wide control-plane quotas: CloudWatch, EventBridge, Lambda
        other than Invoke. DynamoDB item reads/writes and Invoke are data plane."""
        return self.cloudwatch + self.eventbridge + self.count("lambda", exclude=("Invoke",))

    # --- decisions ---
    @property
    def decisions(self) -> int:
        """Decisions made (finished, failed or not)."""
        return len(self.fleet.decisions)

    @property
    def failed(self) -> int:
        """Decisions that raised."""
        return sum(d.error is not None for d in self.fleet.decisions)

    @property
    def spawned(self) -> int | None:
        """Decisions that spawned; ``None`` when the contender cannot tell."""
        outcomes = [d.outcome for d in self.fleet.decisions if d.outcome is not None]
        if any(o.spawned is None for o in outcomes):
            return None
        return sum(bool(o.spawned) for o in outcomes)

    @property
    def decisions_per_s(self) -> float:
        """Decisions per wall-clock second."""
        return self.decisions / self.fleet.elapsed_s if self.fleet.elapsed_s > 0 else 0.0

    def latency(self, quantile: float, first: bool | None = None) -> float | None:
        """Decision latency quantile in seconds, failed decisions included; ``first`` picks
        each execution's first decision (True), the later ones (False) or all (None)."""
        return percentile(
            [
                d.latency_s
                for d in self.fleet.decisions
                if first is None or d.first == first
            ],
            quantile,
        )

    @property
    def warm_decisions(self) -> int:
        """Decisions after each execution's first."""
        return sum(not d.first for d in self.fleet.decisions)

    @property
    def estimate_error(self) -> float | None:
        """Mean |estimate - true| / true over decisions that had an estimate."""
        estimates = [
            d.outcome.estimate
            for d in self.fleet.decisions
            if d.outcome is not None and d.outcome.estimate is not None
        ]
        if not estimates:
            return None
        truth = self.true_concurrency
        return statistics.fmean(abs(e - truth) / truth for e in estimates)

    @property
    def without_estimate(self) -> int:
        """Decisions that got no estimate (failed before it, or refused on a guard error)."""
        return sum(
            1 for d in self.fleet.decisions if d.outcome is None or d.outcome.estimate is None
        )

    def per_decision(self, calls: int) -> float | None:
        """``calls`` divided by the number of decisions."""
        return calls / self.decisions if self.decisions else None


def percentile(values: Sequence[float], quantile: float) -> float | None:
    """Nearest-rank percentile; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(quantile * len(ordered)))
    return ordered[rank - 1]


# --- formatting ---


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1000:.1f} ms"


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def results_table(results: Sequence[RunResult]) -> str:
    """The main table, one row per contender and fleet size."""
    header = (
        "| contender | N | quota scale | decisions | decisions/s | failed | CW calls | of which GMD | "
        "EB calls | DDB calls | Invokes | throttled | SDK retries | CW+EB / decision | "
        "control-plane / decision | first p50 | warm p50 | warm p99 (n) | estimate error | "
        "no estimate |"
    )
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for r in results:
        lines.append(
            f"| {r.label} | {r.size} | {r.quota_scale:.3g} | {r.decisions} | "
            f"{r.decisions_per_s:.1f} | {r.failed} | "
            f"{r.cloudwatch} | {r.get_metric_data} | {r.eventbridge} | {r.dynamodb} | "
            f"{r.invokes} | {r.throttled} | {r.retries} | "
            f"{_num(r.per_decision(r.cloudwatch + r.eventbridge))} | "
            f"{_num(r.per_decision(r.control_plane))} | {_ms(r.latency(0.5, first=True))} | "
            f"{_ms(r.latency(0.5, first=False))} | "
            f"{_ms(r.latency(0.99, first=False))} ({r.warm_decisions}) | "
            f"{_pct(r.estimate_error)} | {r.without_estimate} |"
        )
    return "\n".join(lines)


def errors_table(results: Sequence[RunResult]) -> str:
    """What the failed decisions raised, and the throttled calls by action."""
    lines = [
        "| contender | N | failed decisions by error | throttled by action | still deciding at cut-off |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        errors: dict[str, int] = {}
        for d in r.fleet.decisions:
            if d.error is not None:
                errors[d.error] = errors.get(d.error, 0) + 1
        throttled = {f"{s}:{a}": c.throttled for (s, a), c in sorted(r.calls.items()) if c.throttled}
        lines.append(
            f"| {r.label} | {r.size} | {_kv(errors)} | {_kv(throttled)} | {r.fleet.unfinished} |"
        )
    return "\n".join(lines)


def calls_table(results: Sequence[RunResult]) -> str:
    """Every call the server saw during each run, by action."""
    lines = ["| contender | N | calls by action |", "|---|---|---|"]
    for r in results:
        counts = {f"{s}:{a}": c.calls for (s, a), c in r.calls.items()}
        lines.append(f"| {r.label} | {r.size} | {_kv(counts)} |")
    return "\n".join(lines)


def _kv(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "-"


@dataclass(frozen=True)
class TargetCheck:
    """One target of the benchmark and whether this run met it."""

    name: str
    met: bool | None
    """``None`` when the run did not include what the target needs."""
    measured: str


def check_targets(
    results: Sequence[RunResult],
    duration_s: float,
    ttl_s: float,
    extra: Sequence[RunResult] = (),
) -> list[TargetCheck]:
    """The four targets of the issue, measured on ``results`` (and ``extra`` runs)."""
    by = {(r.contender, r.size): r for r in results}
    checks = []
    limit = math.ceil(duration_s / ttl_s) + 1
    ours = [r for r in results if r.contender == "ours-ddb"]
    if ours:
        worst = max(ours, key=lambda r: r.get_metric_data)
        checks.append(
            TargetCheck(
                f"ours (tier 1 + DynamoDB): <= ceil(T/TTL)+1 = {limit} GetMetricData per "
                "function at every size",
                all(r.get_metric_data <= limit for r in ours),
                ", ".join(f"N={r.size}: {r.get_metric_data}" for r in ours)
                + f" (worst N={worst.size})",
            )
        )
    else:
        checks.append(TargetCheck("ours: GetMetricData per function", None, "not run"))
    big = [r for r in [*results, *extra] if r.contender == "ours-ddb" and r.size >= 500]
    checks.append(
        TargetCheck(
            "ours (tier 1 + DynamoDB): zero throttled responses at N = 500",
            all(r.throttled == 0 for r in big) if big else None,
            "; ".join(f"{r.label} N={r.size}: {r.throttled} throttled" for r in big) or "not run",
        )
    )
    seed, mine = by.get(("seed", 100)), by.get(("ours-ddb", 100))
    if seed and mine and seed.decisions and mine.decisions:
        seed_rate = (seed.cloudwatch + seed.eventbridge) / seed.decisions
        mine_rate = (mine.cloudwatch + mine.eventbridge) / mine.decisions
        ratio = seed_rate / mine_rate if mine_rate else math.inf
        checks.append(
            TargetCheck(
                "ours vs seed at N = 100: >= 100x fewer CloudWatch + EventBridge calls per "
                "decision",
                ratio >= 100,
                f"seed {seed_rate:.3g}, ours {mine_rate:.3g} per decision: {ratio:.0f}x",
            )
        )
    else:
        checks.append(TargetCheck("ours vs seed at N = 100", None, "not run"))
    micro = [r.micro for r in results if r.contender == "ours-ddb" and r.micro]
    if micro:
        p50 = statistics.median(m["guards_p50"] for m in micro)
        est = statistics.median(m["estimate_p50"] for m in micro)
        checks.append(
            TargetCheck(
                "tier-1 hit decision p50 < 50 µs (rules + concurrency guards from memory)",
                p50 < 50e-6,
                f"guards {_ms(p50)}, estimate alone {_ms(est)}",
            )
        )
    else:
        checks.append(TargetCheck("tier-1 hit decision p50", None, "not run"))
    return checks


def targets_table(checks: Sequence[TargetCheck]) -> str:
    """Targets as a markdown table."""
    lines = ["| target | met | measured |", "|---|---|---|"]
    for check in checks:
        met = {True: "yes", False: "**NO**", None: "n/a"}[check.met]
        lines.append(f"| {check.name} | {met} | {check.measured} |")
    return "\n".join(lines)


def micro_table(results: Sequence[RunResult]) -> str:
    """Tier-1 latencies of ours."""
    lines = [
        "| contender | N | estimate p50 | estimate p99 | guards p50 | guards p99 | memory hits |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if not r.micro:
            continue
        m = r.micro
        lines.append(
            f"| {r.label} | {r.size} | {_ms(m['estimate_p50'])} | {_ms(m['estimate_p99'])} | "
            f"{_ms(m['guards_p50'])} | {_ms(m['guards_p99'])} | {m['memory_share'] * 100:.0f}% |"
        )
    return "\n".join(lines)


def plot(results: Sequence[RunResult], path: Path) -> None:
    """Control-plane calls per decision vs fleet size, log scale, one line per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    labels: dict[str, str] = {}
    for r in results:
        labels.setdefault(r.contender, r.label)
    for contender, label in labels.items():
        runs = sorted((r for r in results if r.contender == contender), key=lambda r: r.size)
        points = [(r.size, r.per_decision(r.control_plane)) for r in runs]
        xs = [x for x, y in points if y]
        ys = [y for x, y in points if y]
        if xs:
            axes.plot(xs, ys, marker="o", label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    sizes = sorted({r.size for r in results})
    axes.set_xticks(sizes, [str(size) for size in sizes])
    axes.minorticks_off()
    axes.set_xlabel("fleet size N (concurrent executions)")
    axes.set_ylabel("AWS control-plane calls per decision")
    axes.set_title(
        "Control-plane calls per spawn decision\n(CloudWatch + EventBridge + Lambda except Invoke)"
    )
    axes.grid(True, which="major", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def render(
    *,
    command: str,
    parameters: Mapping[str, Any],
    notes: Sequence[str],
    results: Sequence[RunResult],
    extra: Sequence[RunResult],
    checks: Sequence[TargetCheck],
    quotas: str,
) -> str:
    """The whole markdown report."""
    params = "\n".join(f"- `{k}` = {v}" for k, v in parameters.items())
    parts = [
        "# Throttle-load benchmark",
        f"Command: `{command}`",
        f"Parameters:\n{params}",
        "\n".join(f"- {note}" for note in notes),
        "## Targets",
        targets_table(checks),
        "## Results",
        results_table(results),
    ]
    if extra:
        parts += ["## Extra run at the default (unscaled) quotas", results_table(extra)]
    parts += [
        "## Tier-1 latency of ours (after the run, one execution, memory hits)",
        micro_table([*results, *extra]) or "not measured",
        "## Failures and throttles",
        errors_table([*results, *extra]),
        "## Calls by action",
        calls_table([*results, *extra]),
        "## Quotas enforced (before scaling)",
        quotas,
    ]
    return "\n\n".join(parts) + "\n"
