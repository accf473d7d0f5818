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
   then account headroom (``min_account_headroom``): even with ``force=True``;
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
import uuid
from collections.abc import Mapping
from typing import Any

from estimator import ConcurrencyEstimator
from estimator.aws import Clients
from estimator.clock import SYSTEM_CLOCK, Clock
from estimator.deadline import calls_within
from estimator.exceptions import AccountUnknown, LookupFailed
from estimator.identity import Home, check_home, home_of
from estimator.memory_store import MemoryStore
from estimator.shared_cache import TwoTierCache
from estimator.store import DynamoStore, Store
from siblings.chain_log import ChainLog
from siblings.config import SiblingsConfig
from siblings.context import InvocationInfo, read_context, spawn_deadline
from siblings.decisions import DecisionLog
from siblings.defer import Deferrer, RelayFailed, StepRelayed, relay_call, relay_of
from siblings.emf import make_emitter
from siblings.errors import DuplicateSibling, SiblingsError, StoreUnavailable
from siblings.guards import Guards, Verdict
from siblings.inbound import load_payload
from siblings.killswitch import KillSwitch
from siblings.ledger import SpawnLedger
from siblings.metadata import (
    ChainMetadata,
    root_metadata,
)
from siblings.payload import EMPTY_EVENT, build_event, has_pointer, normalize_payload
from siblings.position import chain_position
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
_OTHER_KWARGS = ("session", "estimator", "store", "cache", "config", "metrics", "clock")
# Invoker retries with its own backoff and deadline: no hidden SDK retries under it.
_CLIENT_RETRIES = {"lambda": {"mode": "standard", "total_max_attempts": 1}}


class SiblingsManager:
    """Spawns asynchronous copies of the running Lambda function, guarded against loops.

    ``custom_config`` holds :class:`~siblings.config.SiblingsConfig` fields (unknown keys are
    kept, as sosw's configs carry other components' keys); the ``SIBLINGS_*`` environment
    gives the defaults. Keyword arguments inject collaborators, all optional: ``config`` (a
    ready :class:`SiblingsConfig`, then ``custom_config`` overrides it), ``session``
    (``boto3.Session``), ``lambda_client``, ``events_client``, ``s3_client``, ``store``
    (:class:`DynamoStore`), ``cache`` (:class:`TwoTierCache`), ``estimator``
    (:class:`ConcurrencyEstimator`), ``metrics`` (a Powertools ``Metrics``, see
    :mod:`siblings.emf`), ``clock`` (an :class:`~estimator.clock.Clock` every time-dependent
    part reads; default the given cache's, else the real one). Clients are created on first use.
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
        clock: Clock = kwargs.get("clock") or (cache.clock if cache is not None else SYSTEM_CLOCK)
        self.clock = clock
        store = self.store = _one_store(self.config, self._session, clock, kwargs.get("store"), cache)
        if cache is None:
            cache = TwoTierCache(self.config, store, clock)
        self.cache = cache
        self._estimator = estimator
        self._owns_estimator = False  # an injected estimator finds its account itself
        self._estimator_lock = threading.Lock()
        self.kill_switch = KillSwitch(store, clock)
        self.ledger = SpawnLedger(store, self.config, clock)
        self.guards = Guards(
            self.config,
            cache=self.cache,
            kill_switch=self.kill_switch,
            rule_lookup=lambda: RuleLookup(self._clients.get("events")),
            estimator=self._get_estimator,
            recursion=lambda: RecursionLookup(self.config, self.cache, self._clients),
            schedule_lookup=lambda: ScheduleLookup(self._clients.get("scheduler")),
        )
        self._decisions = DecisionLog(make_emitter(self.config, kwargs.get("metrics"), clock), clock)
        self.runs = RunClaims(store, self.config, clock)
        self._deferrer = Deferrer(self._clients, self.config, clock)
        chain_log = ChainLog(store, self.config, clock) if self.config.chain_log else None
        if chain_log is not None:
            self._decisions.observers.append(chain_log.observe)
        self.spawner = Spawner(
            self.config,
            self.guards,
            self.ledger,
            self._clients,
            self._decisions,
            clock,
            chain_log=chain_log,
            deferrer=self._deferrer,
        )
        self._last_function: str | None = None
        self._home: Home | None = None

    def _get_estimator(self) -> ConcurrencyEstimator:
        with self._estimator_lock:
            if self._estimator is None:
                self._estimator = ConcurrencyEstimator(
                    self.config,
                    session=self._session,
                    store=self.store,
                    cache=self.cache,
                    clock=self.clock,
                )
                self._owns_estimator = True
                if self._home is not None:  # same config and credentials: the same account
                    self._estimator.adopt_home(self._home)
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
        the kill switch, the generation limit or the account headroom guard. ``event`` is the
        event this execution received (or call :meth:`load_payload` with the context first) so
        the sibling continues its chain; without it the execution counts as a chain root.
        ``defer`` (default ``defer_when_busy``): when only a capacity guard refuses, schedule
        the spawn for later instead (:mod:`siblings.defer`); the result is then truthy with
        ``deferred=True``.

        Returns a :class:`SpawnResult`, truthy when a sibling exists for this step.
        Raises ``TypeError``/``ValueError`` for a bad context or payload,
        :class:`PayloadTooLarge` when too large with no ``payload_bucket``, and
        :class:`SpawnFailed` when the Invoke (or the S3 offload) failed after retries.
        """
        started = self.clock.monotonic()
        info = read_context(lambda_context)
        data, embedded = normalize_payload(payload)
        forced = _check_force(force)
        self._last_function = info.function_name
        deferrable = self.config.defer_when_busy if defer is None else _check_flag("defer", defer)
        # From here on every AWS call times out before the execution ends (estimator.deadline).
        deadline = spawn_deadline(info, self.clock)
        with calls_within(deadline, self.clock):
            allowed: dict[str, Any] = {}
            try:
                self._check_home(info)
            except AccountUnknown as exc:  # no check of the ARN can be made
                verdict = self.guards.on_error("account", exc)
                if not verdict.allowed:
                    return self._refuse_unknown("account", info, verdict, started, forced)
                self.spawner.decisions.count("guard_error_allowed")
                allowed = {"account": verdict.info}
                log.warning("spawning without checking the function's account: %s", exc)
            try:
                parent = chain_position(info, event, embedded, self.runs)
            except StoreUnavailable as exc:  # the position is unknown and on_guard_error refuses
                verdict = self.guards.on_error("generation", exc)
                return self._refuse_unknown("generation", info, verdict, started, forced)
            if parent is None:
                parent = root_metadata(info.request_id or uuid.uuid4().hex)
            child = parent.child(info.request_id, self.clock.now())
            encoded = build_event(data, child, function_name=info.function_name, config=self.config)
            call = SpawnCall(info, child, encoded, forced, started, defer=deferrable, deadline=deadline)
            call.guards.update(allowed)
            return self.spawner.spawn(call)

    def _check_home(self, info: InvocationInfo) -> None:
        """``ValueError`` (:class:`~estimator.identity.ForeignFunction`) when the context's
        function is in another account or Region than this manager's clients: they would act
        on another function's metrics, rules and items. :class:`AccountUnknown` when STS cannot
        say the account (once per process; ``account_id`` needs no call)."""
        if self._home is None:  # the account of a container's credentials does not change
            self._home = home_of(self.config, self._session, info.ref, self.clock)
            with self._estimator_lock:
                if self._estimator is not None and self._owns_estimator:
                    self._estimator.adopt_home(self._home)
        check_home(info.ref, self._home)

    def _refuse_unknown(
        self, guard: str, info: InvocationInfo, verdict: Verdict, started: float, forced: bool
    ) -> SpawnResult:
        """The refusal ``verdict`` of a ``guard`` that cannot be applied: the chain position
        (``generation``) or the clients' account (``account``) is unknown. The step is reported
        as a new chain's first: which chain it belongs to is what could not be told."""
        step = root_metadata(info.request_id or uuid.uuid4().hex).child(
            info.request_id, self.clock.now()
        )
        call = SpawnCall(info, step, EMPTY_EVENT, forced, started)
        call.guards[guard] = verdict.info
        refused = call.result(Reason.GUARD_ERROR, detail=verdict.detail)
        return self.spawner.decisions.record(refused, started)

    def refuse_duplicate(self, lambda_context: Any, duplicate: DuplicateSibling) -> SpawnResult:
        """The result of a spawn asked for by an execution that must do no work (another one
        runs its chain step): nothing is invoked; counted and logged like any decision."""
        info = read_context(lambda_context)
        step = ChainMetadata(duplicate.chain_id, duplicate.generation)
        child = step.child(info.request_id, self.clock.now())
        call = SpawnCall(info, child, EMPTY_EVENT, False, self.clock.monotonic())
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
        try:
            self._check_home(info)
        except AccountUnknown as exc:
            raise LookupFailed("account", exc) from exc
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

    def _relay(self, relay: tuple[dict[str, Any], int, bool], lambda_context: Any) -> SiblingsError:
        """Spawn the step a deferral scheduled, through every guard again: the
        :class:`StepRelayed` to raise, or :class:`RelayFailed` when a guard could not be read
        (a :class:`SpawnFailed` propagates): the execution fails and Lambda retries it."""
        event, deferrals, forced = relay
        info = read_context(lambda_context)
        self._check_home(info)  # AccountUnknown fails the execution: Lambda retries the relay
        clock = self._deferrer.clock
        call = relay_call(info, event, deferrals, clock.now(), clock.monotonic(), forced)
        result = self.spawner.spawn(call)
        log.info("relayed deferral %d of %s: %s", deferrals, call.key, result.reason)
        if result.reason is Reason.GUARD_ERROR:
            return RelayFailed(call.child, result)
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



def _one_store(
    config: SiblingsConfig, session: Any, clock: Clock, store: Store | None, cache: TwoTierCache | None
) -> Store:
    """One store, hence one breaker, for the cache, the kill switch and the spawn records: the
    one given, else the cache's when it is the table (or this manager keeps no table either),
    else the table, or without one a store of this process (switch, records and claims hold
    here only). A cache kept in process never takes the kill switch out of the table."""
    if store is not None:
        return store
    if cache is not None and (getattr(cache.store, "shared", True) or not config.use_dynamodb):
        return cache.store
    if config.use_dynamodb:
        return DynamoStore(config, session=session, clock=clock)
    return MemoryStore()


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
