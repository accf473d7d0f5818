"""ConcurrencyEstimator: Little's law and the observed peak from one CloudWatch call, cached in
two shared tiers, beside the account's concurrency and the limits it is compared with."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

from cachetools import LRUCache

from estimator.account import AccountRefresher
from estimator.aws import Clients
from estimator.clock import SYSTEM_CLOCK, Clock
from estimator.config import Config
from estimator.estimate import ConcurrencySignal, Estimate, EstimateItem, to_estimate
from estimator.exceptions import AccountUnknown, EstimateUnavailable, LookupFailed
from estimator.identity import Home, check_home, home_of, in_home
from estimator.keys import estimate_key
from estimator.limits import AccountLimit, LimitLookup, ReservedConcurrency
from estimator.memory import Cached
from estimator.memory_store import MemoryStore
from estimator.metrics import FUNCTIONS_PER_CALL, aligned_window, fetch_metrics
from estimator.shared_cache import TwoTierCache, Validate
from estimator.store import DynamoStore, Store
from estimator.validation import FunctionRef, check_minutes_back, parse_function

# ConcurrencySignal and Estimate are this module's API too (estimator.estimate is their home).
__all__ = ["ConcurrencyEstimator", "ConcurrencySignal", "DEFAULT_ESTIMATORS_MAX", "Estimate",
           "ensure_table", "estimate_concurrency"]

ORIGIN = "cloudwatch"
"""``Estimate.source`` of a value fetched by this call."""


class ConcurrencyEstimator:
    """Estimates Lambda concurrency from CloudWatch with a fleet-wide shared cache.

    One GetMetricData call fetches Invocations (Sum), Duration (Average) and
    ConcurrentExecutions (Maximum) of each function, and ConcurrentExecutions of the account;
    the result is cached in memory and in the shared DynamoDB table for
    ``config.cache_ttl_seconds``, and only one execution in the fleet refreshes it per window.
    :attr:`limits` looks up the limits to compare with (cached the same way, for
    ``config.limits_cache_ttl_seconds``).

    Clients are injected or built from ``session`` (a ``boto3.Session``) on first use.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        session: Any = None,
        cloudwatch_client: Any = None,
        lambda_client: Any = None,
        store: Store | None = None,
        cache: TwoTierCache | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ):
        self.config = config or Config.from_env()
        self._session = session
        self._clients = Clients(
            self.config, session, {"cloudwatch": cloudwatch_client, "lambda": lambda_client}
        )
        if cache is None:
            if not self.config.use_dynamodb:
                store = MemoryStore()  # tier 2 in this process: no table is asked
            elif store is None:
                store = DynamoStore(self.config, session=session, clock=clock)
            cache = TwoTierCache(self.config, store, clock)
        self.cache = cache
        self.clock = clock
        self._home: Home | None = None
        self.account = AccountRefresher(
            cache, self._fetch, estimate_key, self.config.cache_ttl_seconds, EstimateItem.valid
        )
        """The account-wide refresher: one GetMetricData per TTL for every function asking."""
        self.limits = LimitLookup(self.config, cache, self._clients)
        """The account's concurrency limit and functions' reserved concurrency, cached."""

    @property
    def cloudwatch(self) -> Any:
        """The CloudWatch client (created on first use)."""
        return self._clients.get("cloudwatch")

    def estimate(
        self,
        function_name: str,
        minutes_back: int | None = None,
        qualifier: str | None = None,
        *,
        use_cache: bool = True,
        max_wait: float | None = None,
    ) -> Estimate:
        """The approximate concurrent executions of ``function_name`` (a name or ARN).

        ``max_wait`` bounds the wait for another execution's refresh when nothing is cached
        (default ``lease_wait_seconds``). Raises :class:`EstimateUnavailable` when CloudWatch
        fails and no value, fresh or stale, is cached; ``ValueError``/``TypeError`` for bad
        arguments.
        """
        minutes = self._minutes(minutes_back)
        ref = self._ref(function_name, qualifier)
        if use_cache:
            hit = self.cache.memory.get(estimate_key(ref, minutes))
            if hit is not None:  # the hot path of a warm container
                estimate = to_estimate(ref, hit)
                self.cache.policy.observe_fleet(estimate.concurrency(ConcurrencySignal.MAX))
                return estimate
        return self._estimate_refs([ref], minutes, use_cache, max_wait)[ref]

    def shared_entry(self, function_name: str) -> tuple[str, float, Validate] | None:
        """``(key, ttl, validate)`` of the shared item of ``function_name``'s default estimate
        when this process holds no fresh value of it, else ``None``: for a caller that reads
        several shared items in one request and hands them to :meth:`TwoTierCache.accept`."""
        key = estimate_key(self._ref(function_name), self.config.minutes_back)
        if self.cache.memory.get(key) is not None:
            return None
        return key, self.config.cache_ttl_seconds, EstimateItem.valid

    def estimate_many(
        self,
        function_names: Iterable[str],
        minutes_back: int | None = None,
        *,
        use_cache: bool = True,
    ) -> dict[str, Estimate]:
        """Estimates of several functions, keyed by the names given.

        The misses are fetched with one GetMetricData call per 166 functions (three queries
        each, plus the account's). Raises
        :class:`EstimateUnavailable` (for the first function without any value) if some
        function has none.
        """
        if isinstance(function_names, str):
            raise TypeError("function_names must be an iterable of names, not a single str")
        names = list(function_names)
        refs = {name: self._ref(name) for name in names}
        estimates = self._estimate_refs(list(refs.values()), self._minutes(minutes_back), use_cache)
        return {name: estimates[ref] for name, ref in refs.items()}

    def account_limit(self, *, max_wait: float | None = None) -> AccountLimit:
        """The account's concurrency limit (``GetAccountSettings``, cached); raises
        :class:`LookupFailed` when Lambda fails and nothing is cached, or when the account is
        unknown (STS failed: :class:`~estimator.exceptions.AccountUnknown` is its cause)."""
        try:
            home = self.home()
        except AccountUnknown as exc:
            raise LookupFailed("account limit", exc) from exc
        return self.limits.account_limit(home, max_wait=max_wait)

    def reserved_concurrency(
        self, function_name: str, *, max_wait: float | None = None
    ) -> ReservedConcurrency:
        """The function's reserved concurrency (``GetFunctionConcurrency``, cached); raises
        :class:`LookupFailed` when Lambda fails and nothing is cached."""
        return self.limits.reserved_concurrency(self._ref(function_name), max_wait=max_wait)

    def home(self) -> Home:
        """The account and Region the clients act in (:mod:`estimator.identity`: the account
        from ``account_id``, from :meth:`adopt_home`, else one STS call per process). Raises
        :class:`~estimator.exceptions.AccountUnknown` or ``NoRegion``."""
        home = self._home
        if home is None:  # the account of a container's credentials does not change
            home = self._home = home_of(self.config, self._session, clock=self.clock)
        return home

    def adopt_home(self, home: Home) -> None:
        """Take ``home`` as the clients' account and Region: what a caller with these clients
        learned from its own execution's context (the manager that built this estimator), so
        that no STS call is made. An ARN asked about is never trusted for it."""
        self._home = home

    def _ref(self, function_name: str, qualifier: str | None = None) -> FunctionRef:
        """``function_name`` (a name or ARN) in the clients' account and Region; an ARN of
        another one is a ``ValueError`` (:class:`~estimator.identity.ForeignFunction`)."""
        ref = parse_function(function_name, qualifier)
        try:
            home = self.home()
        except AccountUnknown as exc:
            raise EstimateUnavailable(ref.resource, exc) from exc
        check_home(ref, home)
        return in_home(ref, home)

    def _minutes(self, minutes_back: int | None) -> int:
        return check_minutes_back(self.config.minutes_back if minutes_back is None else minutes_back)

    def _estimate_refs(
        self,
        refs: list[FunctionRef],
        minutes_back: int,
        use_cache: bool,
        max_wait: float | None = None,
    ) -> dict[FunctionRef, Estimate]:
        unique = list(dict.fromkeys(refs))
        keys = {estimate_key(ref, minutes_back): ref for ref in unique}

        def load_many(wanted: list[str]) -> Mapping[str, dict[str, Any]]:
            # The account's functions are refreshed together (see estimator.account).
            return self.account.load({key: keys[key] for key in wanted}, minutes_back)

        if not use_cache:
            try:
                values = self._fetch(list(keys.values()), minutes_back)
            except Exception as exc:
                raise EstimateUnavailable(unique[0].resource, exc) from exc
            now = self.clock.now()
            outcome: dict[str, Cached | LookupFailed] = {
                key: Cached(value, ORIGIN, now, now) for key, value in values.items()
            }
        else:
            outcome = self.cache.get_many(
                keys,
                load_many,
                ttl=self.config.cache_ttl_seconds,
                origin=ORIGIN,
                validate=EstimateItem.valid,
                max_wait=max_wait,
            )
        estimates: dict[FunctionRef, Estimate] = {}
        for key, ref in keys.items():
            result = outcome[key]
            if isinstance(result, LookupFailed):
                cause = result.cause
                detail = "" if cause is not None else str(result)
                raise EstimateUnavailable(ref.resource, cause, detail) from (cause or result)
            estimates[ref] = to_estimate(ref, result)
            # How many executions read these values: what bounds the outage's origin calls.
            self.cache.policy.observe_fleet(estimates[ref].concurrency(ConcurrencySignal.MAX))
        return estimates

    def _fetch(self, refs: list[FunctionRef], minutes_back: int) -> dict[str, dict[str, Any]]:
        """Fetch fresh values: one GetMetricData call per 166 functions."""
        now = datetime.fromtimestamp(self.clock.now(), tz=UTC)
        window = aligned_window(now, minutes_back, self.config.publication_delay_seconds)
        values: dict[str, dict[str, Any]] = {}
        for start in range(0, len(refs), FUNCTIONS_PER_CALL):
            chunk = refs[start : start + FUNCTIONS_PER_CALL]
            batch = fetch_metrics(self.cloudwatch, chunk, window)
            for ref, metric in zip(chunk, batch.functions, strict=True):
                values[estimate_key(ref, minutes_back)] = {
                    "value": metric.concurrency,
                    "invocations": metric.invocations,
                    "avg_duration_ms": metric.avg_duration_ms,
                    "period_s": metric.period_s,
                    "observed_peak": metric.observed_peak,
                    "account_concurrency": batch.account_concurrency,
                    "claimed_concurrency": batch.claimed_concurrency,
                }
        return values


DEFAULT_ESTIMATORS_MAX = 16
"""Estimators :func:`estimate_concurrency` keeps for reuse (least recently used dropped): a
caller passing ever-new options (a new session per call...) must not grow the process."""
_default_estimators: MutableMapping[tuple[Any, ...], ConcurrencyEstimator] = LRUCache(
    maxsize=DEFAULT_ESTIMATORS_MAX
)
_default_estimators_lock = threading.Lock()


def estimate_concurrency(
    function_name: str,
    minutes_back: int = 5,
    *,
    qualifier: str | None = None,
    use_cache: bool = True,
    session: Any = None,
    **options: Any,
) -> int:
    """The approximate concurrent executions of ``function_name``, as an int.

    For scripts and handlers: ``options`` are :class:`Config` fields (``table_name``,
    ``endpoint_url``, ``cache_ttl_seconds``...), with ``SIBLINGS_*`` env-var defaults.
    Estimators are reused across calls with the same options, so the in-process tier works
    in a warm Lambda container. Raises :class:`EstimateUnavailable` when no value exists.
    """
    try:
        key: tuple[Any, ...] | None = (session, tuple(sorted(options.items())))
        hash(key)
    except TypeError:  # unhashable option values: no reuse
        key = None
    with _default_estimators_lock:
        estimator = None if key is None else _default_estimators.get(key)
    if estimator is None:
        estimator = ConcurrencyEstimator(Config.from_env(**options), session=session)
        if key is not None:
            with _default_estimators_lock:
                estimator = _default_estimators.setdefault(key, estimator)
    return estimator.estimate(
        function_name, minutes_back, qualifier=qualifier, use_cache=use_cache
    ).value


def ensure_table(config: Config | None = None, session: Any = None) -> bool:
    """Create the shared table with TTL enabled unless it exists; True if it was created."""
    return DynamoStore(config or Config.from_env(), session=session).ensure_table()
