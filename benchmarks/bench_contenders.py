"""The four contenders of the throttle-load benchmark, each building one execution per thread.

Every execution stands for a separate warm Lambda container: its own boto3 session and
clients, its own in-process caches. Sessions share botocore's model loader (read-only data)
only so that building hundreds of them stays fast.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from bench_fleet import Execution, Outcome, describe_error

from siblings.local.context import LambdaContext
from siblings.local.server import LOCAL_CREDENTIALS, LOCAL_REGION

# One loader for every session: service models are parsed once per process, not per container.
_LOADER: Any = None
_LOADER_LOCK = threading.Lock()


def new_session() -> boto3.Session:
    """A separate boto3 session (as in its own container) sharing the model loader."""
    global _LOADER
    core = botocore.session.Session()
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = core.get_component("data_loader")
        else:
            core.register_component("data_loader", _LOADER)
    return boto3.Session(botocore_session=core, region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)


@dataclass(frozen=True)
class Target:
    """What the fleet decides about, and the settings every contender shares."""

    function_name: str
    function_arn: str
    endpoint_url: str
    true_concurrency: int
    max_concurrency: int
    cache_ttl_s: float
    rules_ttl_s: float
    minutes_back: int = 5


def context_for(target: Target) -> LambdaContext:
    """A fresh Lambda context: each decision is one invocation of a warm container."""
    return LambdaContext(
        function_name=target.function_name,
        function_version="$LATEST",
        invoked_function_arn=target.function_arn,
        memory_limit_in_mb=128,
        aws_request_id=str(uuid.uuid4()),
        deadline=time.monotonic() + 600,
    )


class Contender:
    """Builds executions of one implementation; ``prepare`` runs once per fleet size."""

    name = ""
    label = ""

    def prepare(self, target: Target) -> None:
        """Create what the contender needs before the run (with throttling off)."""

    def execution(self, target: Target) -> Execution:
        """One execution environment."""
        raise NotImplementedError


# --- (1) the seed: sosw 0.7.47 ---


class SeedContender(Contender):
    """sosw's ``SiblingsManager``: ``get_approximate_concurrent_executions()`` (two
    GetMetricStatistics) then ``spawn_sibling(force=False)`` (ListRules, ListTargetsByRule per
    enabled rule, Invoke). sosw builds its clients with ``boto3.client()``; they reach the local
    server through ``AWS_ENDPOINT_URL`` (set by the benchmark) with boto3's default retries.
    """

    name = "seed"
    label = "seed: sosw 0.7.47"

    def execution(self, target: Target) -> Execution:
        """A sosw SiblingsManager with its own clients."""
        from sosw.components.siblings import SiblingsManager as SoswSiblingsManager

        return _SeedExecution(SoswSiblingsManager(custom_config={"auto_spawning": False}), target)


class _SeedExecution:
    def __init__(self, manager: Any, target: Target) -> None:
        self.manager = manager
        self.target = target
        self.step = 0

    def decide(self) -> Outcome:
        estimate = self.manager.get_approximate_concurrent_executions(
            minutes_back=self.target.minutes_back, name=self.target.function_name
        )
        if estimate >= self.target.max_concurrency:
            return Outcome(False, estimate)
        self.step += 1
        try:
            self.manager.spawn_sibling(context_for(self.target), payload={"step": self.step})
        except Exception as exc:  # the estimate was made; the spawn step failed
            return Outcome(False, estimate, describe_error(exc))
        return Outcome(None, estimate)


# --- (2) naive: one GetMetricData per decision ---


class NaiveContender(Contender):
    """The estimator's one GetMetricData call on every decision, no cache, then Invoke.

    No EventBridge guard: this isolates what an uncached concurrency check costs.
    """

    name = "naive"
    label = "naive: 1 GetMetricData per decision"

    def execution(self, target: Target) -> Execution:
        """An uncached estimator and a Lambda client of its own."""
        from estimator import ConcurrencyEstimator
        from siblings.config import SiblingsConfig

        session = new_session()
        config = SiblingsConfig(
            endpoint_url=target.endpoint_url, region_name=LOCAL_REGION, use_dynamodb=False
        )
        estimator = ConcurrencyEstimator(config, session=session)
        estimator.cloudwatch  # noqa: B018 - build the client now, as a container's init would
        lam = session.client("lambda", endpoint_url=target.endpoint_url)
        return _NaiveExecution(estimator, lam, target)


class _NaiveExecution:
    def __init__(self, estimator: Any, lam: Any, target: Target) -> None:
        self.estimator = estimator
        self.lam = lam
        self.target = target
        self.step = 0

    def decide(self) -> Outcome:
        estimate = self.estimator.estimate(
            self.target.function_name, self.target.minutes_back, use_cache=False
        ).value
        if estimate >= self.target.max_concurrency:
            return Outcome(False, estimate)
        self.step += 1
        try:
            self.lam.invoke(
                FunctionName=self.target.function_arn,
                InvocationType="Event",
                Payload=json.dumps({"step": self.step}).encode(),
            )
        except Exception as exc:
            return Outcome(False, estimate, describe_error(exc))
        return Outcome(True, estimate)


# --- (3) and (4) ours ---


class OursContender(Contender):
    """``siblings.SiblingsManager.spawn_sibling(context, payload)`` with ``max_concurrency``
    set: kill switch, generation, EventBridge and concurrency guards from the cache, an
    idempotent Invoke. The estimate used is read from the result's guard details.
    """

    def __init__(self, use_dynamodb: bool) -> None:
        self.use_dynamodb = use_dynamodb
        self.name = "ours-ddb" if use_dynamodb else "ours-tier1"
        self.label = "ours: tier 1 + DynamoDB" if use_dynamodb else "ours: tier 1 only"
        self.table_name = ""

    def prepare(self, target: Target) -> None:
        """A fresh table per run, so no run starts from another's cache."""
        self.table_name = f"bench-{self.name}-{target.true_concurrency}-{uuid.uuid4().hex[:6]}"
        if self.use_dynamodb:
            from estimator import ensure_table

            ensure_table(self.config(target), session=new_session())

    def config(self, target: Target) -> Any:
        """The library configuration every execution of this contender uses."""
        from siblings.config import SiblingsConfig

        return SiblingsConfig(
            table_name=self.table_name,
            endpoint_url=target.endpoint_url,
            region_name=LOCAL_REGION,
            minutes_back=target.minutes_back,
            cache_ttl_seconds=target.cache_ttl_s,
            rules_cache_ttl_seconds=target.rules_ttl_s,
            max_concurrency=target.max_concurrency,
            use_dynamodb=self.use_dynamodb,
        )

    def execution(self, target: Target) -> Execution:
        """A SiblingsManager with its own session, clients and tier-1 cache."""
        from siblings import SiblingsManager

        manager = SiblingsManager(config=self.config(target), session=new_session())
        return OursExecution(manager, target)


class OursExecution:
    """One container running ours."""

    def __init__(self, manager: Any, target: Target) -> None:
        self.manager = manager
        self.target = target
        self.step = 0

    def decide(self) -> Outcome:
        """``spawn_sibling`` as a handler would call it."""
        self.step += 1
        result = self.manager.spawn_sibling(context_for(self.target), payload={"step": self.step})
        concurrency = (result.guards or {}).get("concurrency") or {}
        estimate = concurrency.get("estimate")
        return Outcome(bool(result), estimate if isinstance(estimate, int) else None)


CONTENDERS: dict[str, Any] = {
    "seed": SeedContender,
    "naive": NaiveContender,
    "ours-tier1": lambda: OursContender(use_dynamodb=False),
    "ours-ddb": lambda: OursContender(use_dynamodb=True),
}
"""Contender factories by name, in report order."""
