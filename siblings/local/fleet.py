"""A local fleet of cursor workers on the embedded server: set up, run, observe, verify.

:class:`Fleet` wires everything ``siblings simulate`` shows: a moto server behind the call
recorder, AWS's default quotas and injected throttles; the local Lambda runtime running
``examples/cursor_worker.py`` one container per concurrent execution (each with its own
:class:`~siblings.SiblingsManager`, so the in-process cache tier is per container as on Lambda);
the shared table, a payload bucket, the function and an enabled schedule rule targeting it.
With ``template`` set, the shared table and the payload bucket are those of that SAM template,
deployed into the server's CloudFormation first (:mod:`siblings.local.stack`).

CloudWatch time can run faster than the wall clock (``time_scale``): the runtime stamps its
metrics with a clock running ``time_scale`` times faster and scales durations alike, and the
estimators read CloudWatch with that clock, so one-minute metric resolution fits into a
demo of seconds while Little's law keeps its meaning. Everything else (deadlines, retries,
backoff, quotas) is real time. The emulated schedule fires once per metric minute.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from estimator.estimator import ConcurrencyEstimator, Estimate, ensure_table
from siblings.config import SiblingsConfig
from siblings.local.calls import CallRecorder
from siblings.local.faults import CrashInjector, ThrottleInjector
from siblings.local.middleware import compose
from siblings.local.provision import create_function, create_schedule_rule
from siblings.local.quota import QuotaLayer
from siblings.local.runtime import LocalLambdaRuntime
from siblings.local.server import LOCAL_CREDENTIALS, LOCAL_REGION, LocalAwsServer
from siblings.local.verify import Verification, verify
from siblings.manager import SiblingsManager

FUNCTION_NAME = "cursor-worker"
WORK_TABLE = "cursor-worker-chains"
OUTPUT_TABLE = "cursor-worker-output"
PAYLOAD_BUCKET = "cursor-worker-payloads"
RULE_NAME = "cursor-worker-schedule"
SHARED_TABLE = "lambda-siblings"
TEMPLATE_TABLE = "sim-stack-siblings"
"""The shared table's name given to a ``--template`` stack: not the template's default, so a run
shows which table it used."""
DEFAULT_WORKER_FILE = Path(__file__).resolve().parents[2] / "examples" / "cursor_worker.py"


@dataclass(frozen=True)
class FleetSettings:
    """What to run; see ``siblings simulate --help`` for each knob."""

    chains: int = 8
    records: int = 240
    max_concurrency: int | None = 6
    invocation_seconds: float = 4.0
    shutdown_seconds: float = 2.0
    record_seconds: float = 0.03
    fault_rate: float = 0.0
    seed: int = 7
    time_scale: float = 60.0
    max_generations: int = 30
    reserved_concurrency: int | None = None
    timeout_seconds: float = 120.0
    retry_delays: tuple[float, ...] = (0.5, 1.0)
    worker_file: Path = DEFAULT_WORKER_FILE
    drop_record: tuple[str, int] | None = None
    """Test hook: delete this record's result after its commit (verification must fail)."""
    template: Path | None = None
    """A SAM template to deploy first; its stack's shared table and payload bucket are used."""
    template_table_name: str = TEMPLATE_TABLE
    """The template's ``SiblingsTableName`` parameter."""

    def __post_init__(self) -> None:
        if self.chains < 1 or self.records < 1:
            raise ValueError("chains and records must be >= 1")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be within 0..1")
        if self.shutdown_seconds >= self.invocation_seconds:
            raise ValueError("shutdown_seconds must be shorter than invocation_seconds")
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")

    @property
    def chain_ids(self) -> list[str]:
        """The chains' ids."""
        return [f"c{index:03d}" for index in range(self.chains)]

    @property
    def stale_after_seconds(self) -> float:
        """When a chain nobody commits to counts as abandoned: longer than three attempts."""
        return 3 * (self.invocation_seconds + 1.0) + sum(self.retry_delays) + 2.0


class SimClock:
    """Epoch seconds running ``scale`` times faster than the wall clock from creation on."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.origin = time.time()

    def now(self) -> float:
        """The scaled time now."""
        return self.origin + (time.time() - self.origin) * self.scale


@dataclass
class Sample:
    """One observation of the fleet by the monitor."""

    t: float
    """Seconds since the run started."""
    running: int
    estimate: int | None
    """Little's law, as the guards' cache holds it."""
    observed_peak: int | None
    """The highest ConcurrentExecutions of a minute in the same window (same call)."""
    records_done: int
    spawned: int


@dataclass
class _Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    committed: int = 0
    chains_done: set[str] = field(default_factory=set)


def _local_session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=LOCAL_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=LOCAL_CREDENTIALS["aws_secret_access_key"],
        aws_session_token=LOCAL_CREDENTIALS["aws_session_token"],
        region_name=LOCAL_REGION,
    )


def load_worker_module(path: Path) -> ModuleType:
    """Import the worker example from its file (``examples/`` is not an installed package)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"worker example not found at {path}; run from a checkout of the repository "
            "or pass --worker-file"
        )
    spec = importlib.util.spec_from_file_location("cursor_worker", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("cursor_worker", module)
    spec.loader.exec_module(module)
    return module


class Fleet:
    """One simulation run; use as a context manager around :meth:`run`."""

    def __init__(self, settings: FleetSettings) -> None:
        self.settings = settings
        self.worker = load_worker_module(settings.worker_file)
        self._store_class = _observed_store_class(self.worker.ChainStore)
        self.clock = SimClock(settings.time_scale)
        seeded = random.Random(settings.seed)
        self.recorder = CallRecorder()
        self.quota = QuotaLayer()
        self.throttles = ThrottleInjector(settings.fault_rate, seed=settings.seed)
        self.crashes = CrashInjector(settings.fault_rate, seed=settings.seed)
        self.runtime = LocalLambdaRuntime(
            retry_delays=settings.retry_delays,
            metrics_flush_seconds=0.25,
            metrics_clock=self.clock.now,
            metric_duration_scale=settings.time_scale,
            request_ids=lambda: str(uuid.UUID(int=seeded.getrandbits(128), version=4)),
        )
        self.server = LocalAwsServer(
            middleware=compose(
                self.recorder.wrap, self.quota.wrap, self.throttles.wrap, self.runtime.wrap
            )
        )
        self.session: boto3.Session | None = None
        self.config: SiblingsConfig | None = None
        self.stack_outputs: dict[str, str] = {}
        """The deployed template's outputs (empty without ``template``)."""
        self.table_created = False
        """Whether the fleet created the shared table (not when a template's stack did)."""
        self.managers: list[SiblingsManager] = []
        self.samples: list[Sample] = []
        self.monitor_metric_calls = 0
        self.started_at = 0.0
        self.finished_at = 0.0
        self.completed = False
        self._tally = _Tally()
        self._lock = threading.Lock()
        self._session_lock = threading.Lock()
        self._container_session = _local_session()
        self._stop_schedule = threading.Event()
        self._monitor_estimator: ConcurrencyEstimator | None = None

    # --- lifecycle ---
    def __enter__(self) -> Fleet:
        self.server.start()
        # moto keeps its state per process: start from an empty account.
        self.server.reset()
        self.session = _local_session()
        try:
            self._provision()
        except BaseException:
            # __exit__ is not called when __enter__ fails (e.g. a template that does not deploy).
            self.server.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop_schedule.set()
        self.runtime.stop()
        self.server.stop()

    def client(self, service: str, **config: Any) -> Any:
        """A client on the server (setup and observation, not the workers')."""
        assert self.session is not None
        return self.session.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.server.endpoint_url,
            config=BotoConfig(max_pool_connections=50, **config),
        )

    def _provision(self) -> None:
        settings = self.settings
        assert self.session is not None
        table_name, payload_bucket = SHARED_TABLE, PAYLOAD_BUCKET
        if settings.template is not None:
            from siblings.local.stack import deploy_template

            self.stack_outputs = deploy_template(
                self.session,
                self.server.endpoint_url,
                settings.template,
                parameters={"SiblingsTableName": settings.template_table_name},
            )
            table_name = self.stack_outputs["SiblingsTableName"]
            payload_bucket = self.stack_outputs["PayloadBucketName"]
        self.config = SiblingsConfig(
            endpoint_url=self.server.endpoint_url,
            region_name=LOCAL_REGION,
            table_name=table_name,
            max_concurrency=settings.max_concurrency,
            max_generations=settings.max_generations,
            payload_bucket=payload_bucket,
        )
        # With a stack this finds its table ready (TTL on) and does nothing.
        self.table_created = ensure_table(self.config, session=self.session)
        store = self.worker.ChainStore(self.client("dynamodb"), WORK_TABLE, OUTPUT_TABLE)
        store.create_tables()
        if settings.template is None:
            self.client("s3").create_bucket(Bucket=PAYLOAD_BUCKET)
        arn = create_function(
            self.client("lambda"),
            self.client("iam"),
            FUNCTION_NAME,
            timeout_seconds=max(1, round(settings.invocation_seconds)),
            environment={
                "CURSOR_WORKER_TABLE": WORK_TABLE,
                "CURSOR_WORKER_OUTPUT_TABLE": OUTPUT_TABLE,
                "SIBLINGS_TABLE_NAME": self.config.table_name,
                "SIBLINGS_PAYLOAD_BUCKET": payload_bucket,
            },
        )
        create_schedule_rule(self.client("events"), RULE_NAME, arn)
        for chain_id in settings.chain_ids:
            store.add_chain(chain_id, settings.records)
        self.runtime.register(
            FUNCTION_NAME,
            factory=self._new_container,
            timeout_seconds=settings.invocation_seconds,
            reserved_concurrency=settings.reserved_concurrency,
        )
        cloudwatch = self.client("cloudwatch", retries={"mode": "standard", "max_attempts": 3})

        def count(**_: Any) -> None:
            self.monitor_metric_calls += 1

        cloudwatch.meta.events.register("before-send.cloudwatch.GetMetricData", count)
        # The monitor keeps its own in-process cache: sharing the fleet's table would do the
        # fleet's refreshes for it and hide how few CloudWatch calls the fleet makes itself.
        self._monitor_estimator = ConcurrencyEstimator(
            self.config.replace(use_dynamodb=False),
            session=self.session,
            cloudwatch_client=cloudwatch,
            clock=self.clock.now,
        )
        # The run's counts start now, not with the setup calls.
        self.recorder.reset()
        self.quota.reset()

    def _new_container(self) -> Callable[[Any, Any], Any]:
        """A cold start: what the worker module's top level would build, one per container."""
        assert self.config is not None
        session = self._container_session
        endpoint = self.server.endpoint_url

        def client(service: str, retries: Any) -> Any:
            # One session for every container (loading botocore's models once keeps cold starts
            # light); its client creation is not thread-safe, the clients are.
            with self._session_lock:
                return session.client(  # type: ignore[call-overload]
                    service, endpoint_url=endpoint, config=BotoConfig(retries=retries)
                )

        # Clients made at init, as a handler module's top level would: not on the first spawn.
        estimator = ConcurrencyEstimator(
            self.config,
            session=session,
            clock=self.clock.now,
            cloudwatch_client=client("cloudwatch", {"mode": "standard", "max_attempts": 3}),
        )
        manager = SiblingsManager(
            config=self.config,
            session=session,
            estimator=estimator,
            # The manager retries Invoke itself, with backoff bounded by the deadline.
            lambda_client=client("lambda", {"mode": "standard", "total_max_attempts": 1}),
            events_client=client("events", {"mode": "standard", "max_attempts": 3}),
            s3_client=client("s3", {"mode": "standard", "max_attempts": 3}),
        )
        with self._lock:
            self.managers.append(manager)
        dynamodb = client("dynamodb", {"mode": "standard", "max_attempts": 5})
        store = self._store_class(self, dynamodb)
        crashes = self.crashes
        record_seconds = self.settings.record_seconds

        def process(chain_id: str, index: int) -> str:
            crashes.step()
            time.sleep(record_seconds)
            return f"{chain_id}:{index}"

        worker = self.worker.CursorWorker(
            store,
            manager=manager,
            process=process,
            shutdown_seconds=self.settings.shutdown_seconds,
            stale_after_seconds=self.settings.stale_after_seconds,
        )
        return crashes.wrap(worker)

    # --- the run ---
    def run(self, on_sample: Callable[[Fleet, Sample], None] | None = None) -> Verification:
        """Start every chain, observe until all are done (or the timeout), then verify."""
        settings = self.settings
        assert self.config is not None
        self.runtime.start(self.client("cloudwatch"))
        self.started_at = time.monotonic()
        for chain_id in settings.chain_ids:
            self.runtime.invoke_async(FUNCTION_NAME, {"chain": chain_id, "epoch": 1, "cursor": 0})
        schedule = threading.Thread(target=self._schedule, name="eventbridge-schedule", daemon=True)
        schedule.start()
        deadline = self.started_at + settings.timeout_seconds
        next_estimate = 0.0
        estimate: Estimate | None = None
        while True:
            now = time.monotonic()
            if now >= next_estimate:
                estimate = self._estimate()
                next_estimate = now + 0.5
            sample = self._sample(estimate)
            if on_sample is not None:
                on_sample(self, sample)
            if len(self._tally.chains_done) >= settings.chains:
                self.completed = True
                break
            if now >= deadline:
                break
            time.sleep(0.2)
        self._stop_schedule.set()
        schedule.join(timeout=5)
        self.runtime.wait_idle(timeout=settings.invocation_seconds * 3 + sum(settings.retry_delays))
        self.finished_at = time.monotonic()
        self.runtime.stop()
        self._sample(self._estimate())
        return self.verify()

    def _schedule(self) -> None:
        """EventBridge's side of the enabled rule: fire once per metric minute."""
        period = 60.0 / self.settings.time_scale
        event = {
            "version": "0",
            "source": "aws.events",
            "detail-type": "Scheduled Event",
            "resources": [f"arn:aws:events:{LOCAL_REGION}:123456789012:rule/{RULE_NAME}"],
            "detail": {},
        }
        while not self._stop_schedule.wait(period):
            self.runtime.invoke_async(FUNCTION_NAME, event)

    def _estimate(self) -> Estimate | None:
        assert self._monitor_estimator is not None
        try:
            return self._monitor_estimator.estimate(FUNCTION_NAME)
        except Exception:  # an unavailable estimate is a gap in the plot, not a failure
            return None

    def _sample(self, estimate: Estimate | None) -> Sample:
        sample = Sample(
            observed_peak=None if estimate is None else estimate.observed_peak,
            t=time.monotonic() - self.started_at,
            running=self.runtime.running(FUNCTION_NAME),
            estimate=None if estimate is None else estimate.value,
            records_done=self._tally.committed,
            spawned=self.spawn_stats()["spawned"],
        )
        self.samples.append(sample)
        return sample

    # --- observation ---
    def spawn_stats(self) -> Counter[str]:
        """Every container's manager stats, summed."""
        total: Counter[str] = Counter()
        with self._lock:
            managers = list(self.managers)
        for manager in managers:
            total.update(manager.stats)
        return total

    def shared_table_items(self) -> dict[str, int]:
        """Items in the shared table by kind (the key's prefix: ``estimate``, ``rules``, ...)."""
        assert self.config is not None
        kinds: Counter[str] = Counter()
        paginator = self.client("dynamodb").get_paginator("scan")
        pages = paginator.paginate(TableName=self.config.table_name, ProjectionExpression="pk")
        for page in pages:
            kinds.update(item["pk"]["S"].split("#", 1)[0] for item in page["Items"])
        return dict(sorted(kinds.items()))

    def record_counts(self) -> dict[tuple[str, int], int]:
        """How many output items cover each record, read from the output table."""
        store = self.worker.ChainStore(self.client("dynamodb"), WORK_TABLE, OUTPUT_TABLE)
        return dict(store.coverage())

    def verify(self) -> Verification:
        """Run the end-of-run checks."""
        return verify(
            chains={chain_id: self.settings.records for chain_id in self.settings.chain_ids},
            record_counts=self.record_counts(),
            invocations=self.runtime.invocations(),
            max_generations=self.settings.max_generations,
        )

    def chains_done(self) -> int:
        """Chains marked done so far."""
        with self._tally.lock:
            return len(self._tally.chains_done)

    def records_done(self) -> int:
        """Records committed so far (counted as commits succeed)."""
        return self._tally.committed

    def note_commit(self, records: int) -> None:
        """Called by the observed store after each successful commit."""
        with self._tally.lock:
            self._tally.committed += records

    def note_done(self, chain_id: str) -> None:
        """Called by the observed store when a chain is marked done."""
        with self._tally.lock:
            self._tally.chains_done.add(chain_id)


def _observed_store_class(base: type) -> type:
    """A subclass of the example's ``ChainStore`` that reports progress to the fleet."""

    class ObservedStore(base):  # type: ignore[misc, valid-type]
        def __init__(self, fleet: Fleet, dynamodb: Any) -> None:
            super().__init__(dynamodb, WORK_TABLE, OUTPUT_TABLE)
            self._fleet = fleet

        def commit(self, chain: Any, owner: str, start: int, results: list[str]) -> int | None:
            committed: int | None = super().commit(chain, owner, start, results)
            if committed is not None:
                drop = self._fleet.settings.drop_record
                if drop and drop[0] == chain.chain_id and start <= drop[1] < committed:
                    self._forget(chain.chain_id, start, drop[1])
                self._fleet.note_commit(committed - start)
            return committed

        def set_status(self, chain: Any, owner: str, status: str) -> bool:
            changed = bool(super().set_status(chain, owner, status))
            if changed and status == "done":
                self._fleet.note_done(chain.chain_id)
            return changed

        def _forget(self, chain_id: str, start: int, index: int) -> None:
            """The bug the drop test plants: the batch holding ``index`` loses it."""
            key = self._fleet.worker.batch_key(chain_id, start)
            item = self.dynamodb.get_item(TableName=self.output_table_name, Key=key)["Item"]
            count = int(item["count"]["N"])
            self.dynamodb.delete_item(TableName=self.output_table_name, Key=key)
            for first, last in ((start, index), (index + 1, start + count)):
                if last > first:
                    self.dynamodb.put_item(
                        TableName=self.output_table_name,
                        Item={
                            **self._fleet.worker.batch_key(chain_id, first),
                            "count": {"N": str(last - first)},
                            "results": {"L": item["results"]["L"][first - start : last - start]},
                        },
                    )

    return ObservedStore


def summary(fleet: Fleet, verification: Verification) -> dict[str, Any]:
    """Everything the run measured, JSON-able."""
    settings = fleet.settings
    stats = fleet.runtime.stats()
    spawns = fleet.spawn_stats()
    calls = fleet.recorder.counts()
    estimates = [s.estimate for s in fleet.samples if s.estimate is not None]
    peaks = [s.observed_peak for s in fleet.samples if s.observed_peak is not None]
    elapsed = (fleet.finished_at or time.monotonic()) - fleet.started_at
    metric_calls = calls.get(("monitoring", "GetMetricData"), 0)
    assert fleet.config is not None
    return {
        "settings": {
            "chains": settings.chains,
            "records": settings.records,
            "max_concurrency": settings.max_concurrency,
            "invocation_seconds": settings.invocation_seconds,
            "shutdown_seconds": settings.shutdown_seconds,
            "fault_rate": settings.fault_rate,
            "seed": settings.seed,
            "time_scale": settings.time_scale,
            "max_generations": settings.max_generations,
            "reserved_concurrency": settings.reserved_concurrency,
            "template": str(settings.template) if settings.template else None,
            "table_name": fleet.config.table_name,
            "payload_bucket": fleet.config.payload_bucket,
        },
        "shared_table": {
            "name": fleet.config.table_name,
            "created_by_fleet": fleet.table_created,
            "stack_outputs": fleet.stack_outputs,
            # Read after the run's counts above: this scan is not one of the fleet's calls.
            "items_by_kind": fleet.shared_table_items(),
        },
        "completed": fleet.completed,
        "elapsed_seconds": round(elapsed, 2),
        "records_done": fleet.records_done(),
        "executions": {
            "invocations": stats.accepted,
            "attempts": stats.attempts,
            "retries": stats.retries,
            "errors": stats.errors,
            "timeouts": stats.timeouts,
            "failed_after_retries": stats.failed,
            "cold_starts": stats.cold_starts,
            "throttled_by_reserved_concurrency": stats.throttled,
            "peak_true_concurrency": stats.peak_concurrency,
        },
        "concurrency": {
            "true_peak": stats.peak_concurrency,
            "estimate_last": estimates[-1] if estimates else None,
            "estimate_peak": max(estimates) if estimates else None,
            # ConcurrentExecutions (Maximum) from the same GetMetricData call as Little's law.
            "observed_peak_last": peaks[-1] if peaks else None,
            "observed_peak": max(peaks) if peaks else None,
        },
        "spawns": {
            "spawned": spawns["spawned"],
            "duplicates": spawns["duplicate"],
            "failed": spawns["failed"],
            "refused": {
                key.removeprefix("refused_"): value
                for key, value in sorted(spawns.items())
                if key.startswith("refused_")
            },
        },
        "calls": {
            "cloudwatch_get_metric_data": metric_calls - fleet.monitor_metric_calls,
            "cloudwatch_get_metric_data_by_monitor": fleet.monitor_metric_calls,
            "cloudwatch_put_metric_data": calls.get(("monitoring", "PutMetricData"), 0),
            "eventbridge": sum(n for (svc, _), n in calls.items() if svc == "events"),
            "eventbridge_by_action": {
                act: n for (svc, act), n in sorted(calls.items()) if svc == "events"
            },
            "lambda_invoke": calls.get(("lambda", "Invoke"), 0),
            "dynamodb": sum(n for (svc, _), n in calls.items() if svc == "dynamodb"),
            "s3": sum(n for (svc, _), n in calls.items() if svc == "s3"),
        },
        "throttles": {
            "quota_layer": fleet.quota.throttled(),
            "injected": {
                "lambda_invoke": fleet.throttles.injected("lambda", "Invoke"),
                "cloudwatch_get_metric_data": fleet.throttles.injected(
                    "monitoring", "GetMetricData"
                ),
            },
            "handler_crashes_injected": dict(fleet.crashes.crashes),
        },
        "verification": verification.to_dict(),
    }


def to_json(document: dict[str, Any]) -> str:
    """The summary as indented JSON."""
    return json.dumps(document, indent=2, sort_keys=True, default=str)
