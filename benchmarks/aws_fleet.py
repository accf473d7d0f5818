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
    shared_table = True

    def __init__(self, stack: Stack, targets: list[Target], seed: int) -> None:
        from estimator import ensure_table
        from estimator.store import item_model
        from siblings.config import SiblingsConfig

        target = targets[0]
        self.stack, self.targets, self.seed = stack, targets, seed
        self.config = SiblingsConfig(
            table_name=target.table, endpoint_url=stack.endpoint_url, region_name=LOCAL_REGION,
            cache_ttl_seconds=target.cache_ttl_s, rules_cache_ttl_seconds=target.rules_ttl_s,
            max_concurrency=target.max_concurrency, metrics_enabled=False,
            use_dynamodb=self.shared_table,
        )
        if self.shared_table:
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
        store: Any
        if self.shared_table:
            breaker = Breaker(f"table {config.table_name!r}", config.error_backoff_seconds, clock=clock)
            store = DynamoStore(config, model=self.model, breaker=breaker)
        else:  # the container's own memory: no request, nothing shared
            from estimator.memory_store import MemoryStore

            store = MemoryStore()
        kill_switch = KillSwitch(store, clock=clock)
        cache = TwoTierCache(config, store, clock)
        cache.policy = RefreshPolicy(config, random.Random(self.seed * 1_000_003 + index))
        estimator = ConcurrencyEstimator(config, cloudwatch_client=self.cloudwatch, store=store,
                                         cache=cache, clock=clock)
        events = self.events
        guards = Guards(config, cache=cache, kill_switch=kill_switch,
                        rule_lookup=lambda: RuleLookup(events), estimator=lambda: estimator)
        target = self.targets[index % len(self.targets)]
        return _OursExecution(guards, _Context(target.arn, f"req-{index}"))


class PerContainerFleet(OursFleet):
    """What a user would write without the shared table: the same guards, each container
    caching the estimate and the rule state in its own memory only (no kill switch)."""

    name = "per-container"
    label = "per-container cache (60 s memory, no table)"
    shared_table = False


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
    """One uncached GetMetricData per decision, asking for what Little's law needs: the
    function's Invocations (Sum) and Duration (Average) over the window."""

    name = "naive"
    label = "naive (1 GetMetricData per decision)"

    def __init__(self, stack: Stack, targets: list[Target], seed: int) -> None:
        self.cloudwatch = stack.client("cloudwatch")
        self.clock = stack.clock
        self.targets = targets
        self._next = 0

    def execution(self, index: int) -> Any:
        """Stateless: every execution of a function costs the same."""
        return _NaiveExecution(self, self.targets[index % len(self.targets)].name)

    def estimate(self, name: str) -> int:
        """Little's law over the last 5 whole minutes, from one GetMetricData."""
        import datetime as dt
        import math

        end = dt.datetime.fromtimestamp(self.clock.now() // 60 * 60, tz=dt.UTC)
        start = end - dt.timedelta(minutes=5)
        dims = [{"Name": "FunctionName", "Value": name}]
        queries = [
            {"Id": f"q{i}", "MetricStat": {"Metric": {"Namespace": "AWS/Lambda", "MetricName": metric,
                                                      "Dimensions": dims},
                                           "Period": 300, "Stat": stat}}
            for i, (metric, stat) in enumerate([("Invocations", "Sum"), ("Duration", "Average")])
        ]
        reply = self.cloudwatch.get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end)
        values = {r["Id"]: sum(r.get("Values", [])) for r in reply["MetricDataResults"]}
        return math.ceil(values.get("q0", 0) * values.get("q1", 0) / 1000 / 300)


class _NaiveExecution:
    def __init__(self, fleet: NaiveFleet, name: str) -> None:
        self.fleet, self.name = fleet, name

    def decide(self) -> Outcome:
        try:
            value = self.fleet.estimate(self.name)
        except Exception as exc:  # a failed decision is a result
            return Outcome(False, None, type(exc).__name__)
        return Outcome(True, value)


class SoswFleet:
    """sosw 0.7.47's two guard calls, as published (its clock patched to AWS time), in the
    account's worst rule order for it: the function's own rule listed last."""

    name = "sosw"
    label = "sosw 0.7.47 (own rule last)"
    own_rule_first = False

    def __init__(self, stack: Stack, targets: list[Target], seed: int) -> None:
        from sosw.components.siblings import SiblingsManager
        from vclock import patch_sosw_clock

        patch_sosw_clock(stack.clock)
        self.manager = SiblingsManager(custom_config={"auto_spawning": False})
        self.targets = targets

    def execution(self, index: int) -> Any:
        """sosw keeps no state between decisions: one manager serves every container."""
        target = self.targets[index % len(self.targets)]
        return _SoswExecution(self.manager, target.name, _Context(target.arn, "req"))


class SoswBestFleet(SoswFleet):
    """sosw in its best rule order: the function's own rule listed first."""

    name = "sosw-best"
    label = "sosw 0.7.47 (own rule first)"
    own_rule_first = True


class _SoswExecution:
    def __init__(self, manager: Any, name: str, context: _Context) -> None:
        self.manager, self.name, self.context = manager, name, context

    def decide(self) -> Outcome:
        try:
            value = self.manager.get_approximate_concurrent_executions(name=self.name)
            enabled = self.manager.any_events_rules_enabled(self.context)
        except Exception as exc:
            return Outcome(False, None, type(exc).__name__)
        return Outcome(bool(enabled), int(value))


FLEETS: dict[str, Any] = {fleet.name: fleet for fleet in (
    OursFleet, PerContainerFleet, NaiveFleet, SoswFleet, SoswBestFleet)}


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
