"""The data plane of one spawn: DynamoDB requests, round trips before the Invoke, latency.

Run: ``.venv/bin/python benchmarks/spawn_path.py`` (part of ``make bench``). Against the local
moto server on 127.0.0.1 it records every request of a warm spawn (guards in memory), a cold
one (a new container) and the sibling's start, with the time each reached the server and
returned; requests that overlap in time were sent together and count as one round trip. It
then times warm decisions beside two baselines in the same run: a bare async Invoke (the naive
spawn, no guard at all) and a bare consistent GetItem. Writes
``benchmarks/results/spawn_path.md`` and ``.json``.

Time base: every DynamoDB and Lambda request is held ``--rtt-ms`` (default 10 ms) at the server,
standing for AWS's network and service time; the rest is this machine's CPU (client and moto in
one process). Latencies therefore scale with that emulated round trip and with this machine;
request counts and round trips do not depend on either.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from estimator import ensure_table
from siblings import SiblingsConfig, SiblingsManager
from siblings.local.calls import identify, read_body
from siblings.local.provision import create_function, create_schedule_rule
from siblings.local.server import LOCAL_CREDENTIALS, LOCAL_REGION, LocalAwsServer, WsgiApp

RESULTS = Path(__file__).parent / "results"
FUNCTION = "bench-worker"


@dataclass
class Request:
    """One request as the server saw it."""

    action: str
    keys: str
    start: float
    end: float


class Timeline:
    """WSGI middleware recording each request's action, item kinds and time at the server.

    Each request is held ``rtt`` seconds before it is served: the network time AWS adds. Client
    and server share one process here, so without it the client's own CPU time would decide
    what overlaps; with it, requests sent together overlap as they would over a network.
    """

    def __init__(self, rtt: float = 0.0) -> None:
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self.rtt = rtt

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """The middleware."""

        def timed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            body = read_body(environ)
            service, action = identify(environ, body)
            start = time.perf_counter()
            if self.rtt and service in ("dynamodb", "lambda"):
                time.sleep(self.rtt)
            reply = b"".join(app(environ, start_response))
            if service in ("dynamodb", "lambda"):
                with self._lock:
                    self.requests.append(Request(action, _kinds(service, body), start, time.perf_counter()))
            return [reply]

        return timed

    def take(self) -> list[Request]:
        """The requests since the last call, in arrival order."""
        with self._lock:
            taken, self.requests = sorted(self.requests, key=lambda r: r.start), []
        return taken


def _kinds(service: str, body: bytes) -> str:
    """Which item kinds a DynamoDB request touches (``kill``, ``spawn``...)."""
    if service != "dynamodb":
        return "sibling"
    text = body.decode(errors="replace")
    kinds = ("kill#", "rules#", "estimate#", "spawn#", "req#", "run#", "chain#", "step#", "chains#")
    found = [kind for kind in kinds if f'"{kind}' in text]
    return "+".join(kind.rstrip("#") for kind in found)


def round_trips(requests: list[Request]) -> int:
    """Waves of requests: one that starts before the previous wave has ended joins it."""
    waves, wave_end = 0, -1.0
    for request in requests:
        if request.start >= wave_end:
            waves += 1
            wave_end = request.end
        else:
            wave_end = max(wave_end, request.end)
    return waves


def percentile(samples: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


@dataclass
class Context:
    """A Lambda context for one execution."""

    invoked_function_arn: str
    aws_request_id: str
    remaining_ms: int = 600_000
    """Time left: 5 of the function's 15 minutes gone, by default."""

    def get_remaining_time_in_millis(self) -> int:
        """The time left, as set."""
        return self.remaining_ms


def observe(timeline: Timeline, action: Callable[[], object]) -> dict[str, Any]:
    """Run ``action``; its requests, and what came before the Invoke."""
    timeline.take()
    action()
    requests = timeline.take()
    invoke_at = next((i for i, r in enumerate(requests) if r.action == "Invoke"), len(requests))
    before = requests[:invoke_at]
    return {
        "sequence": [f"{r.action}({r.keys})" for r in requests],
        "dynamodb_requests": sum(r.action != "Invoke" for r in requests),
        "dynamodb_before_invoke": len(before),
        "round_trips_before_invoke": round_trips(before),
    }


def timed(run: Callable[[], object], iterations: int) -> list[float]:
    """Seconds per call."""
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return samples


def measure(server: LocalAwsServer, timeline: Timeline, iterations: int) -> dict[str, Any]:
    """Everything the report shows, from one server."""
    session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
    config = SiblingsConfig(endpoint_url=server.endpoint_url, region_name=LOCAL_REGION, max_concurrency=1000,
                            function_timeout_seconds=900)
    ensure_table(config, session)
    lam = session.client("lambda", endpoint_url=server.endpoint_url)
    arn = create_function(lam, session.client("iam", endpoint_url=server.endpoint_url), FUNCTION)
    create_schedule_rule(session.client("events", endpoint_url=server.endpoint_url), "bench-rule", arn)

    def context(remaining_ms: int = 600_000) -> Context:
        return Context(arn, str(uuid.uuid4()), remaining_ms)

    fleet = SiblingsManager(config=config, session=session)
    fleet.spawn_sibling(context(), {"cursor": 0})  # the fleet has cached the rules and estimate
    warm = SiblingsManager(config=config, session=session)
    warm.spawn_sibling(context(), {"cursor": 0})
    paths = {
        "warm spawn (event known)": observe(
            timeline, lambda: warm.spawn_sibling(context(), {"cursor": 1}, event={"cursor": 0})
        ),
        "warm spawn, import-only handler (no event): a root 5 min into its run": observe(
            timeline, lambda: warm.spawn_sibling(context(), {"cursor": 1})
        ),
        "warm spawn, import-only handler (no event): a root 0.1 s into its run, asked again "
        "for up to 1 s in case its parent's record is still being written": observe(
            timeline, lambda: warm.spawn_sibling(context(899_900), {"cursor": 1})
        ),
    }
    cold = SiblingsManager(config=config, session=session)
    paths["cold spawn (new container, warm fleet)"] = observe(
        timeline, lambda: cold.spawn_sibling(context(), {"cursor": 2}, event={"cursor": 0})
    )
    spawned = warm.spawn_sibling(context(), {"cursor": 3})
    event = {"cursor": 3, "__siblings__": {"v": 1, "chain_id": spawned.chain_id, "generation": 1}}
    paths["sibling start (load_payload claim)"] = observe(
        timeline, lambda: warm.load_payload(event, Context(arn, str(spawned.request_id)))
    )
    dynamodb = session.client("dynamodb", endpoint_url=server.endpoint_url)
    latency = {
        "naive: bare async Invoke": timed(
            lambda: lam.invoke(FunctionName=arn, InvocationType="Event", Payload=b"{}"), iterations
        ),
        "baseline: one consistent GetItem": timed(
            lambda: dynamodb.get_item(TableName=config.table_name, Key={"pk": {"S": "kill#x"}},
                                      ConsistentRead=True), iterations
        ),
        "ours: warm spawn decision": timed(
            lambda: warm.spawn_sibling(context(), {"cursor": 4}, event={"cursor": 3}), iterations
        ),
    }
    return {"paths": paths, "latency": {k: _summary(v) for k, v in latency.items()}}


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(samples, 0.5) * 1e3,
        "p99_ms": percentile(samples, 0.99) * 1e3,
        "mean_ms": statistics.fmean(samples) * 1e3,
        "calls": len(samples),
    }


def report(figures: dict[str, Any]) -> str:
    """The markdown report."""
    lines = [
        "# The spawn path: requests, round trips, latency",
        "",
        f"`benchmarks/spawn_path.py`, local moto server on 127.0.0.1, emulated AWS round trip "
        f"{figures['rtt_ms']:g} ms per request, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        "Latencies scale with that round trip and this machine; counts and round trips do not.",
        "",
        "| path | DynamoDB requests | before the Invoke | round trips before the Invoke | sequence |",
        "|---|---:|---:|---:|---|",
    ]
    for name, path in figures["paths"].items():
        lines.append(
            f"| {name} | {path['dynamodb_requests']} | {path['dynamodb_before_invoke']} | "
            f"{path['round_trips_before_invoke']} | {' → '.join(path['sequence'])} |"
        )
    lines += [
        "",
        "Every row is measured in this run (`function_timeout_seconds` = 900, the context's time "
        "left as said).",
        "",
        "| decision | calls | p50 | p99 | mean |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in figures["latency"].items():
        lines.append(
            f"| {name} | {row['calls']} | {row['p50_ms']:.2f} ms | {row['p99_ms']:.2f} ms "
            f"| {row['mean_ms']:.2f} ms |"
        )
    latency = figures["latency"]
    naive = latency["naive: bare async Invoke"]["p50_ms"]
    budget = naive + latency["baseline: one consistent GetItem"]["p50_ms"]
    ours = latency["ours: warm spawn decision"]["p50_ms"]
    verdict = "met" if ours <= budget else "missed"
    lines += ["", f"Target ours ≤ naive + one GetItem: {ours:.2f} ms vs {budget:.2f} ms ({verdict})."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=100, help="timed calls per latency row")
    parser.add_argument("--rtt-ms", type=float, default=10.0, help="emulated AWS round trip")
    args = parser.parse_args(argv)
    timeline = Timeline(args.rtt_ms / 1000.0)
    with LocalAwsServer(middleware=timeline.wrap) as server:
        figures = measure(server, timeline, args.iterations)
    figures["rtt_ms"] = args.rtt_ms
    text = report(figures)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "spawn_path.md").write_text(text)
    (RESULTS / "spawn_path.json").write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
