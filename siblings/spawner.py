"""The spawn pipeline: guards, the step's claim, the Invoke and its record, in that order.

For one ``spawn_sibling`` call (a :class:`~siblings.spawn_call.SpawnCall`):

1. the generation limit and the chain budget (no I/O);
2. the kill switch (one eventually consistent GetItem; in a cold container one BatchGetItem that also
   brings the rule state and the estimate) **in parallel with** the step's claim (one
   conditional PutItem that returns the existing record on conflict): one round trip;
3. an earlier spawn of the step returns its first result (``duplicate``);
4. the recursive loop setting (even when forced: Lambda itself would drop the work), then,
   unless forced, the EventBridge and concurrency guards, then (forced too) account headroom
   (from the caches: no I/O when warm);
5. offload, Invoke with retries, then one BatchWriteItem: the spawn record and the child's
   chain position under the Invoke's request id.

A refusal after the claim releases it. A warm spawn thus makes three DynamoDB requests, one
round trip of them before the Invoke.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Any, TypeVar

from estimator.aws import Clients
from estimator.clock import SYSTEM_CLOCK, Clock
from estimator.deadline import calls_within
from siblings.budget import check_chain_budget
from siblings.chain_log import ChainLog
from siblings.config import SiblingsConfig
from siblings.context import spawn_deadline
from siblings.decisions import DecisionLog
from siblings.defer import Deferrer
from siblings.errors import SpawnFailed, StoreUnavailable
from siblings.guards import Guards, Verdict
from siblings.invoke import RECURSIVE_INVOCATION, InvokeOutcome, Invoker, error_code
from siblings.keys import invocation_key
from siblings.ledger import Claim, ClaimStatus, SpawnLedger
from siblings.payload import upload
from siblings.result import Reason, SpawnResult, duplicate_of
from siblings.spawn_call import SpawnCall

log = logging.getLogger(__name__)
T = TypeVar("T")


class Spawner:
    """Runs the pipeline for a manager; one per manager, thread-safe."""

    def __init__(
        self,
        config: SiblingsConfig,
        guards: Guards,
        ledger: SpawnLedger,
        clients: Clients,
        decisions: DecisionLog,
        clock: Clock = SYSTEM_CLOCK,
        *,
        chain_log: ChainLog | None = None,
        deferrer: Deferrer | None = None,
    ) -> None:
        self.clock = clock
        self.chain_log = chain_log
        self.deferrer = deferrer
        self.config = config
        self.guards = guards
        self.ledger = ledger
        self.clients = clients
        self.decisions = decisions
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="siblings-guard")
        self._inflight: dict[str, Future[SpawnResult]] = {}
        self._inflight_lock = threading.Lock()

    def spawn(self, call: SpawnCall) -> SpawnResult:
        """Decide ``call``; threads of this process spawning the same step share one decision."""
        with self._inflight_lock:
            running = self._inflight.get(call.key)
            if running is None:
                future: Future[SpawnResult] = Future()
                self._inflight[call.key] = future
        if running is not None:
            return self._await_winner(running, call)
        try:
            outcome = self._decide(call)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(outcome)
            return outcome
        finally:
            with self._inflight_lock:
                self._inflight.pop(call.key, None)

    def _decide(self, call: SpawnCall) -> SpawnResult:
        deadline = call.deadline if call.deadline is not None else spawn_deadline(call.info, self.clock)
        # Every AWS call of the decision, here and on the pool, times out before the deadline.
        with calls_within(deadline, self.clock):
            listing = self._list_chain(call)
            try:
                return self._decide_step(call, deadline)
            finally:
                if listing is not None:
                    listing.result()  # never raises: the chain log's writes are best effort

    def _submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn`` on the pool in this thread's context (its call deadline included)."""
        return self._pool.submit(contextvars.copy_context().run, fn, *args)

    def _list_chain(self, call: SpawnCall) -> Future[None] | None:
        """A chain's first spawn adds it to its function's list of the day, in parallel with
        the decision (its three requests overlap the claim and the Invoke)."""
        if (
            self.chain_log is None
            or not self.config.chain_index
            or call.child.generation != 1
            or self.config.dry_run
        ):
            return None
        return self._submit(self.chain_log.list_chain, call.child.chain_id, call.info.function_arn)

    def _decide_step(self, call: SpawnCall, deadline: float | None) -> SpawnResult:
        stop = self._verdict(call, "generation", self.guards.check_generation(call.child.generation))
        if stop is None:  # not ``or``: a refusal is a falsy SpawnResult
            stop = self._verdict(call, "chain_budget", check_chain_budget(call.child, self.config))
        if stop is None:
            stop = self._dry_run(call, deadline) if self.config.dry_run else self._spawn(call, deadline)
        if call.guard_ms is None:  # stopped before the cached guards: it all was guard time
            call.guard_ms = (self.clock.monotonic() - call.started) * 1000.0
        return self.decisions.record(stop, call.started, call.guard_ms)

    def _verdict(self, call: SpawnCall, name: str, verdict: Verdict) -> SpawnResult | None:
        """Record ``verdict`` under ``name``: ``None`` when the spawn may go on, else the refusal."""
        call.guards[name] = verdict.info
        if verdict.allowed:
            if "error" in verdict.info:
                self.decisions.count("guard_error_allowed")
            return None
        assert verdict.reason is not None
        return call.result(verdict.reason, detail=verdict.detail)

    def _cached_guards(self, call: SpawnCall) -> SpawnResult | None:
        """The recursive loop setting (with ``force`` too), then EventBridge and concurrency
        (skipped under ``force``), then account headroom (even forced: a forced runaway is what it
        protects the account's other functions from); the guards' time is taken here, when the
        last of them has answered."""
        try:
            stop = self._verdict(call, "recursion", self.guards.check_recursion(call.info))
            if stop is not None:
                return stop
            checks = [("account_headroom", self.guards.check_account_headroom)]
            if call.forced:
                call.guards.update({name: {"skipped": "force"} for name in ("eventbridge", "concurrency")})
            else:
                checks[:0] = [
                    ("eventbridge", self.guards.check_rules),
                    ("concurrency", self.guards.check_concurrency),
                ]
            for name, check in checks:
                stop = self._verdict(call, name, check(call.info))
                if stop is not None:
                    return stop
            return None
        finally:
            call.guard_ms = (self.clock.monotonic() - call.started) * 1000.0

    def _dry_run(self, call: SpawnCall, deadline: float | None) -> SpawnResult:
        stop = self._verdict(call, "kill_switch", self.guards.check_kill_switch(call.info))
        stop = stop or self._cached_guards(call)
        if stop is not None:
            return stop
        outcome = self._invoke(call, "DryRun", deadline)
        return call.result(
            Reason.DRY_RUN,
            request_id=outcome.request_id,
            offloaded=call.encoded.offloaded,
            payload_key=call.encoded.key,
            detail="dry_run: Lambda checked the Invoke, no sibling was started",
        )

    def _spawn(self, call: SpawnCall, deadline: float | None) -> SpawnResult:
        """Kill switch with the claim, the cached guards, then Invoke and record.

        The claim may already end the call (``stop``: spawned before, or another execution
        holds the step); a refusal of the kill switch still wins over a duplicate, and only a
        refusal by the guards can become a deferral."""
        kill, claim, stop = self._kill_and_claim(call, deadline)
        try:
            if stop is not None and claim is not None and claim.status is ClaimStatus.DONE:
                return stop  # spawned before: that result wins
            refusal = self._verdict(call, "kill_switch", kill)
            if refusal is None and stop is None:
                refusal = self._cached_guards(call)
            ended = refusal if refusal is not None else stop
            if ended is not None:
                released = self._release(call, claim)  # a deferral's relay claims the step again
                if refusal is not None and self.deferrer is not None and released:
                    return self.deferrer.defer(call, refusal) or refusal
                return ended
            outcome = self._invoke(call, "Event", deadline)
        except SpawnFailed as exc:
            if error_code(exc.cause) == RECURSIVE_INVOCATION and not exc.maybe_spawned:
                self._release(call, claim)  # Lambda stopped the loop: nothing was handed off
                return call.result(Reason.RECURSIVE_LOOP, detail=str(exc))
            if not exc.maybe_spawned:  # a sibling may run: keep the record, a retry takes it over
                self._release(call, claim)
            raise
        except BaseException:
            self._release(call, claim)
            raise
        return self._record(call, claim, outcome)

    def _release(self, call: SpawnCall, claim: Claim | None) -> bool:
        """Give back a claim this call made (never someone else's record); whether no claim
        of this call is left behind."""
        if claim is not None and claim.status is ClaimStatus.CLAIMED:
            return self.ledger.release(call.key, claim.token)
        return True

    def _record(self, call: SpawnCall, claim: Claim | None, outcome: InvokeOutcome) -> SpawnResult:
        spawned = call.result(
            Reason.SPAWNED,
            request_id=outcome.request_id,
            offloaded=call.encoded.offloaded,
            payload_key=call.encoded.key,
        )
        child = None
        if outcome.request_id:  # where the child finds its position under its request id
            child = (invocation_key(call.info.ref.scope, outcome.request_id), call.child)
        try:
            token = claim.token if claim is not None else None
            extra = self.chain_log.items(spawned) if self.chain_log is not None else None
            self.ledger.complete(call.key, call.info.request_id, token, spawned.to_dict(), child, extra)
        except StoreUnavailable as exc:
            if claim is None:  # nothing was recorded to begin with (on_guard_error=allow)
                log.warning("spawned, but the spawn record of %s was not saved: %s", call.key, exc)
                return spawned
            # The sibling runs, but neither its record nor its position was saved: say so, never
            # report a plain success. The pending record stays, so a retry of this execution
            # takes the step over, and the siblings' claim on start lets only one of them run it.
            hint = "keep the work: a retry of this execution takes the step over"
            failed = SpawnFailed(
                call.info.function_name,
                exc,
                outcome.attempts,
                maybe_spawned=True,
                hint=hint,
                request_id=outcome.request_id or "?",
            )
            self.decisions.record(call.result(Reason.FAILED, detail=str(failed)), call.started)
            raise failed from exc
        return spawned

    def _kill_and_claim(
        self, call: SpawnCall, deadline: float | None
    ) -> tuple[Verdict, Claim | None, SpawnResult | None]:
        """Read the kill switch and claim the step at the same time (one round trip, not two):
        the switch's verdict, the claim to go on with, and the result that stops the spawn."""
        pending = self._submit(self.guards.check_kill_switch, call.info, call.forced)
        try:
            claim, stop = self._claim(call, deadline)
        finally:
            kill = pending.result()  # never raises: an unreadable switch is a verdict too
        return kill, claim, stop

    def _claim(
        self, call: SpawnCall, deadline: float | None
    ) -> tuple[Claim | None, SpawnResult | None]:
        """Claim the step: the claim to go on with, or the result that stops the spawn."""
        try:
            claimed = self.ledger.claim(call.key, call.info.request_id, deadline)
        except StoreUnavailable as exc:
            return None, self._verdict(call, "ledger", self.guards.on_error("ledger", exc))
        if claimed.status is ClaimStatus.DONE and claimed.result is not None:
            return claimed, duplicate_of(claimed.result, call.guards)
        if claimed.status is ClaimStatus.BUSY:
            detail = f"another execution ({claimed.owner}) is spawning this chain step"
            return claimed, call.result(Reason.DUPLICATE, duplicate=True, detail=detail)
        if claimed.status is ClaimStatus.CORRUPT:
            error = StoreUnavailable("GetItem", ValueError(f"spawn record {call.key!r} is corrupt"))
            stop = self._verdict(call, "ledger", self.guards.on_error("ledger", error))
            return (None, stop) if stop is not None else (self.ledger.take_over(call.key), None)
        return claimed, None

    def _invoke(self, call: SpawnCall, invocation_type: str, deadline: float | None) -> InvokeOutcome:
        """Offload (for a real spawn) and Invoke; a failure is counted, logged and raised."""
        invoker = Invoker(
            self.clients.per_call("lambda"),  # each attempt's timeouts fit the time left then
            max_attempts=self.config.invoke_max_attempts,
            backoff_seconds=self.config.invoke_backoff_seconds,
            max_backoff_seconds=self.config.invoke_backoff_max_seconds,
            clock=self.clock,
        )
        encoded = call.encoded
        try:
            if invocation_type == "Event" and encoded.offloaded:
                upload(encoded, self.clients.get("s3"), call.info.function_name)
            return invoker.invoke(
                call.info.function_arn, encoded.body, invocation_type=invocation_type, deadline=deadline
            )
        except SpawnFailed as exc:
            if error_code(exc.cause) != RECURSIVE_INVOCATION:  # that one is a refusal
                self.decisions.record(call.result(Reason.FAILED, detail=str(exc)), call.started)
            raise

    def _await_winner(self, running: Future[SpawnResult], call: SpawnCall) -> SpawnResult:
        """Another thread of this process is spawning the same step: share its result."""
        try:
            first = running.result(timeout=self.config.lease_wait_seconds)
        except FutureTimeout:
            busy = call.result(
                Reason.DUPLICATE, duplicate=True, detail="another thread is still spawning this chain step"
            )
            return self.decisions.record(busy, call.started)
        if first.spawned:
            first = replace(
                first,
                reason=Reason.DUPLICATE,
                duplicate=True,
                detail="another thread spawned this chain step; returning its result",
            )
        return self.decisions.record(first, call.started)


