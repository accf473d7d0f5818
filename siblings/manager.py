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
5. EventBridge rule state and 6. concurrency: skipped with ``force=True``;
7. claim the step, offload the payload to S3 if needed, async Invoke with retries, record.

An Invoke that still fails raises :class:`SpawnFailed`. Every decision is counted in
:attr:`SiblingsManager.stats` and logged as one JSON line on the ``siblings`` logger.

Idempotency is keyed by chain and generation (:mod:`siblings.ledger`); a context without
``aws_request_id`` (a hand-made one) starts a new random chain each call, so it gets none.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Any

from botocore.config import Config as BotoConfig

from estimator.config import Config
from estimator.estimator import ConcurrencyEstimator
from estimator.exceptions import SpawnFailed, StoreUnavailable
from estimator.shared_cache import TwoTierCache
from estimator.store import DynamoStore
from siblings import result as reasons
from siblings.breaker import StoreBreaker
from siblings.context import InvocationInfo, read_context, remaining_seconds
from siblings.guards import Guards, Verdict
from siblings.invoke import InvokeOutcome, Invoker
from siblings.killswitch import KillSwitch
from siblings.ledger import SpawnLedger, spawn_key
from siblings.metadata import (
    ChainMetadata,
    metadata_of,
    parse_metadata,
    recall,
    root_metadata,
)
from siblings.payload import (
    EncodedEvent,
    build_event,
    has_pointer,
    load_payload,
    normalize_payload,
    upload,
)
from siblings.result import SpawnResult
from siblings.rules import RuleLookup

log = logging.getLogger("siblings")

_CLIENT_KWARGS = ("lambda_client", "events_client", "s3_client")
_OTHER_KWARGS = ("session", "estimator", "store", "cache", "config")
# Kept back from the execution's remaining time so a retried Invoke cannot outlive it.
_DEADLINE_MARGIN_S = 1.0


class SiblingsManager:
    """Spawns asynchronous copies of the running Lambda function, guarded against loops.

    ``custom_config`` holds :class:`~estimator.config.Config` fields (unknown keys are kept,
    as sosw's configs carry other components' keys); the ``SIBLINGS_*`` environment gives the
    defaults. Keyword arguments inject collaborators, all optional: ``config`` (a ready
    :class:`Config`, then ``custom_config`` overrides it), ``session`` (``boto3.Session``),
    ``lambda_client``, ``events_client``, ``s3_client``, ``store`` (:class:`DynamoStore`),
    ``cache`` (:class:`TwoTierCache`), ``estimator`` (:class:`ConcurrencyEstimator`).
    Clients are created on first use.
    """

    def __init__(self, custom_config: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        unknown = set(kwargs) - set(_CLIENT_KWARGS) - set(_OTHER_KWARGS)
        if unknown:
            raise TypeError(f"SiblingsManager got unexpected keyword arguments: {sorted(unknown)}")
        if custom_config is not None and not isinstance(custom_config, Mapping):
            raise TypeError(f"custom_config must be a dict, got {type(custom_config).__name__}")
        overrides = dict(custom_config or {})
        base: Config | None = kwargs.get("config")
        if base is not None:
            self.config = Config.from_env(**{**_fields_of(base), **overrides})
        else:
            self.config = Config.from_env(**overrides)
        self._session = kwargs.get("session")
        self._clients: dict[str, Any] = {
            name: kwargs[name] for name in _CLIENT_KWARGS if kwargs.get(name) is not None
        }
        self._clients_lock = threading.Lock()

        estimator: ConcurrencyEstimator | None = kwargs.get("estimator")
        cache: TwoTierCache | None = kwargs.get("cache")
        if cache is None and estimator is not None:
            cache = estimator.cache  # one tier-1 and one table for estimates and rule state
        store: DynamoStore | None = kwargs.get("store")
        if store is None and cache is not None:
            store = cache.store
        if store is None and self.config.use_dynamodb:
            store = DynamoStore(self.config, session=self._session)
        self.store = store
        self.cache = cache if cache is not None else TwoTierCache(self.config, store)
        self._estimator = estimator
        self._estimator_lock = threading.Lock()

        # Kill switch and spawn records share one breaker: after a DynamoDB failure the rest
        # of this spawn (and the next ones, for error_backoff_seconds) skip the table at once.
        items = (
            StoreBreaker(store, self.config.error_backoff_seconds) if store is not None else None
        )
        self.kill_switch = KillSwitch(items) if items is not None else None
        self.ledger = SpawnLedger(items, self.config)
        self.guards = Guards(
            self.config,
            cache=self.cache,
            kill_switch=self.kill_switch,
            rule_lookup=lambda: RuleLookup(self._client("events")),
            estimator=self._get_estimator,
        )
        self._stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._inflight: dict[str, Future[SpawnResult]] = {}
        self._inflight_lock = threading.Lock()
        self._last_function: str | None = None

    # --- collaborators, built on first use ---
    def _client(self, service: str) -> Any:
        name = f"{service}_client"
        with self._clients_lock:
            client = self._clients.get(name)
            if client is None:
                import boto3

                session: Any = self._session or boto3.Session()
                if service == "lambda":
                    # Invoker retries with its own backoff and deadline: no hidden retries.
                    boto_config = BotoConfig(retries={"mode": "standard", "total_max_attempts": 1})
                else:
                    boto_config = BotoConfig(retries={"mode": "standard", "max_attempts": 3})
                client = session.client(
                    service,
                    endpoint_url=self.config.endpoint_url,
                    region_name=self.config.region_name or session.region_name,
                    config=boto_config,
                )
                self._clients[name] = client
            return client

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
        forced = bool(force)
        parent = self._incoming(info, event, embedded)
        self._last_function = info.function_name
        if parent is None:
            parent = root_metadata(info.request_id or uuid.uuid4().hex)
        child = parent.child(info.request_id)
        encoded = build_event(data, child, function_name=info.function_name, config=self.config)
        key = spawn_key(child.chain_id, child.generation)

        with self._inflight_lock:
            running = self._inflight.get(key)
            if running is None:
                future: Future[SpawnResult] = Future()
                self._inflight[key] = future
        if running is not None:
            return self._await_winner(running, info, child, forced, started)
        try:
            outcome = self._decide(info, child, key, encoded, forced, started)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(outcome)
            return outcome
        finally:
            with self._inflight_lock:
                self._inflight.pop(key, None)

    def any_events_rules_enabled(self, lambda_context: Any) -> bool:
        """Whether an EventBridge rule targeting the running function (under the ARN it was
        invoked with, or unqualified) is enabled. Answered from the shared cache; raises
        :class:`~estimator.exceptions.LookupFailed` when EventBridge fails with nothing cached.
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

        Raises :class:`~estimator.exceptions.EstimateUnavailable` when no value exists.
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
        s3 = self._client("s3") if has_pointer(event) else None
        return load_payload(event, lambda_context, s3_client=s3, session=self._session)

    # --- stats (sosw components expose get_stats / reset_stats) ---
    @property
    def stats(self) -> dict[str, int]:
        """Counters: ``spawned``, ``refused``, ``refused_<reason>``, ``duplicate``,
        ``offloaded``, ``failed``, ``dry_run``, ``guard_error_allowed``."""
        with self._stats_lock:
            return dict(self._stats)

    def get_stats(self) -> dict[str, int]:
        """Same as :attr:`stats` (sosw's name)."""
        return self.stats

    def reset_stats(self) -> None:
        """Zero every counter."""
        with self._stats_lock:
            self._stats.clear()

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

    def _decide(
        self,
        info: InvocationInfo,
        child: ChainMetadata,
        key: str,
        encoded: EncodedEvent,
        forced: bool,
        started: float,
    ) -> SpawnResult:
        base = SpawnResult(
            spawned=False,
            reason="",
            function_arn=info.function_arn,
            chain_id=child.chain_id,
            generation=child.generation,
            parent_request_id=info.request_id,
            forced=forced,
        )
        guards: dict[str, Any] = {}

        def refused(verdict: Verdict) -> SpawnResult:
            """The refusal result of ``verdict``, counted and logged."""
            return self._finish(
                replace(base, reason=verdict.reason, detail=verdict.detail, guards=guards),
                started,
            )

        def check(name: str, verdict: Verdict) -> bool:
            """Record ``verdict`` under ``name``; True when the spawn may go on."""
            guards[name] = verdict.info
            if verdict.allowed and "error" in verdict.info:
                self._count("guard_error_allowed")
            return verdict.allowed

        verdict = self.guards.check_generation(child.generation)
        if not check("generation", verdict):
            return refused(verdict)
        verdict = self.guards.check_kill_switch(info)
        if not check("kill_switch", verdict):
            return refused(verdict)
        if not self.config.dry_run:
            try:
                first = self.ledger.peek(key)
            except StoreUnavailable as exc:
                first = None
                verdict = self.guards.on_error("ledger", exc)
                if not check("ledger", verdict):
                    return refused(verdict)
            if first is not None:
                return self._finish(self._duplicate(first, guards), started)
        if forced:
            guards["eventbridge"] = guards["concurrency"] = {"skipped": "force"}
        else:
            verdict = self.guards.check_rules(info)
            if not check("eventbridge", verdict):
                return refused(verdict)
            verdict = self.guards.check_concurrency(info)
            if not check("concurrency", verdict):
                return refused(verdict)

        deadline = self._deadline(info)
        if self.config.dry_run:
            outcome = self._invoke(info, encoded, "DryRun", deadline, base, guards, started)
            return self._finish(
                replace(
                    base,
                    reason=reasons.DRY_RUN,
                    request_id=outcome.request_id,
                    offloaded=encoded.offloaded,
                    payload_key=encoded.key,
                    detail="dry_run: Lambda checked the Invoke, no sibling was started",
                    guards=guards,
                ),
                started,
            )

        claim = None
        try:
            claim = self.ledger.claim(key, info.request_id, deadline)
        except StoreUnavailable as exc:
            verdict = self.guards.on_error("ledger", exc)
            if not check("ledger", verdict):
                return refused(verdict)
        if claim is not None and claim.status == "done" and claim.result is not None:
            return self._finish(self._duplicate(claim.result, guards), started)
        if claim is not None and claim.status == "busy":
            detail = f"another execution ({claim.owner}) is spawning this chain step"
            return self._finish(
                replace(
                    base, reason=reasons.DUPLICATE, duplicate=True, detail=detail, guards=guards
                ),
                started,
            )
        try:
            outcome = self._invoke(info, encoded, "Event", deadline, base, guards, started)
        except BaseException:
            self.ledger.release(key)
            raise
        spawned = replace(
            base,
            spawned=True,
            reason=reasons.SPAWNED,
            request_id=outcome.request_id,
            offloaded=encoded.offloaded,
            payload_key=encoded.key,
            guards=guards,
        )
        try:
            self.ledger.complete(
                key, info.request_id, claim.token if claim else None, spawned.to_dict()
            )
        except StoreUnavailable as exc:
            # The sibling exists; only a retry of this execution could now spawn it again.
            log.warning("spawned, but the spawn record of %s was not saved: %s", key, exc)
        return self._finish(spawned, started)

    def _invoke(
        self,
        info: InvocationInfo,
        encoded: EncodedEvent,
        invocation_type: str,
        deadline: float | None,
        base: SpawnResult,
        guards: dict[str, Any],
        started: float,
    ) -> InvokeOutcome:
        """Offload (for a real spawn) and Invoke; a failure is counted, logged and raised."""
        invoker = Invoker(
            self._client("lambda"),
            max_attempts=self.config.invoke_max_attempts,
            backoff_seconds=self.config.invoke_backoff_seconds,
            max_backoff_seconds=self.config.invoke_backoff_max_seconds,
        )
        try:
            if invocation_type == "Event":
                upload(
                    encoded, self._client("s3") if encoded.offloaded else None, info.function_name
                )
            return invoker.invoke(
                info.function_arn, encoded.body, invocation_type=invocation_type, deadline=deadline
            )
        except SpawnFailed as exc:
            self._count("failed")
            failed = replace(base, reason="failed", detail=str(exc), guards=guards)
            self._log("failed", failed, started, level=logging.ERROR)
            raise

    def _deadline(self, info: InvocationInfo) -> float | None:
        remaining = remaining_seconds(info)
        if remaining is None:
            return None
        # Short executions keep back a quarter of what is left, so Invoke retries still fit.
        margin = min(_DEADLINE_MARGIN_S, remaining / 4)
        return time.monotonic() + max(remaining - margin, 0.0)

    def _duplicate(self, first: dict[str, Any], guards: dict[str, Any]) -> SpawnResult:
        try:
            original = SpawnResult(**first)
        except TypeError:
            original = SpawnResult(
                spawned=True, reason=reasons.SPAWNED, function_arn="", chain_id="", generation=0
            )
        return replace(
            original,
            spawned=True,
            reason=reasons.DUPLICATE,
            duplicate=True,
            detail="this chain step was already spawned; returning the first result",
            guards=guards,
        )

    def _await_winner(
        self,
        running: Future[SpawnResult],
        info: InvocationInfo,
        child: ChainMetadata,
        forced: bool,
        started: float,
    ) -> SpawnResult:
        """Another thread of this process is spawning the same step: share its result."""
        try:
            first = running.result(timeout=self.config.lease_wait_seconds)
        except FutureTimeout:
            busy = SpawnResult(
                spawned=False,
                reason=reasons.DUPLICATE,
                function_arn=info.function_arn,
                chain_id=child.chain_id,
                generation=child.generation,
                parent_request_id=info.request_id,
                forced=forced,
                duplicate=True,
                detail="another thread is still spawning this chain step",
            )
            return self._finish(busy, started)
        if first.spawned:
            return self._finish(
                replace(
                    first,
                    reason=reasons.DUPLICATE,
                    duplicate=True,
                    detail="another thread spawned this chain step; returning its result",
                ),
                started,
            )
        return self._finish(first, started)

    def _finish(self, outcome: SpawnResult, started: float) -> SpawnResult:
        if outcome.reason == reasons.SPAWNED:
            self._count("spawned")
            if outcome.offloaded:
                self._count("offloaded")
            decision = "spawned"
        elif outcome.reason == reasons.DUPLICATE:
            self._count("duplicate")
            decision = "duplicate"
        elif outcome.reason == reasons.DRY_RUN:
            self._count("dry_run")
            decision = "dry_run"
        else:
            self._count("refused", f"refused_{outcome.reason}")
            decision = "refused"
        self._log(decision, outcome, started)
        return outcome

    def _count(self, *names: str) -> None:
        with self._stats_lock:
            for name in names:
                self._stats[name] += 1

    def _log(
        self, decision: str, outcome: SpawnResult, started: float, level: int = logging.INFO
    ) -> None:
        if not log.isEnabledFor(level):
            return
        line = {
            "message": "siblings.spawn",
            "decision": decision,
            "reason": outcome.reason,
            "function_arn": outcome.function_arn,
            "chain_id": outcome.chain_id,
            "generation": outcome.generation,
            "parent_request_id": outcome.parent_request_id,
            "request_id": outcome.request_id,
            "forced": outcome.forced,
            "offloaded": outcome.offloaded,
            "duplicate": outcome.duplicate,
            "detail": outcome.detail,
            "guards": outcome.guards,
            "elapsed_ms": round((time.monotonic() - started) * 1000.0, 1),
        }
        log.log(level, json.dumps(line, default=str, sort_keys=True))


def _fields_of(config: Config) -> dict[str, Any]:
    from dataclasses import fields

    values = {f.name: getattr(config, f.name) for f in fields(config) if f.name != "extra"}
    values["extra"] = dict(config.extra)
    return values
