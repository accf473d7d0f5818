"""The contenders of the AWS-time benchmark and the discrete-event loop that drives a fleet.

A decision, per contender (no Invoke in any of them: the spawn itself costs the same for all):

* ``ours``: the guards ``spawn_sibling`` runs before its Invoke, through
  :class:`siblings.guards.Guards`: the kill switch (one consistent read; a cold container
  reads rule state and estimate in the same BatchGetItem), the EventBridge rule state and the
  concurrency estimate (two-tier cache). Each execution has its own memory tier, breaker, kill
  switch and refresh jitter, as a container would; boto3 clients are shared (they hold no
  cache, and 5,000 sets would not fit in memory).
* ``naive``: one uncached GetMetricData per decision (the library's estimator, ``use_cache=False``).
* ``sosw``: sosw 0.7.47's ``get_approximate_concurrent_executions`` (two GetMetricStatistics)
  and ``any_events_rules_enabled`` (ListRules, then ListTargetsByRule per enabled rule). sosw
  keeps no state between calls, so one manager serves every execution at the same cost.
"""

from __future__ import annotations

import heapq
import random
import time
from dataclasses import dataclass, field
from typing import Any

from aws_stack import Stack

from siblings.local.server import LOCAL_REGION


@dataclass(frozen=True)
class Target:
    """The function the fleet decides about and the settings every contender shares."""

    name: str
    arn: str
    table: str
    cache_ttl_s: float
    rules_ttl_s: float
    max_concurrency: int = 100_000


class _Context:
    """The parts of a Lambda context the guards read."""

    def __init__(self, arn: str, request_id: str) -> None:
        self.invoked_function_arn = arn
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:
        return 600_000


@dataclass
class Outcome:
    """One decision: answered by every guard (``ok``), and the estimate it used."""

    ok: bool
    estimate: int | None = None
    error: str | None = None


class OursFleet:
    """Builds executions of ours: :class:`Guards` over per-execution cache tiers."""

    name = "ours"
    label = "ours (memory + DynamoDB)"

    def __init__(self, stack: Stack, target: Target, seed: int) -> None:
        from estimator import ensure_table
        from estimator.store import item_model
        from siblings.config import SiblingsConfig

        self.stack, self.target, self.seed = stack, target, seed
        self.config = SiblingsConfig(
            table_name=target.table, endpoint_url=stack.endpoint_url, region_name=LOCAL_REGION,
            cache_ttl_seconds=target.cache_ttl_s, rules_cache_ttl_seconds=target.rules_ttl_s,
            max_concurrency=target.max_concurrency, metrics_enabled=False,
        )
        ensure_table(self.config, session=stack.session)
        self.model = item_model(self.config, stack.session)
        self.cloudwatch = stack.client("cloudwatch")
        self.events = stack.client("events")

    def execution(self, index: int) -> Any:
        """One container: its own memory tier, breaker, kill switch and jitter."""
        from estimator import ConcurrencyEstimator
        from estimator.breaker import Breaker
        from estimator.refresh_policy import RefreshPolicy
        from estimator.shared_cache import TwoTierCache
        from estimator.store import DynamoStore
        from siblings.guards import Guards
        from siblings.killswitch import KillSwitch
        from siblings.rules import RuleLookup

        clock, config = self.stack.clock, self.config
        breaker = Breaker(f"table {config.table_name!r}", config.error_backoff_seconds, clock=clock)
        store = DynamoStore(config, model=self.model, breaker=breaker)
        cache = TwoTierCache(config, store, clock)
        cache.policy = RefreshPolicy(config, random.Random(self.seed * 1_000_003 + index))
        estimator = ConcurrencyEstimator(config, cloudwatch_client=self.cloudwatch, store=store,
                                         cache=cache, clock=clock)
        events = self.events
        guards = Guards(config, cache=cache, kill_switch=KillSwitch(store, clock=clock),
                        rule_lookup=lambda: RuleLookup(events), estimator=lambda: estimator)
        return _OursExecution(guards, _Context(self.target.arn, f"req-{index}"))


class _OursExecution:
    def __init__(self, guards: Any, context: _Context) -> None:
        self.guards = guards
        self.context = context

    def decide(self) -> Outcome:
        from siblings.context import read_context
        from siblings.result import Reason

        info = read_context(self.context)
        verdicts = [self.guards.check_kill_switch(info), self.guards.check_rules(info),
                    self.guards.check_concurrency(info)]
        errors = [v for v in verdicts if v.reason is Reason.GUARD_ERROR]
        estimate = verdicts[2].info.get("estimate")
        if errors:
            return Outcome(False, estimate, errors[0].detail)
        return Outcome(all(v.allowed for v in verdicts), estimate)


class NaiveFleet:
    """One uncached GetMetricData per decision."""

    name = "naive"
    label = "naive (1 GetMetricData per decision)"

    def __init__(self, stack: Stack, target: Target, seed: int) -> None:
        from estimator import ConcurrencyEstimator
        from estimator.config import Config

        config = Config(endpoint_url=stack.endpoint_url, region_name=LOCAL_REGION, use_dynamodb=False)
        self.estimator = ConcurrencyEstimator(config, cloudwatch_client=stack.client("cloudwatch"),
                                              clock=stack.clock)
        self.target = target

    def execution(self, index: int) -> Any:
        """Every execution shares the stateless estimator (``use_cache=False``)."""
        return self

    def decide(self) -> Outcome:
        try:
            value = self.estimator.estimate(self.target.name, use_cache=False).value
        except Exception as exc:  # a failed decision is a result
            return Outcome(False, None, type(exc).__name__)
        return Outcome(True, value)


class SoswFleet:
    """sosw 0.7.47's two guard calls, as published (its clock patched to AWS time)."""

    name = "sosw"
    label = "sosw 0.7.47"

    def __init__(self, stack: Stack, target: Target, seed: int) -> None:
        from sosw.components.siblings import SiblingsManager
        from vclock import patch_sosw_clock

        patch_sosw_clock(stack.clock)
        self.manager = SiblingsManager(custom_config={"auto_spawning": False})
        self.context = _Context(target.arn, "req")
        self.target = target

    def execution(self, index: int) -> Any:
        """sosw keeps no state between decisions: one manager stands for every container."""
        return self

    def decide(self) -> Outcome:
        try:
            value = self.manager.get_approximate_concurrent_executions(name=self.target.name)
            enabled = self.manager.any_events_rules_enabled(self.context)
        except Exception as exc:
            return Outcome(False, None, type(exc).__name__)
        return Outcome(bool(enabled), int(value))


FLEETS: dict[str, Any] = {"ours": OursFleet, "naive": NaiveFleet, "sosw": SoswFleet}


@dataclass
class FleetRun:
    """What a fleet did: decisions, failures, the AWS time covered, the wall time spent."""

    decisions: int = 0
    ok: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    estimates: list[int] = field(default_factory=list)
    aws_seconds: float = 0.0
    wall_seconds: float = 0.0
    setup_seconds: float = 0.0


def run_fleet(stack: Stack, fleet: Any, size: int, interval_s: float, duration_s: float,
              seed: int) -> FleetRun:
    """Every execution decides every ``interval_s`` of AWS time from a random phase, for
    ``duration_s``; events run in time order, one at a time."""
    began = time.perf_counter()
    executions = [fleet.execution(i) for i in range(size)]
    run = FleetRun(setup_seconds=time.perf_counter() - began)
    rng = random.Random(seed)
    start = stack.clock.start
    heap = [(start + rng.uniform(0, interval_s), i) for i in range(size)]
    heapq.heapify(heap)
    began = time.perf_counter()
    while heap:
        due, index = heapq.heappop(heap)
        stack.clock.set(due)
        outcome = executions[index].decide()
        run.decisions += 1
        run.ok += outcome.ok
        if outcome.error is not None:
            run.failed += 1
            run.errors[outcome.error[:80]] = run.errors.get(outcome.error[:80], 0) + 1
        if outcome.estimate is not None and len(run.estimates) < 100_000:
            run.estimates.append(outcome.estimate)
        following = max(due + interval_s, stack.clock.now())
        if following < start + duration_s:
            heapq.heappush(heap, (following, index))
    run.wall_seconds = time.perf_counter() - began
    run.aws_seconds = duration_s
    return run
