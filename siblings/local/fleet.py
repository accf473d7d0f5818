"""A local fleet of cursor workers on the embedded server: set up, run, observe, verify.

:class:`Fleet` wires everything ``siblings simulate`` shows: a moto server behind the call
recorder, AWS's default quotas, injected throttles and the two windows that invoke a chain step
twice (:mod:`siblings.local.windows`); the local Lambda runtime running the packaged cursor
worker one container per concurrent execution (:mod:`siblings.local.fleet_worker`), its work
noted per execution (:mod:`siblings.local.work_log`); the shared table, a payload bucket, the
function and an enabled schedule rule targeting it.
With ``template`` set, the shared table and the payload bucket are those of that SAM template,
deployed into the server's CloudFormation first (:mod:`siblings.local.stack`).

CloudWatch time can run faster than the wall clock (``time_scale``): the runtime stamps its
metrics with a clock running ``time_scale`` times faster and scales durations alike, and the
estimators read CloudWatch with that clock, so one-minute metric resolution fits into a
demo of seconds while Little's law keeps its meaning. Everything else (deadlines, retries,
backoff, quotas) is real time. The emulated schedule fires once per metric minute.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from estimator.estimator import ConcurrencyEstimator, Estimate, ensure_table
from siblings.config import SiblingsConfig
from siblings.local.calls import CallRecorder
from siblings.local.faults import CrashInjector, ThrottleInjector
from siblings.local.fleet_worker import Containers, load_worker_module
from siblings.local.middleware import compose
from siblings.local.provision import create_function, create_schedule_rule
from siblings.local.quota.layer import QuotaLayer
from siblings.local.runtime import LocalLambdaRuntime
from siblings.local.runtime.schedules import ScheduleFirer
from siblings.local.server import LOCAL_REGION, LocalAwsServer, local_session
from siblings.local.settings import (
    FUNCTION_NAME,
    OUTPUT_TABLE,
    PAYLOAD_BUCKET,
    RULE_NAME,
    SHARED_TABLE,
    WORK_TABLE,
    FaultKind,
    FleetSettings,
)
from siblings.local.simclock import SimClock
from siblings.local.verify import Verification, verify
from siblings.local.windows import WindowFaults
from siblings.local.work_log import WorkLog


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


class Fleet:
    """One simulation run; use as a context manager around :meth:`run`."""

    def __init__(self, settings: FleetSettings) -> None:
        self.settings = settings
        self.worker = load_worker_module(settings.worker_file)
        self.clock = SimClock(settings.time_scale)
        seeded = random.Random(settings.seed)
        self.recorder = CallRecorder()
        self.quota = QuotaLayer()
        self.throttles = ThrottleInjector(
            settings.fault_rate,
            seed=settings.seed,
            rates={
                ("lambda", "Invoke"): settings.rate(FaultKind.INVOKE_THROTTLE),
                ("monitoring", "GetMetricData"): settings.rate(FaultKind.METRIC_DATA_THROTTLE),
            },
        )
        self.crashes = CrashInjector(settings.rate(FaultKind.HANDLER_CRASH), seed=settings.seed)
        self.runtime = LocalLambdaRuntime(
            retry_delays=settings.retry_delays,
            metrics_flush_seconds=0.25,
            metrics_clock=self.clock.now,
            metric_duration_scale=settings.time_scale,
            request_ids=lambda: str(uuid.UUID(int=seeded.getrandbits(128), version=4)),
        )
        self.windows = WindowFaults(
            self.runtime,
            crash_rate=settings.rate(FaultKind.CRASH_AFTER_INVOKE),
            lost_reply_rate=settings.rate(FaultKind.LOST_INVOKE_REPLY),
            seed=settings.seed,
        )
        self.work = WorkLog()
        """Work done per execution, noted by the worker's work function."""
        # Throttled Invokes never reach Lambda; the windows sit right in front of the runtime.
        self.server = LocalAwsServer(
            middleware=compose(
                self.recorder.wrap,
                self.quota.wrap,
                self.throttles.wrap,
                self.windows.wrap,
                self.runtime.wrap,
            )
        )
        self.containers = Containers(self)
        self.session: boto3.Session | None = None
        self.config: SiblingsConfig | None = None
        self.stack_outputs: dict[str, str] = {}
        """The deployed template's outputs (empty without ``template``)."""
        self.table_created = False
        """Whether the fleet created the shared table (not when a template's stack did)."""
        self.samples: list[Sample] = []
        self.monitor_metric_calls = 0
        self.started_at = 0.0
        self.finished_at = 0.0
        self.completed = False
        self.schedules_fired = 0
        self._tally = _Tally()
        self._stop_schedule = threading.Event()
        self._monitor_estimator: ConcurrencyEstimator | None = None

    # --- lifecycle ---
    def __enter__(self) -> Fleet:
        self.server.start()
        # moto keeps its state per process: start from an empty account.
        self.server.reset()
        self.session = local_session()
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
        table_name, payload_bucket = self._shared_resources()
        self.config = SiblingsConfig(
            endpoint_url=self.server.endpoint_url,
            region_name=LOCAL_REGION,
            table_name=table_name,
            max_concurrency=self.settings.max_concurrency,
            max_generations=self.settings.max_generations,
            payload_bucket=payload_bucket,
            **self._defer_settings(),
        )
        # With a stack this finds its table ready (TTL on) and does nothing.
        self.table_created = ensure_table(self.config, session=self.session)
        self._create_worker(self.config)
        self._monitor_estimator = self._new_monitor(self.config)
        # The run's counts start now, not with the setup calls.
        self.recorder.reset()
        self.quota.reset()

    def _defer_settings(self) -> dict[str, Any]:
        """With ``defer``: deferral on, through a role Scheduler may assume, after a second."""
        if not self.settings.defer:
            return {}
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                 "Principal": {"Service": "scheduler.amazonaws.com"}}]}
        role = self.client("iam").create_role(
            RoleName="siblings-defer", AssumeRolePolicyDocument=json.dumps(trust)
        )["Role"]["Arn"]
        return {"defer_when_busy": True, "defer_role_arn": role, "defer_base_seconds": 1.0,
                "defer_max_seconds": 1.0, "max_deferrals": 20}

    def _shared_resources(self) -> tuple[str, str]:
        """The shared table and payload bucket: the template's stack's, or the fleet's own."""
        settings = self.settings
        if settings.template is None:
            return SHARED_TABLE, PAYLOAD_BUCKET
        from siblings.local.stack import deploy_template

        assert self.session is not None
        self.stack_outputs = deploy_template(
            self.session,
            self.server.endpoint_url,
            settings.template,
            parameters={"SiblingsTableName": settings.template_table_name},
        )
        return self.stack_outputs["SiblingsTableName"], self.stack_outputs["PayloadBucketName"]

    def _create_worker(self, config: SiblingsConfig) -> None:
        """The worker's tables and chains, its function and schedule rule, its registration."""
        settings = self.settings
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
                "SIBLINGS_TABLE_NAME": config.table_name,
                "SIBLINGS_PAYLOAD_BUCKET": str(config.payload_bucket),
            },
            recursive_loop=settings.recursive_loop,
        )
        create_schedule_rule(self.client("events"), RULE_NAME, arn)
        for chain_id in settings.chain_ids:
            store.add_chain(chain_id, settings.records)
        self.runtime.register(
            FUNCTION_NAME,
            factory=self.containers,
            timeout_seconds=settings.invocation_seconds,
            reserved_concurrency=settings.reserved_concurrency,
        )

    def _new_monitor(self, config: SiblingsConfig) -> ConcurrencyEstimator:
        """The estimator behind the live view, its GetMetricData calls counted apart."""
        cloudwatch = self.client("cloudwatch", retries={"mode": "standard", "max_attempts": 3})

        def count(**_: Any) -> None:
            self.monitor_metric_calls += 1

        cloudwatch.meta.events.register("before-send.cloudwatch.GetMetricData", count)
        # The monitor keeps its own in-process cache: sharing the fleet's table would do the
        # fleet's refreshes for it and hide how few CloudWatch calls the fleet makes itself.
        return ConcurrencyEstimator(
            config.replace(use_dynamodb=False),
            session=self.session,
            cloudwatch_client=cloudwatch,
            clock=self.clock,
        )

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
        firer = ScheduleFirer(
            self.client("scheduler"), lambda arn, event: self.runtime.invoke_async(arn, event)
        ).start()
        self.completed = self._observe(on_sample)
        firer.stop()
        self.schedules_fired = len(firer.fired)
        self._stop_schedule.set()
        schedule.join(timeout=5)
        if not self.completed:
            self.runtime.hold()
        self.runtime.wait_idle(timeout=settings.invocation_seconds * 3 + sum(settings.retry_delays))
        # The threads of crashed executions finish their spawn (and count it) a moment later.
        self.runtime.wait_handlers(timeout=settings.invocation_seconds)
        self.finished_at = time.monotonic()
        self.runtime.stop()
        self._sample(self._estimate())
        return self.verify()

    def _observe(self, on_sample: Callable[[Fleet, Sample], None] | None) -> bool:
        """Sample until every chain is done (``True``) or the run's timeout (``False``)."""
        deadline = self.started_at + self.settings.timeout_seconds
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
            if len(self._tally.chains_done) >= self.settings.chains:
                return True
            if now >= deadline:
                return False
            time.sleep(0.2)

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
        return self.containers.spawn_stats()

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
            work_started=self.work.started(),
            timed_out_after=None if self.completed else self.settings.timeout_seconds,
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
