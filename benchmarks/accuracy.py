"""The estimate's accuracy under changing load: a step and a ramp, in AWS time.

The true concurrency follows a scenario second by second. Lambda's metrics of each minute
(Invocations, average Duration, ConcurrentExecutions Maximum) are written to the emulated
CloudWatch ``delay_s`` after the minute closes (CloudWatch's publication delay), with the
minute's own timestamp. A warm container decides every ``interval_s``: it reads the estimate
through the library's cache (``cache_ttl_seconds``, memory tier) and we record each signal
beside the truth.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from aws_stack import Stack

from siblings.local.server import LOCAL_REGION

SIGNALS = ("littles_law", "observed_peak", "max")
LOW, HIGH = 10, 500


def truth(scenario: str, t: float) -> float:
    """True concurrent executions ``t`` seconds into ``scenario``."""
    if scenario == "step":  # 10 -> 500 at 5 min, 500 -> 10 at 15 min
        return HIGH if 300 <= t < 900 else LOW
    # ramp: up over 3..13 min, hold to 18 min, down over 18..28 min
    if t < 180:
        return LOW
    if t < 780:
        return LOW + (HIGH - LOW) * (t - 180) / 600
    if t < 1080:
        return HIGH
    if t < 1680:
        return HIGH - (HIGH - LOW) * (t - 1080) / 600
    return LOW


SCENARIOS = {"step": (1500, [300, 900]), "ramp": (2100, [180, 780, 1080, 1680])}
"""Length (s) and the moments the truth starts or stops changing."""


def _minute_data(
    name: str, scenario: str, minute: int, start: float, execution_s: float
) -> list[dict[str, Any]]:
    samples = [truth(scenario, minute * 60 + s) for s in range(60)]
    mean, peak = sum(samples) / 60, max(samples)
    stamp = datetime.fromtimestamp(start + minute * 60, tz=UTC)
    dims = [{"Name": "FunctionName", "Value": name}]
    return [
        {"MetricName": "Invocations", "Dimensions": dims, "Timestamp": stamp,
         "Value": mean * 60 / execution_s, "Unit": "Count"},
        {"MetricName": "Duration", "Dimensions": dims, "Timestamp": stamp,
         "Value": execution_s * 1000, "Unit": "Milliseconds"},
        {"MetricName": "ConcurrentExecutions", "Dimensions": dims, "Timestamp": stamp,
         "Value": float(math.ceil(peak)), "Unit": "Count"},
    ]


def run_scenario(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario; return the samples and, per signal, settle times, MAE and admissions."""
    from estimator import ConcurrencyEstimator
    from estimator.config import Config

    scenario, delay = spec["scenario"], spec["delay_s"]
    length, changes = SCENARIOS[scenario]
    with Stack() as stack:
        clock, start = stack.clock, stack.clock.start
        name = f"accuracy-{scenario}"
        cloudwatch = stack.client("cloudwatch")
        history = [d for m in range(-10, 0)
                   for d in _minute_data(name, scenario, m, start, spec["execution_s"])]
        cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=history)
        config = Config(endpoint_url=stack.endpoint_url, region_name=LOCAL_REGION, use_dynamodb=False,
                        cache_ttl_seconds=spec["ttl_s"], minutes_back=spec["minutes_back"])
        estimator = ConcurrencyEstimator(config, cloudwatch_client=cloudwatch, clock=clock)
        published, samples = 0, []
        for step in range(int(length // spec["interval_s"]) + 1):
            t = step * spec["interval_s"]
            clock.set(start + t)
            while (published + 1) * 60 + delay <= t:  # minute `published` is visible now
                data = _minute_data(name, scenario, published, start, spec["execution_s"])
                cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=data)
                published += 1
            estimate = estimator.estimate(name)
            samples.append({"t": t, "truth": truth(scenario, t),
                            **{s: estimate.concurrency(s) for s in SIGNALS}})
    return {"kind": "accuracy", **spec, "changes": changes, "samples": samples,
            "signals": {s: _score(samples, changes, s, spec["max_concurrency"]) for s in SIGNALS}}


def _within(sample: dict[str, Any], signal: str, tolerance: float = 0.2) -> bool:
    return abs(sample[signal] - sample["truth"]) <= tolerance * sample["truth"]


def _score(samples: list[dict[str, Any]], changes: list[int], signal: str, limit: int) -> dict[str, Any]:
    """Settle time after each change (until the estimate stays within ±20% up to the next
    change), mean absolute error, and how the guard at ``limit`` would have decided."""
    bounds = [*changes, samples[-1]["t"] + 1]
    settle: list[float | None] = []
    for begin, end in zip(bounds, bounds[1:], strict=False):
        segment = [s for s in samples if begin <= s["t"] < end]
        found: float | None = None
        for index, sample in enumerate(segment):
            if all(_within(s, signal) for s in segment[index:]):
                found = sample["t"] - begin
                break
        settle.append(found)
    over = [s for s in samples if s["truth"] >= limit]
    under = [s for s in samples if s["truth"] < limit]
    return {
        "settle_s": settle,
        "mae": sum(abs(s[signal] - s["truth"]) for s in samples) / len(samples),
        "admitted_while_over_pct": _share([s[signal] < limit for s in over]),
        "refused_while_under_pct": _share([s[signal] >= limit for s in under]),
    }


def _share(flags: list[bool]) -> float:
    return 100.0 * sum(flags) / len(flags) if flags else 0.0


def plot(results: list[dict[str, Any]], path: Any) -> None:
    """Estimate by each signal beside the truth, one panel per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(9, 3.2 * len(results)), squeeze=False)
    for axis, result in zip(axes[:, 0], results, strict=True):
        t = [s["t"] / 60 for s in result["samples"]]
        axis.plot(t, [s["truth"] for s in result["samples"]], color="black", lw=2, label="truth")
        for signal, style in zip(SIGNALS, ("-", "--", ":"), strict=True):
            axis.plot(t, [s[signal] for s in result["samples"]], style, label=signal)
        axis.axhline(result["max_concurrency"], color="grey", lw=0.8, ls="-.", label="max_concurrency")
        axis.set_title(f"{result['scenario']}: publication delay {result['delay_s']:g} s, "
                       f"window {result['minutes_back']} min, TTL {result['ttl_s']:g} s")
        axis.set_xlabel("AWS minutes")
        axis.set_ylabel("concurrent executions")
        axis.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
