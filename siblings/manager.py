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
from typing import Any

from estimator import ConcurrencyEstimator
from estimator.aws import Clients
from estimator.shared_cache import TwoTierCache
from estimator.store import DynamoStore
from siblings.chain_log import ChainLog
from siblings.config import GuardErrorPolicy, SiblingsConfig
from siblings.context import InvocationInfo, read_context
from siblings.decisions import DecisionLog
from siblings.defer import Deferrer, StepRelayed, relay_call, relay_of
from siblings.emf import make_emitter
from siblings.errors import DuplicateSibling, StoreUnavailable
from siblings.guards import Guards
from siblings.inbound import load_payload
from siblings.killswitch import KillSwitch
from siblings.ledger import SpawnLedger
from siblings.metadata import (
    ChainMetadata,
    metadata_of,
    parse_metadata,
    recall,
    remember,
    root_metadata,
)
from siblings.payload import EMPTY_EVENT, build_event, has_pointer, normalize_payload
from siblings.recursion import RecursionLookup
from siblings.result import Reason, SpawnResult
from siblings.rules import RuleLookup
from siblings.runs import RunClaims
from siblings.schedules import ScheduleLookup
from siblings.spawn_call import SpawnCall
from siblings.spawner import Spawner

log = logging.getLogger(__name__)

_CLIENT_KWARGS = {
    "lambda_client": "lambda",
    "events_client": "events",
    "s3_client": "s3",
    "scheduler_client": "scheduler",
}
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
        if store is None:
            _warn_no_table()
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
            recursion=lambda: RecursionLookup(self.config, self.cache, self._clients),
            schedule_lookup=lambda: ScheduleLookup(self._clients.get("scheduler")),
        )
        self._decisions = DecisionLog(make_emitter(self.config, kwargs.get("metrics")))
        self.runs = RunClaims(store, self.config)
        self._deferrer = Deferrer(self._clients, self.config)
        chain_log = ChainLog(store, self.config) if store is not None and self.config.chain_log else None
        if chain_log is not None:
            self._decisions.observers.append(chain_log.observe)
        self.spawner = Spawner(
            self.config,
            self.guards,
            self.ledger,
            self._clients,
            self._decisions,
            chain_log,
            self._deferrer,
        )
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
        defer: bool | None = None,
    ) -> SpawnResult:
        """Asynchronously invoke a copy of the running function with ``payload``.

        ``lambda_context`` is the handler's context: the sibling is invoked through its
        ``invoked_function_arn`` (alias or version kept) with ``InvocationType='Event'``
        (``'DryRun'`` when ``dry_run`` is configured). ``payload`` is a dict, a JSON-object
        string or ``None``. ``force=True`` skips the EventBridge and concurrency guards, not
        the kill switch or generation limit. ``event`` is the event this execution received
        (or call :meth:`load_payload` with the context first) so the sibling continues its
        chain; without it the execution counts as a chain root. ``defer`` (default
        ``defer_when_busy``): when only a capacity guard refuses, schedule the spawn for later
        instead (:mod:`siblings.defer`); the result is then truthy with ``deferred=True``.

        Returns a :class:`SpawnResult`, truthy when a sibling exists for this step.
        Raises ``TypeError``/``ValueError`` for a bad context or payload,
        :class:`PayloadTooLarge` when too large with no ``payload_bucket``, and
        :class:`SpawnFailed` when the Invoke (or the S3 offload) failed after retries.
        """
        started = time.monotonic()
        info = read_context(lambda_context)
        data, embedded = normalize_payload(payload)
        forced = _check_force(force)
        self._last_function = info.function_name
        try:
            parent = self._incoming(info, event, embedded)
        except StoreUnavailable as exc:  # the position is unknown and on_guard_error refuses
            return self._refuse_unknown_position(info, exc, forced, started)
        if parent is None:
            parent = root_metadata(info.request_id or uuid.uuid4().hex)
        child = parent.child(info.request_id)
        encoded = build_event(data, child, function_name=info.function_name, config=self.config)
        deferrable = self.config.defer_when_busy if defer is None else _check_flag("defer", defer)
        return self.spawner.spawn(SpawnCall(info, child, encoded, forced, started, defer=deferrable))

    def _refuse_unknown_position(
        self, info: InvocationInfo, error: StoreUnavailable, forced: bool, started: float
    ) -> SpawnResult:
        """A refusal when the generation limit cannot be applied: the chain position is unknown."""
        step = root_metadata(info.request_id or uuid.uuid4().hex).child(info.request_id)
        call = SpawnCall(info, step, EMPTY_EVENT, forced, started)
        verdict = self.guards.on_error("generation", error)
        call.guards["generation"] = verdict.info
        refused = call.result(Reason.GUARD_ERROR, detail=verdict.detail)
        return self.spawner.decisions.record(refused, started)

    def refuse_duplicate(self, lambda_context: Any, duplicate: DuplicateSibling) -> SpawnResult:
        """The result of a spawn asked for by an execution that must do no work (another one
        runs its chain step): nothing is invoked; counted and logged like any decision."""
        info = read_context(lambda_context)
        step = ChainMetadata(duplicate.chain_id, duplicate.generation)
        call = SpawnCall(info, step.child(info.request_id), EMPTY_EVENT, False, time.monotonic())
        return self.spawner.decisions.record(
            call.result(Reason.DUPLICATE, duplicate=True, detail=str(duplicate)), call.started
        )

    def any_events_rules_enabled(self, lambda_context: Any) -> bool:
        """Whether the EventBridge guard lets this function spawn: a rule targeting exactly the
        ARN it was invoked with is enabled, or ``auto_spawning`` is on (sosw's answer too; then
        nothing is looked up). Answered from the shared cache; raises
        :class:`~siblings.LookupFailed` when EventBridge fails with nothing cached.
        """
        info = read_context(lambda_context)
        self._last_function = info.function_name
        if self.config.auto_spawning:
            return True
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
        relay = relay_of(event)
        if relay is not None:  # a deferral's schedule fired: decide that spawn, do no work
            raise self._relay(relay, lambda_context)
        s3 = self._clients.get("s3") if has_pointer(event) else None
        return load_payload(
            event,
            lambda_context,
            s3_client=s3,
            session=self._session,
            config=self.config,
            claims=self.runs,
        )

    def _relay(self, relay: tuple[dict[str, Any], int], lambda_context: Any) -> StepRelayed:
        """Spawn the step a deferral scheduled, through every guard again."""
        event, deferrals = relay
        info = read_context(lambda_context)
        clock = self._deferrer.clock
        call = relay_call(info, event, deferrals, clock.now(), clock.monotonic())
        result = self.spawner.spawn(call)
        log.info("relayed deferral %d of %s: %s", deferrals, call.key, result.reason)
        return StepRelayed(call.child, info.request_id, result)

    # --- stats (sosw components expose get_stats / reset_stats) ---
    @property
    def stats(self) -> dict[str, int]:
        """Counters: ``spawned``, ``refused``, ``refused_<reason>``, ``duplicate``,
        ``offloaded``, ``failed``, ``dry_run``, ``guard_error_allowed``."""
        return self._decisions.snapshot()

    def get_stats(self, recursive: bool = True) -> dict[str, int]:
        """Same as :attr:`stats` (sosw's name). ``recursive`` is accepted for sosw's callers;
        the manager has no sub-components whose counters could be merged."""
        return self.stats

    def reset_stats(self, recursive: bool = True) -> None:
        """Zero every counter (``recursive`` as in :meth:`get_stats`)."""
        self._decisions.reset()

    # --- the decision ---
    def _incoming(self, info: InvocationInfo, event: Any, embedded: Any) -> ChainMetadata | None:
        """Where this execution sits in its chain, from the first source that knows."""
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
        if info.request_id:
            return self._recorded_position(info.request_id)
        return None

    def _recorded_position(self, request_id: str) -> ChainMetadata | None:
        """The position the parent recorded under this execution's request id (a handler that
        never read its event); a miss starts a new chain, said once in the log."""
        try:
            metadata = self.runs.lookup(request_id)
        except StoreUnavailable as exc:
            if self.config.on_guard_error is not GuardErrorPolicy.ALLOW:
                raise  # refused: a new chain here would reset the generation count
            log.warning(
                "chain position of %s unknown (%s): a new chain (on_guard_error=allow)", request_id, exc
            )
            return None  # not remembered: the next spawn of this execution asks again
        if metadata is None:
            log.info("no chain position recorded for request %s: a new chain starts here", request_id)
        remember(request_id, metadata)  # asked once per execution
        return metadata


_warned_no_table = threading.Event()


def _warn_no_table() -> None:
    """Say once per process what running without the shared table gives up."""
    if not _warned_no_table.is_set():
        _warned_no_table.set()
        log.warning(
            "no shared table (use_dynamodb=false): no kill switch, and spawn records and step "
            "claims hold within this process only"
        )


def _check_force(force: Any) -> bool:
    """``force`` as a bool: a string such as ``"false"`` must not switch guards off."""
    return _check_flag("force", force)


def _check_flag(name: str, value: Any) -> bool:
    """``value`` as a bool (``0``/``1`` too); anything else is a ``TypeError``."""
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r:.40}")
