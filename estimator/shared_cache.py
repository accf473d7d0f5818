"""Two cache tiers with a fleet-wide single flight: memory, then DynamoDB, then the loader.

When the shared item is stale one caller in the fleet takes a short lease (a conditional write)
and runs the loader; the others serve the stale value or, with none, wait for it. A dead
leaseholder's lease expires. In a process, a per-key lock keeps the other threads waiting.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack, suppress
from dataclasses import replace
from typing import Any

from estimator.breaker import trips
from estimator.clock import SYSTEM_CLOCK, Clock
from estimator.config import Config
from estimator.exceptions import LookupFailed, StoreUnavailable
from estimator.items import StoredItem, cached_entry, holds_junk
from estimator.memory import Cached, MemoryTier, Tier
from estimator.memory_store import MemoryStore
from estimator.polling import Backoff
from estimator.recent_failures import RecentFailures
from estimator.refresh_policy import Plan, RefreshPolicy
from estimator.store import Store

log = logging.getLogger(__name__)

LoadMany = Callable[[list[str]], Mapping[str, dict[str, Any]]]
"""Loads fresh values for several keys in one go (e.g. one GetMetricData call)."""
Validate = Callable[[dict[str, Any]], bool]
"""Tells whether a value read from DynamoDB has the shape the caller expects."""

class TwoTierCache:
    """Tier 1 (:class:`MemoryTier`) over tier 2 (a :class:`~estimator.store.Store`).

    Thread-safe. ``store=None`` keeps tier 2 in process too (a
    :class:`~estimator.memory_store.MemoryStore`: one refresh per process per TTL window instead
    of one per fleet; what it serves is reported as memory). ``clock`` (:class:`~estimator.clock.Clock`) is
    injectable, e.g. for a simulation in virtual time or a test on a manual clock.
    """

    def __init__(
        self,
        config: Config,
        store: Store | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ):
        self.config = config
        self.store: Store = store if store is not None else MemoryStore()
        # Where a tier-2 hit came from, as the caller is told: a table, or this process (a store
        # that does not say is taken as shared, like the table).
        self._tier2 = Tier.DYNAMODB if getattr(self.store, "shared", True) else Tier.MEMORY
        # Also how the wait for another execution's refresh passes time (a simulation's own clock).
        self.clock = clock
        self.memory = MemoryTier(config.memory_cache_size, clock=clock)
        self.policy = RefreshPolicy(config)
        self.owner = f"{os.environ.get('AWS_LAMBDA_LOG_STREAM_NAME', os.getpid())}/{uuid.uuid4()}"
        self.failures = RecentFailures(config.error_backoff_seconds, clock, config.memory_cache_size)

    def get(
        self,
        key: str,
        load: Callable[[], dict[str, Any]],
        *,
        ttl: float,
        origin: str,
        validate: Validate | None = None,
        max_wait: float | None = None,
    ) -> Cached:
        """The value of ``key``, refreshed through ``load`` at most once per ``ttl`` fleet-wide.

        Shared items that fail ``validate`` are treated as corrupt: ignored and overwritten.
        ``max_wait`` bounds the wait for another execution's refresh (default
        ``lease_wait_seconds``). Raises :class:`LookupFailed` when the loader fails and no value
        (even stale) exists, or the wait runs out.
        """
        hit = self.memory.get(key)
        if hit is not None:  # the hot path: a warm container, a fresh value
            return hit
        outcome = self.get_many(
            [key],
            lambda keys: {keys[0]: load()},
            ttl=ttl,
            origin=origin,
            validate=validate,
            max_wait=max_wait,
        )
        result = outcome[key]
        if isinstance(result, LookupFailed):
            raise result
        return result

    def get_many(
        self,
        keys: Iterable[str],
        load_many: LoadMany,
        *,
        ttl: float,
        origin: str,
        validate: Validate | None = None,
        max_wait: float | None = None,
    ) -> dict[str, Cached | LookupFailed]:
        """Like :meth:`get` for several keys; the misses are loaded with one ``load_many`` call.

        Each key maps to its :class:`Cached` value or to the :class:`LookupFailed` error.
        """
        wanted = list(dict.fromkeys(keys))
        results: dict[str, Cached | LookupFailed] = {}
        pending = []
        for key in wanted:
            hit = self.memory.get(key)
            if hit is not None:
                results[key] = hit
            else:
                pending.append(key)
        if not pending:
            return results
        with ExitStack() as stack:
            # Sorted, so two threads asking for overlapping sets cannot deadlock.
            for key in sorted(pending):
                stack.enter_context(self.memory.key_lock(key))
            misses = []
            for key in pending:
                hit = self.memory.get(key)
                if hit is not None:
                    results[key] = hit
                else:
                    misses.append(key)
            if misses:
                wait = self.config.lease_wait_seconds if max_wait is None else max(0.0, max_wait)
                results.update(self._fill(misses, load_many, ttl, origin, validate, wait))
        return results

    def reload(self, key: str, load: Callable[[], dict[str, Any]], *, ttl: float, origin: str) -> Cached:
        """Load ``key`` now, in both tiers, though a fresh value may be cached (the caller
        knows it to be out of date); raises :class:`LookupFailed` when the loader fails."""
        with self.memory.key_lock(key):
            result = self._load([key], lambda keys: {key: load()}, ttl, origin, {})[key]
        if isinstance(result, LookupFailed):
            raise result
        return result

    def accept(
        self, key: str, item: StoredItem | None, *, ttl: float, validate: Validate | None = None
    ) -> bool:
        """Take ``item``, read by the caller (a batch read), into memory if it holds a fresh,
        valid value: the next :meth:`get` of ``key`` is then a memory hit. True if taken."""
        now = self.clock.now()
        entry = cached_entry(item, now, validate, ttl, self.config.max_clock_skew_seconds)
        if entry is None or item is None or not item.is_fresh(now):
            return False
        if self.policy.due_early(entry, now):
            return False  # the normal path may take its early refresh
        self._remember(key, entry, now)
        return True

    def invalidate(self, key: str) -> None:
        """Forget ``key`` in this process (the shared item is left to expire)."""
        self.memory.discard(key)
        self.failures.forget(key)

    # --- the slow path, under the per-key locks ---
    def _fill(
        self,
        keys: list[str],
        load_many: LoadMany,
        ttl: float,
        origin: str,
        validate: Validate | None,
        wait: float,
    ) -> dict[str, Cached | LookupFailed]:
        now = self.clock.now()
        results: dict[str, Cached | LookupFailed] = {}
        stale: dict[str, Cached] = {}
        to_load: list[str] = []
        to_wait: list[str] = []
        for key in keys:
            failure = self.failures.get(key, now)
            if failure is not None:
                results[key] = failure
                continue
            last = self.memory.last_known(key)
            # A value past its grace is too old to stand in for one (the table drops it too).
            if last is not None and now <= last.expires_at + self.config.stale_grace_seconds:
                stale[key] = last.from_memory()
            plan, entry = self._consult_store(key, now, stale, validate, ttl)
            if plan is Plan.DONE and entry is not None:
                results[key] = entry
            elif plan is Plan.FAILED:
                results[key] = self.failures.remember(
                    key, LookupFailed(key, None, "another execution's refresh just failed")
                )
            elif plan is Plan.STALE:
                results[key] = self._serve_stale(key, stale[key], now, ttl)
            elif plan is Plan.WAIT:
                to_wait.append(key)
            else:
                to_load.append(key)
        if to_load:
            results.update(self._load(to_load, load_many, ttl, origin, stale))
        for key in to_wait:
            results[key] = self._wait_for_refresh(key, load_many, ttl, origin, validate, wait)
        return results

    def _consult_store(
        self, key: str, now: float, stale: dict[str, Cached], validate: Validate | None, ttl: float
    ) -> tuple[Plan, Cached | None]:
        """Decide from tier 2 what to do about ``key`` (see :class:`Plan`)."""
        try:
            item = self.store.get(key)
            entry = cached_entry(item, now, validate, ttl, self.config.max_clock_skew_seconds)
            if holds_junk(item, entry, now):
                if self._junk_to_load(key, item, now, ttl, validate):
                    return Plan.LOAD, None
                return (Plan.STALE if key in stale else Plan.WAIT), None
            if entry is not None and item is not None and item.is_fresh(now):
                if self._refresh_early(key, item, entry, now, ttl):
                    stale[key] = replace(entry, source=self._tier2)  # served if it fails
                    return Plan.LOAD, None
                self._remember(key, entry, now)
                return Plan.DONE, replace(entry, source=self._tier2)
            if entry is not None:
                previous = stale.get(key)
                if previous is None or previous.fetched_at < entry.fetched_at:
                    stale[key] = replace(entry, source=self._tier2, stale=True)
            if self._take_lease(key, now, ttl):
                return Plan.LOAD, None
        except StoreUnavailable as exc:
            # The table's breaker has logged it. In an outage, without the fleet's single
            # flight, only a bounded share of processes asks the origin; the others serve what
            # they hold. A configuration error (no table, access denied) is no outage: no
            # stand-in, the origin answers.
            if key in stale and trips(exc) and not self.policy.ask_origin_in_outage():
                return Plan.STALE, None
            return Plan.LOAD, None
        if key in stale:
            return Plan.STALE, None
        if item is not None and item.recently_failed(now, self._longest_backoff):
            return Plan.FAILED, None  # waiting would only wait out the fleet's back-off
        return Plan.WAIT, None

    def _junk_to_load(
        self, key: str, item: StoredItem | None, now: float, ttl: float, validate: Validate | None
    ) -> bool:
        """Whether this caller overwrites an unusable item: one only fresh for longer than this
        reader's TTL (another config's) goes to one lease winner; a damaged one at once."""
        skew = self.config.max_clock_skew_seconds
        if cached_entry(item, now, validate, math.inf, skew) is not None:
            return self._take_lease(key, now, ttl)
        log.warning("cache item %r is corrupt or foreign; overwriting it", key)
        return True

    def _remember(self, key: str, entry: Cached, now: float) -> None:
        """Keep ``entry`` in memory until this process's jittered next read (see
        :mod:`estimator.refresh_policy`)."""
        self.memory.put(key, entry, serve_until=self.policy.memory_until(entry, now))

    def _refresh_early(
        self, key: str, item: StoredItem, entry: Cached, now: float, ttl: float
    ) -> bool:
        """Take the lease to refresh a value in its early window, unless one is visibly held."""
        assert item.fresh_until is not None
        if not self.policy.due_early(entry, now):
            return False
        longest = self.config.lease_seconds + self.config.max_clock_skew_seconds
        if item.lease_held(now, longest):
            return False
        return self._take_lease(key, now, ttl, due_by=item.fresh_until)

    @property
    def _longest_backoff(self) -> float:
        return self.config.error_backoff_seconds + self.config.max_clock_skew_seconds

    def _take_lease(self, key: str, now: float, ttl: float, due_by: float | None = None) -> bool:
        """Try for the refresh lease of ``key`` (due: stale by ``due_by``, default ``now``);
        leases and freshness beyond what a sane writer sets (plus clock skew) do not stand in
        the way."""
        skew = self.config.max_clock_skew_seconds
        return self.store.try_lease(
            key,
            self.owner,
            now,
            self.config.lease_seconds,
            skew=skew,
            fresh_at_most=now + ttl + skew,
            due_by=due_by,
        )

    def _load(
        self,
        keys: list[str],
        load_many: LoadMany,
        ttl: float,
        origin: str,
        stale: dict[str, Cached],
    ) -> dict[str, Cached | LookupFailed]:
        results: dict[str, Cached | LookupFailed] = {}
        try:
            values = load_many(keys)
            error: BaseException | None = None
        except Exception as exc:  # the loader's own errors are the caller's domain
            values, error = {}, exc
        fetched_at = self.clock.now()
        for key in keys:
            value = values.get(key)
            if value is None:
                detail = "" if error is not None else "the loader returned no value"
                log.warning("refresh of %r failed: %s", key, error or detail)
                self._share_failure(key, fetched_at, error or detail)
                if key in stale:
                    results[key] = self._serve_stale(key, stale[key], fetched_at, ttl)
                else:
                    results[key] = self.failures.remember(key, LookupFailed(key, error, detail))
                continue
            entry = Cached(value, origin, fetched_at, fetched_at + ttl)
            self._remember(key, entry, fetched_at)
            self._store_put(key, entry)
            results[key] = entry
        return results

    def _wait_for_refresh(
        self,
        key: str,
        load_many: LoadMany,
        ttl: float,
        origin: str,
        validate: Validate | None,
        wait: float,
    ) -> Cached | LookupFailed:
        """No value anywhere and another execution is refreshing: wait for it, or take over."""
        backoff = Backoff(wait, clock=self.clock)
        while backoff.wait():
            now = self.clock.now()
            try:
                item = self.store.get(key)
                entry = cached_entry(item, now, validate, ttl, self.config.max_clock_skew_seconds)
                if holds_junk(item, entry, now):
                    if self._junk_to_load(key, item, now, ttl, validate):
                        return self._load([key], load_many, ttl, origin, {})[key]
                    continue  # another execution is refreshing it
                if entry is not None and item is not None and item.is_fresh(now):
                    self._remember(key, entry, now)
                    return replace(entry, source=self._tier2)
                if item is not None and item.recently_failed(now, self._longest_backoff):
                    return self.failures.remember(
                        key,
                        LookupFailed(key, None, f"another execution's refresh failed: {item.last_error}"),
                    )
                longest = self.config.lease_seconds + self.config.max_clock_skew_seconds
                held = item is not None and item.lease_held(now, longest)
                if not held and self._take_lease(key, now, ttl):
                    return self._load([key], load_many, ttl, origin, {})[key]
            except StoreUnavailable:
                return self._load([key], load_many, ttl, origin, {})[key]
        return LookupFailed(key, None, "timed out waiting for another execution's refresh")

    def _serve_stale(self, key: str, entry: Cached, now: float, ttl: float) -> Cached:
        """Serve a stale value from memory for a short while instead of asking again at once."""
        stale_entry = replace(entry, stale=True)
        backoff = min(self.config.error_backoff_seconds, ttl)
        if backoff > 0:
            self.memory.put(key, stale_entry, serve_until=now + backoff)
        return stale_entry

    def _share_failure(self, key: str, now: float, error: BaseException | str) -> None:
        """Tell the fleet this refresh failed, so that nobody retries or waits for it."""
        text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
        # A table failure here is logged by its breaker; the process still remembers the failure.
        with suppress(StoreUnavailable):
            self.store.mark_failed(key, self.owner, now, self.config.error_backoff_seconds, text)

    def _store_put(self, key: str, entry: Cached) -> None:
        self.publish({key: entry.value}, fetched_at=entry.fetched_at, ttl=entry.expires_at - entry.fetched_at)

    def publish(self, values: Mapping[str, dict[str, Any]], *, fetched_at: float, ttl: float) -> None:
        """Write values loaded by this process for other readers (tier 2 only), 25 a request."""
        if not values:
            return
        keep = fetched_at + ttl + self.config.stale_grace_seconds
        items = [(key, {"value": value, "fetched_at": fetched_at}, fetched_at + ttl, keep)
                 for key, value in values.items()]
        # A table failure here is logged by its breaker; memory holds the value meanwhile.
        with suppress(StoreUnavailable):
            if len(items) == 1:
                self.store.put(*items[0])
            for start in range(0, len(items) if len(items) > 1 else 0, 25):
                self.store.put_many(items[start : start + 25])
