"""``SiblingsManager``: sosw's API, with guards that are cached instead of paid per spawn.

A drop-in for ``sosw.components.siblings.SiblingsManager``::

    from siblings import SiblingsManager

    siblings = SiblingsManager(custom_config={"max_concurrency": 50, "payload_bucket": "b"})

    def lambda_handler(event, context):
        payload = siblings.load_payload(event, context)   # strips "__siblings__", reads S3
        ...
        result = siblings.spawn_sibling(context, payload={"cursor": cursor})
        if not result:
            logger.warning("not spawned: %s (%s)", result.reason, result.detail)

``spawn_sibling`` decides in this order; the first "no" wins and is returned as a
:class:`SpawnResult` (refusals are results, not exceptions):

1. bad input (context, payload, size without a bucket): ``TypeError``/``ValueError``/
   ``PayloadTooLarge`` before anything is written or invoked;
2. generation limit and 3. kill switch: even with ``force=True``;
4. an earlier spawn of the same chain step (a retried parent): the first result, ``duplicate``;
5. EventBridge rule state, 6. concurrency and account headroom: skipped with ``force=True``;
7. claim the step, offload the payload to S3 if needed, async Invoke with retries, record.

An Invoke that still fails raises :class:`SpawnFailed`. Every decision is counted in
:attr:`SiblingsManager.stats` and logged as one JSON line on the ``siblings`` logger.

Idempotency is keyed by chain and generation (:mod:`siblings.ledger`); a context without
``aws_request_id`` (a hand-made one) starts a new random chain each call, so it gets none.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Any

from estimator import ConcurrencyEstimator
from estimator.aws import Clients
from estimator.shared_cache import TwoTierCache
from estimator.store import DynamoStore
from siblings.config import SiblingsConfig
from siblings.context import InvocationInfo, read_context, remaining_seconds
from siblings.decisions import DecisionLog
from siblings.emf import make_emitter
from siblings.errors import SpawnFailed, StoreUnavailable
from siblings.guards import Guards, Verdict
from siblings.invoke import InvokeOutcome, Invoker
from siblings.killswitch import KillSwitch
from siblings.ledger import ClaimStatus, SpawnLedger
from siblings.metadata import ChainMetadata, metadata_of, parse_metadata, recall, root_metadata
from siblings.payload import build_event, has_pointer, load_payload, normalize_payload, upload
from siblings.result import Reason, SpawnResult, duplicate_of
from siblings.rules import RuleLookup
from siblings.spawn_call import SpawnCall

log = logging.getLogger("siblings")

_CLIENT_KWARGS = {"lambda_client": "lambda", "events_client": "events", "s3_client": "s3"}
_OTHER_KWARGS = ("session", "estimator", "store", "cache", "config", "metrics")
# Invoker retries with its own backoff and deadline: no hidden SDK retries under it.
_CLIENT_RETRIES = {"lambda": {"mode": "standard", "total_max_attempts": 1}}
# Kept back from the execution's remaining time so a retried Invoke cannot outlive it.
_DEADLINE_MARGIN_S = 1.0


class SiblingsManager:
    """Spawns asynchronous copies of the running Lambda function, guarded against loops.

    ``custom_config`` holds :class:`~siblings.config.SiblingsConfig` fields (unknown keys are
    kept, as sosw's configs carry other components' keys); the ``SIBLINGS_*`` environment
    gives the defaults. Keyword arguments inject collaborators, all optional: ``config`` (a
    ready :class:`SiblingsConfig`, then ``custom_config`` overrides it), ``session``
    (``boto3.Session``), ``lambda_client``, ``events_client``, ``s3_client``, ``store``
    (:class:`DynamoStore`), ``cache`` (:class:`TwoTierCache`), ``estimator``
    (:class:`ConcurrencyEstimator`), ``metrics`` (a Powertools ``Metrics``, see
    :mod:`siblings.emf`). Clients are created on first use.
    """

    def __init__(self, custom_config: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        unknown = set(kwargs) - set(_CLIENT_KWARGS) - set(_OTHER_KWARGS)
        if unknown:
            raise TypeError(f"SiblingsManager got unexpected keyword arguments: {sorted(unknown)}")
        if custom_config is not None and not isinstance(custom_config, Mapping):
            raise TypeError(f"custom_config must be a dict, got {type(custom_config).__name__}")
        base = kwargs.get("config")
        defaults = base.as_overrides() if base is not None else {}
        self.config: SiblingsConfig = SiblingsConfig.from_env(**{**defaults, **(custom_config or {})})
        self._session = kwargs.get("session")
        self._clients = Clients(
            self.config,
            self._session,
            {service: kwargs.get(name) for name, service in _CLIENT_KWARGS.items()},
            _CLIENT_RETRIES,
        )
        estimator: ConcurrencyEstimator | None = kwargs.get("estimator")
        cache: TwoTierCache | None = kwargs.get("cache")
        if cache is None and estimator is not None:
            cache = estimator.cache  # one tier-1 and one table for estimates and rule state
        store: DynamoStore | None = kwargs.get("store")
        if store is None and cache is not None:
            store = cache.store
        if store is None and self.config.use_dynamodb:
            store = DynamoStore(self.config, session=self._session)
        # One store, hence one breaker, for the cache, the kill switch and the spawn records.
        self.store = store
        self.cache = cache if cache is not None else TwoTierCache(self.config, store)
        self._estimator = estimator
        self._estimator_lock = threading.Lock()
        self.kill_switch = KillSwitch(store) if store is not None else None
        self.ledger = SpawnLedger(store, self.config)
        self.guards = Guards(
            self.config,
            cache=self.cache,
            kill_switch=self.kill_switch,
            rule_lookup=lambda: RuleLookup(self._clients.get("events")),
            estimator=self._get_estimator,
        )
        self._decisions = DecisionLog(make_emitter(self.config, kwargs.get("metrics")))
        self._inflight: dict[str, Future[SpawnResult]] = {}
        self._inflight_lock = threading.Lock()
        self._last_function: str | None = None

    def _get_estimator(self) -> ConcurrencyEstimator:
        with self._estimator_lock:
            if self._estimator is None:
                self._estimator = ConcurrencyEstimator(
                    self.config, session=self._session, store=self.store, cache=self.cache
                )
            return self._estimator

    @property
    def estimator(self) -> ConcurrencyEstimator:
        """The concurrency estimator sharing this manager's cache (created on first use)."""
        return self._get_estimator()

    # --- sosw's surface ---
    def spawn_sibling(
        self,
        lambda_context: Any,
        payload: Any = None,
        force: bool = False,
        *,
        event: Any = None,
    ) -> SpawnResult:
        """Asynchronously invoke a copy of the running function with ``payload``.

        ``lambda_context`` is the handler's context: the sibling is invoked through its
        ``invoked_function_arn`` (alias or version kept) with ``InvocationType='Event'``
        (``'DryRun'`` when ``dry_run`` is configured). ``payload`` is a dict, a JSON-object
        string or ``None``. ``force=True`` skips the EventBridge and concurrency guards, not
        the kill switch or generation limit. ``event`` is the event this execution received
        (or call :meth:`load_payload` with the context first) so the sibling continues its
        chain; without it the execution counts as a chain root.

        Returns a :class:`SpawnResult`, truthy when a sibling exists for this step.
        Raises ``TypeError``/``ValueError`` for a bad context or payload,
        :class:`PayloadTooLarge` when too large with no ``payload_bucket``, and
        :class:`SpawnFailed` when the Invoke (or the S3 offload) failed after retries.
        """
        started = time.monotonic()
        info = read_context(lambda_context)
        data, embedded = normalize_payload(payload)
        parent = self._incoming(info, event, embedded)
        self._last_function = info.function_name
        if parent is None:
            parent = root_metadata(info.request_id or uuid.uuid4().hex)
        child = parent.child(info.request_id)
        encoded = build_event(data, child, function_name=info.function_name, config=self.config)
        call = SpawnCall(info, child, encoded, bool(force), started)
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

    def any_events_rules_enabled(self, lambda_context: Any) -> bool:
        """Whether an EventBridge rule targeting the running function (under the ARN it was
        invoked with, or unqualified) is enabled. Answered from the shared cache; raises
        :class:`~siblings.LookupFailed` when EventBridge fails with nothing cached.
        """
        info = read_context(lambda_context)
        self._last_function = info.function_name
        return bool(self.guards.rules_state(info).value.get("enabled"))

    def get_approximate_concurrent_executions(
        self, minutes_back: int = 5, name: str | None = None
    ) -> int:
        """Approximate concurrent executions of ``name`` (default: the running function, from
        ``AWS_LAMBDA_FUNCTION_NAME`` or the last context seen), by Little's law over the last
        ``minutes_back`` minutes, through the estimator's shared cache.

        Raises :class:`~siblings.EstimateUnavailable` when no value exists.
        """
        target = name or os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or self._last_function
        if not target:
            raise ValueError(
                "name is required outside Lambda (no AWS_LAMBDA_FUNCTION_NAME and no context seen)"
            )
        return self._get_estimator().estimate(target, minutes_back).value

    def load_payload(self, event: Any, lambda_context: Any = None) -> dict[str, Any]:
        """The payload this execution was spawned with (see :func:`siblings.load_payload`),
        read from S3 with this manager's client when it was offloaded. With
        ``lambda_context``, a later :meth:`spawn_sibling` continues this event's chain."""
        s3 = self._clients.get("s3") if has_pointer(event) else None
        return load_payload(event, lambda_context, s3_client=s3, session=self._session)

    # --- stats (sosw components expose get_stats / reset_stats) ---
    @property
    def stats(self) -> dict[str, int]:
        """Counters: ``spawned``, ``refused``, ``refused_<reason>``, ``duplicate``,
        ``offloaded``, ``failed``, ``dry_run``, ``guard_error_allowed``."""
        return self._decisions.snapshot()

    def get_stats(self) -> dict[str, int]:
        """Same as :attr:`stats` (sosw's name)."""
        return self.stats

    def reset_stats(self) -> None:
        """Zero every counter."""
        self._decisions.reset()

    # --- the decision ---
    def _incoming(self, info: InvocationInfo, event: Any, embedded: Any) -> ChainMetadata | None:
        if event is not None:
            if not isinstance(event, Mapping):
                raise TypeError(f"event must be a dict, got {type(event).__name__}")
            return metadata_of(event)
        if info.request_id:
            known, metadata = recall(info.request_id)
            if known:
                return metadata
        if embedded is not None:
            return parse_metadata(embedded)
        return None

    def _decide(self, call: SpawnCall) -> SpawnResult:
        guards_started = time.monotonic()
        refusal = self._check_guards(call)
        guard_ms = (time.monotonic() - guards_started) * 1000.0
        if refusal is not None:
            return self._decisions.record(refusal, call.started, guard_ms)
        deadline = self._deadline(call.info)
        if self.config.dry_run:
            outcome = self._invoke(call, "DryRun", deadline)
            dry = call.result(
                Reason.DRY_RUN,
                request_id=outcome.request_id,
                offloaded=call.encoded.offloaded,
                payload_key=call.encoded.key,
                detail="dry_run: Lambda checked the Invoke, no sibling was started",
            )
            return self._decisions.record(dry, call.started, guard_ms)
        return self._decisions.record(self._spawn(call, deadline), call.started, guard_ms)

    def _verdict(self, call: SpawnCall, name: str, verdict: Verdict) -> SpawnResult | None:
        """Record ``verdict`` under ``name``: ``None`` when the spawn may go on, else the refusal."""
        call.guards[name] = verdict.info
        if verdict.allowed:
            if "error" in verdict.info:
                self._decisions.count("guard_error_allowed")
            return None
        assert verdict.reason is not None
        return call.result(verdict.reason, detail=verdict.detail)

    def _check_guards(self, call: SpawnCall) -> SpawnResult | None:
        """Generation, kill switch, an earlier spawn of the step, rules, concurrency: the first
        that stops the spawn (a refusal, or the first spawn's result) is returned."""
        checks = [
            ("generation", lambda: self.guards.check_generation(call.child.generation)),
            ("kill_switch", lambda: self.guards.check_kill_switch(call.info)),
        ]
        for name, check in checks:
            stop = self._verdict(call, name, check())
            if stop is not None:
                return stop
        if not self.config.dry_run:
            try:
                first = self.ledger.peek(call.key)
            except StoreUnavailable as exc:
                first = None
                stop = self._verdict(call, "ledger", self.guards.on_error("ledger", exc))
                if stop is not None:
                    return stop
            if first is not None:
                return duplicate_of(first, call.guards)
        if call.forced:
            skipped = ("eventbridge", "concurrency", "account_headroom")
            call.guards.update({name: {"skipped": "force"} for name in skipped})
            return None
        for name, check in (
            ("eventbridge", lambda: self.guards.check_rules(call.info)),
            ("concurrency", lambda: self.guards.check_concurrency(call.info)),
            ("account_headroom", lambda: self.guards.check_account_headroom(call.info)),
        ):
            stop = self._verdict(call, name, check())
            if stop is not None:
                return stop
        return None

    def _spawn(self, call: SpawnCall, deadline: float | None) -> SpawnResult:
        """Claim the step, invoke, record: exactly one sibling per chain step."""
        claim = None
        try:
            claim = self.ledger.claim(call.key, call.info.request_id, deadline)
        except StoreUnavailable as exc:
            refusal = self._verdict(call, "ledger", self.guards.on_error("ledger", exc))
            if refusal is not None:
                return refusal
        if claim is not None and claim.status is ClaimStatus.DONE and claim.result is not None:
            return duplicate_of(claim.result, call.guards)
        if claim is not None and claim.status is ClaimStatus.BUSY:
            detail = f"another execution ({claim.owner}) is spawning this chain step"
            return call.result(Reason.DUPLICATE, duplicate=True, detail=detail)
        try:
            outcome = self._invoke(call, "Event", deadline)
        except BaseException:
            self.ledger.release(call.key)
            raise
        spawned = call.result(
            Reason.SPAWNED,
            request_id=outcome.request_id,
            offloaded=call.encoded.offloaded,
            payload_key=call.encoded.key,
        )
        try:
            token = claim.token if claim else None
            self.ledger.complete(call.key, call.info.request_id, token, spawned.to_dict())
        except StoreUnavailable as exc:
            # The sibling exists; only a retry of this execution could now spawn it again.
            log.warning("spawned, but the spawn record of %s was not saved: %s", call.key, exc)
        return spawned

    def _invoke(self, call: SpawnCall, invocation_type: str, deadline: float | None) -> InvokeOutcome:
        """Offload (for a real spawn) and Invoke; a failure is counted, logged and raised."""
        invoker = Invoker(
            self._clients.get("lambda"),
            max_attempts=self.config.invoke_max_attempts,
            backoff_seconds=self.config.invoke_backoff_seconds,
            max_backoff_seconds=self.config.invoke_backoff_max_seconds,
        )
        encoded = call.encoded
        try:
            if invocation_type == "Event" and encoded.offloaded:
                upload(encoded, self._clients.get("s3"), call.info.function_name)
            return invoker.invoke(
                call.info.function_arn, encoded.body, invocation_type=invocation_type, deadline=deadline
            )
        except SpawnFailed as exc:
            self._decisions.record(call.result(Reason.FAILED, detail=str(exc)), call.started)
            raise

    def _deadline(self, info: InvocationInfo) -> float | None:
        remaining = remaining_seconds(info)
        if remaining is None:
            return None
        # Short executions keep back a quarter of what is left, so Invoke retries still fit.
        margin = min(_DEADLINE_MARGIN_S, remaining / 4)
        return time.monotonic() + max(remaining - margin, 0.0)

    def _await_winner(self, running: Future[SpawnResult], call: SpawnCall) -> SpawnResult:
        """Another thread of this process is spawning the same step: share its result."""
        try:
            first = running.result(timeout=self.config.lease_wait_seconds)
        except FutureTimeout:
            busy = call.result(
                Reason.DUPLICATE,
                duplicate=True,
                detail="another thread is still spawning this chain step",
            )
            return self._decisions.record(busy, call.started)
        if first.spawned:
            first = replace(
                first,
                reason=Reason.DUPLICATE,
                duplicate=True,
                detail="another thread spawned this chain step; returning its result",
            )
        return self._decisions.record(first, call.started)
