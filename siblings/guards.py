"""The loop guards, each answered from a cache or one cheap read, each giving a Verdict.

1. Kill switch (:mod:`siblings.killswitch`): applies even with ``force``.
2. Generation limit: a sibling past ``max_generations`` is refused, even with ``force``.
3. EventBridge: some rule targeting the function is enabled (:mod:`siblings.rules`, cached in
   both tiers), or an EventBridge Scheduler schedule named in ``trigger_schedules``
   (:mod:`siblings.schedules`, cached the same way), or ``auto_spawning`` is on, as in sosw.
4. Concurrency: with ``max_concurrency`` set, the cached estimate (by ``concurrency_signal``)
   must be below it.
5. Account headroom: with ``min_account_headroom`` set, the account's concurrency must stay
   more than that many executions below the account's limit, and the function's below its
   reserved concurrency when it has one (the tighter of the two counts). Applies even with
   ``force``: a forced runaway is what it protects the account's other functions from.
6. Recursive loop (:mod:`siblings.recursion`): the function's ``RecursiveLoop`` must be
   ``Allow``, or Lambda drops the chain after 16 invocations while the Invoke still answers
   202; applies even with ``force`` (it protects the caller's work, not the account).

A guard that cannot be answered (``LookupFailed``, ``EstimateUnavailable``,
``StoreUnavailable`` with no value to fall back on) follows ``on_guard_error``: ``refuse``
(the default) gives a ``guard_error`` refusal, ``allow`` lets the spawn through and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from estimator import AccountLimit, ConcurrencyEstimator, ConcurrencySignal, Estimate
from estimator.memory import Cached
from estimator.shared_cache import TwoTierCache, Validate
from siblings.config import GuardErrorPolicy, SiblingsConfig
from siblings.context import InvocationInfo, remaining_seconds
from siblings.errors import EstimateUnavailable, LookupFailed, StoreUnavailable
from siblings.keys import rule_names_key, rules_key, schedule_key
from siblings.killswitch import KillSwitch
from siblings.recursion import RecursionLookup, RecursiveLoop
from siblings.result import Reason
from siblings.rules import RuleLookup, RuleNamesItem, RulesItem
from siblings.schedules import ScheduleItem, ScheduleLookup

GuardFailure = LookupFailed | EstimateUnavailable | StoreUnavailable


@dataclass(frozen=True)
class Verdict:
    """One guard's answer."""

    allowed: bool
    reason: Reason | None = None
    """Refusal reason (one of :data:`siblings.result.REFUSALS`) when not allowed."""
    detail: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    """What the guard saw (value, source, error), copied into ``SpawnResult.guards``."""


class Guards:
    """Evaluates the guards for one manager; the expensive parts are built on first use."""

    def __init__(
        self,
        config: SiblingsConfig,
        *,
        cache: TwoTierCache,
        kill_switch: KillSwitch,
        rule_lookup: Callable[[], RuleLookup],
        estimator: Callable[[], ConcurrencyEstimator],
        recursion: Callable[[], RecursionLookup] | None = None,
        schedule_lookup: Callable[[], ScheduleLookup] | None = None,
    ) -> None:
        self.config = config
        self.cache = cache
        self.kill_switch = kill_switch
        self._rule_lookup = rule_lookup
        self._estimator = estimator
        self._recursion = recursion
        self._schedule_lookup = schedule_lookup

    def on_error(self, guard: str, exc: BaseException) -> Verdict:
        """Apply ``on_guard_error`` to a guard that could not be answered."""
        info = {"error": f"{type(exc).__name__}: {exc}", "policy": self.config.on_guard_error}
        if self.config.on_guard_error is GuardErrorPolicy.ALLOW:
            return Verdict(True, info=info)
        return Verdict(False, Reason.GUARD_ERROR, f"{guard} guard unavailable: {exc}", info)

    def check_kill_switch(self, info: InvocationInfo, forced: bool = False) -> Verdict:
        """Refuse while an operator has disabled spawning of the function.

        The switch is read on every spawn (one eventually consistent read: it takes effect
        within about a second). A container missing the rule state or the estimate in memory reads them in
        the same request (one BatchGetItem) and keeps them, so that the guards after it make
        no request of their own.
        """
        cold = self._cold_entries(info, forced)
        try:
            state, items = self.kill_switch.read(info.ref, list(cold))
            for name, item in items.items():  # the keys read; the others are read by their guard
                self.cache.accept(name, item, ttl=cold[name][0], validate=cold[name][1])
            # Without a table the switch lives in this process: nobody can have flipped it.
            source = "dynamodb" if self.kill_switch.store.shared else "none (no shared table)"
        except StoreUnavailable as exc:
            # Only in an outage does the last known state stand in (see KillSwitch.stand_in).
            last = self.kill_switch.stand_in(info.ref, exc, self.config.stale_grace_seconds)
            if last is None:
                return self.on_error("kill_switch", exc)
            state, source = last, "memory (dynamodb unavailable)"
        detail = f"disabled by {state.changed_by}: {state.reason}" if state.disabled else ""
        verdict_info: dict[str, Any] = {"disabled": state.disabled, "source": source}
        if state.corrupt:
            detail, verdict_info["corrupt"] = state.reason, True
        if state.disabled:
            return Verdict(False, Reason.KILL_SWITCH, detail, verdict_info)
        return Verdict(True, info=verdict_info)

    def _cold_entries(self, info: InvocationInfo, forced: bool) -> dict[str, tuple[float, Validate]]:
        """The shared items the later guards will need and this process does not hold fresh."""
        cold: dict[str, tuple[float, Validate]] = {}
        if self._recursion is not None and self.config.check_recursive_loop:
            key, ttl, validate = self._recursion().shared_entry(info.ref)
            if self.cache.memory.get(key) is None:
                cold[key] = (ttl, validate)
        if forced:
            return cold
        if not self.config.auto_spawning:
            key = rules_key(info.ref)
            if self.cache.memory.get(key) is None:
                cold[key] = (self.config.rules_cache_ttl_seconds, RulesItem.valid)
            for schedule in self.config.trigger_schedules:
                key = schedule_key(info.ref, schedule)
                if self.cache.memory.get(key) is None:
                    cold[key] = (self.config.rules_cache_ttl_seconds, ScheduleItem.valid)
        if self.config.max_concurrency is not None:
            try:
                entry = self._estimator().shared_entry(info.unqualified_arn)
            except EstimateUnavailable:  # the account is unknown: the concurrency guard says so
                entry = None
            if entry is not None:
                cold[entry[0]] = (entry[1], entry[2])
        return cold

    def check_generation(self, generation: int) -> Verdict:
        """Refuse a sibling whose generation would exceed ``max_generations``."""
        limit = self.config.max_generations
        verdict_info = {"generation": generation, "max_generations": limit}
        if generation > limit:
            detail = f"generation {generation} is over max_generations={limit}"
            return Verdict(False, Reason.MAX_GENERATIONS, detail, verdict_info)
        return Verdict(True, info=verdict_info)

    def rules_state(self, info: InvocationInfo) -> Cached:
        """The cached rule state of the function (raises :class:`LookupFailed`)."""
        return self.cache.get(
            rules_key(info.ref),
            lambda: self._load_rules_state(info),
            ttl=self.config.rules_cache_ttl_seconds,
            origin="eventbridge",
            validate=RulesItem.valid,
            max_wait=max_wait(info),
        )

    def _load_rules_state(self, info: InvocationInfo) -> dict[str, Any]:
        """The rule state from EventBridge, over the rule names cached in both tiers."""
        lookup = self._rule_lookup()
        key, ttl = rule_names_key(info.ref), self.config.rule_names_ttl_seconds

        def names_of(arn: str, relist: bool) -> list[str]:
            def listed() -> dict[str, Any]:
                return {"names": list(lookup.rule_names(arn))}

            try:
                if relist:
                    cached = self.cache.reload(key, listed, ttl=ttl, origin="eventbridge")
                else:
                    cached = self.cache.get(key, listed, ttl=ttl, origin="eventbridge",
                                            validate=RuleNamesItem.valid, max_wait=max_wait(info))
            except LookupFailed as exc:  # the rule state's own failure is EventBridge's error
                if exc.cause is not None:
                    raise exc.cause from exc
                raise
            return list(cached.value["names"])

        return lookup.state(info, names_of)

    def schedule_state(self, schedule: str, info: InvocationInfo) -> Cached:
        """The cached state of a named schedule (raises :class:`LookupFailed`)."""
        if self._schedule_lookup is None:
            raise LookupFailed(schedule_key(info.ref, schedule), RuntimeError("no Scheduler client"))
        lookup = self._schedule_lookup
        return self.cache.get(
            schedule_key(info.ref, schedule),
            lambda: lookup().state(schedule),
            ttl=self.config.rules_cache_ttl_seconds,
            origin="scheduler",
            validate=ScheduleItem.valid,
            max_wait=max_wait(info),
        )

    def check_rules(self, info: InvocationInfo) -> Verdict:
        """Allow when an EventBridge rule or a schedule named in ``trigger_schedules`` targeting
        the function is enabled, or ``auto_spawning`` is on (then no lookup is made at all)."""
        if self.config.auto_spawning:
            return Verdict(True, info={"auto_spawning": True})
        try:
            cached = self.rules_state(info)
        except LookupFailed as exc:
            return self.on_error("eventbridge", exc)
        value = cached.value
        verdict_info: dict[str, Any] = {
            "enabled": value.get("enabled"),
            "rule": value.get("rule"),
            "source": cached.source,
            "stale": cached.stale,
        }
        if value.get("enabled"):
            return Verdict(True, info=verdict_info)
        schedules: dict[str, Any] = {}
        for schedule in self.config.trigger_schedules:
            try:
                state = self.schedule_state(schedule, info)
            except LookupFailed as exc:
                return self.on_error("eventbridge", exc)
            answer = state.value
            if answer.get("target") not in (None, info.function_arn):  # another function's
                schedules[schedule] = f"{answer.get('state')}, targets {answer.get('target')}"
                continue
            schedules[schedule] = answer.get("state")
            if answer.get("state") == "ENABLED":
                verdict_info.update(enabled=True, schedule=schedule, source=state.source, stale=state.stale)
                return Verdict(True, info=verdict_info)
        verdict_info["schedules"] = schedules
        return Verdict(False, Reason.RULES_DISABLED, _no_trigger(info, schedules), verdict_info)

    def check_recursion(self, info: InvocationInfo) -> Verdict:
        """Refuse while the function's ``RecursiveLoop`` is ``Terminate``: Lambda would drop the
        chain's 17th invocation and the work handed to it, while the Invoke answered 202."""
        if self._recursion is None or not self.config.check_recursive_loop:
            return Verdict(True, info={"check_recursive_loop": False})
        try:
            setting = self._recursion().recursion_config(info.ref, max_wait=max_wait(info))
        except LookupFailed as exc:
            return self.on_error("recursion", exc)
        verdict_info = {
            "recursive_loop": setting.recursive_loop.value,
            "source": setting.source,
            "stale": setting.stale,
        }
        if setting.recursive_loop is RecursiveLoop.TERMINATE:
            detail = (
                f"function {info.function_name} has RecursiveLoop: Terminate (Lambda's default), "
                "so Lambda would drop this chain after 16 invocations and lose the work handed "
                "off; set RecursiveLoop: Allow on the function (aws lambda "
                "put-function-recursion-config --recursive-loop Allow), the library's guards "
                "replace AWS's"
            )
            return Verdict(False, Reason.RECURSIVE_LOOP, detail, verdict_info)
        return Verdict(True, info=verdict_info)

    def check_concurrency(self, info: InvocationInfo) -> Verdict:
        """Refuse while the estimated concurrency is at or above ``max_concurrency``."""
        limit = self.config.max_concurrency
        if limit is None:
            return Verdict(True, info={"max_concurrency": None})
        try:
            estimate = self._estimator().estimate(info.unqualified_arn, max_wait=max_wait(info))
        except EstimateUnavailable as exc:
            return self.on_error("concurrency", exc)
        signal = self.config.concurrency_signal
        current = estimate.concurrency(signal)
        verdict_info = {
            "estimate": current,
            "signal": signal.value,
            "littles_law": estimate.value,
            "observed_peak": estimate.observed_peak,
            "max_concurrency": limit,
            "source": estimate.source,
            "stale": estimate.stale,
        }
        if current >= limit:
            detail = f"concurrency ({signal.value}) {current} >= max_concurrency={limit}"
            return Verdict(False, Reason.MAX_CONCURRENCY, detail, verdict_info)
        return Verdict(True, info=verdict_info)

    def check_account_headroom(self, info: InvocationInfo) -> Verdict:
        """Refuse while the account (or the function, against its reserved concurrency) is
        within ``min_account_headroom`` executions of its concurrency limit."""
        minimum = self.config.min_account_headroom
        if minimum is None:
            return Verdict(True, info={"min_account_headroom": None})
        wait = max_wait(info)
        estimator = self._estimator()
        try:
            estimate = estimator.estimate(info.unqualified_arn, max_wait=wait)
            account = estimator.account_limit(max_wait=wait)
            reserved = estimator.reserved_concurrency(info.unqualified_arn, max_wait=wait).reserved
        except (EstimateUnavailable, LookupFailed) as exc:
            return self.on_error("account_headroom", exc)
        verdict_info = headroom(estimate, account, reserved)
        verdict_info["min_account_headroom"] = minimum
        if verdict_info["headroom"] <= minimum:
            detail = (
                f"{verdict_info['limited_by']} headroom {verdict_info['headroom']} <= "
                f"min_account_headroom={minimum}"
            )
            return Verdict(False, Reason.ACCOUNT_HEADROOM, detail, verdict_info)
        return Verdict(True, info=verdict_info)


def _no_trigger(info: InvocationInfo, schedules: dict[str, Any]) -> str:
    """Why no trigger counts: the rules, and the schedules (named or not)."""
    rules = f"no enabled EventBridge rule targets {info.function_arn}"
    if not schedules:
        return (
            f"{rules}, and no EventBridge Scheduler schedule is named in trigger_schedules "
            "(schedules are not rules: name yours there); auto_spawning is off"
        )
    states = ", ".join(f"{name}: {state or 'not found'}" for name, state in schedules.items())
    return (
        f"{rules}, and no schedule of trigger_schedules is enabled and targets it ({states}); "
        "auto_spawning is off"
    )


def headroom(estimate: Estimate, account: AccountLimit, reserved: int | None) -> dict[str, Any]:
    """How many more executions fit: under the account's limit, and under the function's
    reserved concurrency when set; ``headroom`` is the tighter, ``limited_by`` says which.

    The account's side is its limit minus what on-demand functions can no longer use, Lambda's
    ``ClaimedAccountConcurrency``: executions in use *plus* every function's reserved (and
    provisioned) concurrency, idle or not
    (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-concurrency.html). Reserved
    concurrency is claimed even before any metric shows it, so the claim is never taken below
    the limit minus ``UnreservedConcurrentExecutions`` of ``GetAccountSettings``. No datapoint
    means nothing ran in the window. A function with reserved concurrency runs inside its own
    reservation, which is part of the claim: the account's side leaves it out (else a function
    reserving most of the account would refuse itself). The function's own concurrency is the
    higher of Little's law and its observed peak (a limit is hit by peaks, not averages).
    """
    allocated = 0
    if account.unreserved_concurrent_executions is not None:
        allocated = max(0, account.concurrent_executions - account.unreserved_concurrent_executions)
    claimed = max(estimate.claimed_concurrency or 0, estimate.account_concurrency or 0, allocated)
    others = claimed if reserved is None else max(0, claimed - reserved)
    room = account.concurrent_executions - others
    limited_by = "account"
    function_concurrency = estimate.concurrency(ConcurrencySignal.MAX)
    if reserved is not None and reserved - function_concurrency < room:
        room, limited_by = reserved - function_concurrency, "reserved_concurrency"
    return {
        "headroom": room,
        "limited_by": limited_by,
        "account_concurrency": estimate.account_concurrency,
        "claimed_concurrency": claimed,
        "account_limit": account.concurrent_executions,
        "function_concurrency": function_concurrency,
        "reserved_concurrency": reserved,
        "source": estimate.source,
        "limit_source": account.source,
        "stale": estimate.stale or account.stale,
    }


def max_wait(info: InvocationInfo) -> float | None:
    """How long a guard may wait for another execution's refresh: a quarter of the time left,
    so that the spawn itself (claim, offload, Invoke with retries) still fits."""
    remaining = remaining_seconds(info)
    return None if remaining is None else max(0.0, remaining / 4)
