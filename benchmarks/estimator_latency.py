"""Latency of an estimate by tier, beside a bare DynamoDB GetItem, against the local moto server.

Run: ``.venv/bin/python benchmarks/estimator_latency.py`` (or ``make bench-latency``).
Prints a markdown table and writes ``benchmarks/results/estimator_latency.md``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import boto3

from estimator import ConcurrencyEstimator, Config, ensure_table
from estimator.keys import estimate_key
from estimator.store import DynamoStore
from estimator.validation import parse_function
from siblings.local.server import LOCAL_CREDENTIALS, LOCAL_REGION, LocalAwsServer

RESULTS = Path(__file__).parent / "results" / "estimator_latency.md"
# The key of bench-fn's estimate: the embedded server's account (moto's default) and Region.
KEY = estimate_key(parse_function("bench-fn").at(LOCAL_REGION, "123456789012"), 5)


def measure(
    run: Callable[[], object], iterations: int, before: Callable[[], None] | None = None
) -> list[float]:
    """Seconds per call of ``run``; ``before`` runs untimed ahead of each call."""
    samples = []
    for _ in range(iterations):
        if before is not None:
            before()
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return samples


def percentile(samples: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print/write the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=300, help="calls per remote row")
    parser.add_argument("--memory-iterations", type=int, default=20_000, help="tier-1 calls")
    args = parser.parse_args(argv)

    with LocalAwsServer() as server:
        session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
        config = Config(endpoint_url=server.endpoint_url, region_name=LOCAL_REGION)
        ensure_table(config, session)
        estimator = ConcurrencyEstimator(config, session=session)
        store = DynamoStore(config, session=session)
        client = session.client("dynamodb", endpoint_url=server.endpoint_url)
        estimator.estimate("bench-fn")  # warm clients and the shared item

        def forget_memory() -> None:
            estimator.cache.memory.discard(KEY)

        def forget_everything() -> None:
            estimator.cache.memory.discard(KEY)
            store.delete(KEY)

        rows = [
            ("tier-1 hit (memory)", measure(lambda: estimator.estimate("bench-fn"),
                                            args.memory_iterations)),
            ("tier-2 hit (DynamoDB GetItem)", measure(lambda: estimator.estimate("bench-fn"),
                                                      args.iterations, forget_memory)),
            ("CloudWatch refresh (GetItem + lease + GetMetricData + PutItem)",
             measure(lambda: estimator.estimate("bench-fn"), max(50, args.iterations // 3),
                     forget_everything)),
            ("baseline: bare boto3 DynamoDB GetItem",
             measure(lambda: client.get_item(TableName=config.table_name, Key={"pk": {"S": KEY}}),
                     args.iterations)),
        ]
        # Each row must really have taken its path.
        forget_memory()
        assert estimator.estimate("bench-fn").source == "dynamodb"
        forget_everything()
        assert estimator.estimate("bench-fn").source == "cloudwatch"
        assert estimator.estimate("bench-fn").source == "memory"

    report = _render(rows)
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(f"written to {RESULTS}")
    return 0


def _render(rows: list[tuple[str, list[float]]]) -> str:
    """The Markdown table of the rows' latencies."""
    lines = [
        "# Estimator latency by tier",
        "",
        f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`  ",
        f"Python {platform.python_version()} on {platform.machine()}, local moto server over HTTP "
        f"(127.0.0.1, same process), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| path | calls | p50 | p99 | mean |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, samples in rows:
        lines.append(
            f"| {name} | {len(samples)} | {_fmt(percentile(samples, 0.5))} | "
            f"{_fmt(percentile(samples, 0.99))} | {_fmt(statistics.fmean(samples))} |"
        )
    return "\n".join(lines) + "\n"


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


if __name__ == "__main__":
    sys.exit(main())
