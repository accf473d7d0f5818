"""One refresh per account: every function's estimate from one GetMetricData per TTL.

One GetMetricData call carries up to 166 functions, so the account's guarded functions share
one refresher instead of refreshing each on its own. Each function keeps its own item (its
readers find it as before); an account item (:func:`estimator.keys.account_key`) lists the
functions that asked and carries the account-wide refresh lease.

When a process takes the lease of a function's stale (or early-due) item, the estimator's
loader comes here instead of asking CloudWatch for that function alone:

* **it takes the account lease** (the account item is due within the early window): one call
  fetches every listed function and the ones asked for, writes each function's item, and lists
  the asked ones again (a function not asked for in ``KEEP_SECONDS`` is dropped);
* **another process holds it**: that refresh brings the function's value; it is read from the
  function's item once written (waiting at most ``lease_seconds``);
* **the account was refreshed a moment ago** (the function's item written by it since this
  process read it): that value is taken;
* **otherwise** (a function not listed yet): it is fetched alone and listed, so the next
  account refresh brings it.

The table failing at any step falls back to fetching the asked functions alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

from estimator.exceptions import StoreUnavailable
from estimator.identity import Home, in_home
from estimator.items import StoredItem, believable_time
from estimator.keys import account_key
from estimator.polling import Backoff
from estimator.shared_cache import TwoTierCache
from estimator.validation import FunctionRef, parse_function

KEEP_SECONDS = 3600.0
MAX_LISTED = 1000
"""Functions an account item lists at most (the most recent askers): about six GetMetricData
calls for one refresh, however large a corrupt or foreign item claims the list to be."""
"""How long a function stays listed after it last asked (listed idle functions only cost
their three metrics in the shared call)."""

Fetch = Callable[[list[FunctionRef], int], dict[str, dict[str, Any]]]
"""Fetches fresh values of functions (keyed by their estimate keys) over a window."""
KeyOf = Callable[[FunctionRef, int], str]


class AccountRefresher:
    """The account-wide refresh of estimates for one :class:`TwoTierCache` (see module)."""

    def __init__(self, cache: TwoTierCache, fetch: Fetch, key_of: KeyOf, ttl: float,
                 validate: Callable[[dict[str, Any]], bool]) -> None:
        self.cache = cache
        self.fetch = fetch
        self.key_of = key_of
        self.ttl = ttl
        self.validate = validate

    def load(self, refs: Mapping[str, FunctionRef], minutes_back: int) -> dict[str, dict[str, Any]]:
        """Fresh values of ``refs`` (estimate key -> function), by the cheapest way above."""
        try:
            return self._load(refs, minutes_back)
        except StoreUnavailable:
            return self.fetch(list(refs.values()), minutes_back)

    def _load(self, refs: Mapping[str, FunctionRef], minutes: int) -> dict[str, dict[str, Any]]:
        store = self.cache.store
        home = _home_of(refs)
        config, key = self.cache.config, account_key(home, minutes)
        now = self.cache.clock.now()
        item = store.get(key)
        listed = _listed(item, now, config.max_clock_skew_seconds)
        window = self.ttl * config.refresh_ahead_fraction
        if store.try_lease(key, self.cache.owner, now, config.lease_seconds,
                           skew=config.max_clock_skew_seconds, due_by=now + window):
            return self._refresh_all(key, home, listed, refs, minutes)
        found = self._written_since(refs, now - config.lease_seconds)
        longest = config.lease_seconds + config.max_clock_skew_seconds
        held = item is not None and item.lease_held(now, longest)
        unlisted = [ref for ref in refs.values() if ref.resource not in listed]
        if held and not unlisted and len(found) < len(refs):
            found.update(self._wait_for_refresher(refs, now))
        missing = {k: ref for k, ref in refs.items() if k not in found}
        if missing:
            found.update(self.fetch(list(missing.values()), minutes))
            if unlisted:  # listed now: the next account refresh brings them
                fresh_until = item.fresh_until if item is not None and item.fresh_until else now
                self._list(key, {**listed, **{ref.resource: now for ref in unlisted}}, fresh_until)
        return found

    def _refresh_all(self, key: str, home: Home, listed: dict[str, float],
                     refs: Mapping[str, FunctionRef], minutes: int) -> dict[str, dict[str, Any]]:
        """Holding the account lease: fetch every listed function and ``refs``; write them all."""
        now = self.cache.clock.now()
        others = [in_home(parse_function(name), home) for name in listed]
        everyone = {self.key_of(ref, minutes): ref for ref in others}
        everyone.update(refs)
        try:
            values = self.fetch(list(everyone.values()), minutes)
        except Exception:
            self._list(key, listed, fresh_until=now)  # the lease goes: the next asker tries
            raise
        fetched_at = self.cache.clock.now()
        written = {k: v for k, v in values.items() if k not in refs}
        self.cache.publish(written, fetched_at=fetched_at, ttl=self.ttl)
        self._list(key, {**listed, **{ref.resource: now for ref in refs.values()}}, fetched_at + self.ttl)
        return {k: v for k, v in values.items() if k in refs}

    def _written_since(self, refs: Mapping[str, FunctionRef], since: float) -> dict[str, dict[str, Any]]:
        """Valid values of ``refs`` that another refresher wrote after ``since``."""
        store = self.cache.store
        found: dict[str, dict[str, Any]] = {}
        now, skew = self.cache.clock.now(), self.cache.config.max_clock_skew_seconds
        for key in refs:
            value = _value_written_after(store.get(key), since, now, skew)
            if value is not None and self.validate(value):
                found[key] = value
        return found

    def _wait_for_refresher(self, refs: Mapping[str, FunctionRef], began: float) -> dict[str, dict[str, Any]]:
        """Another process holds the account lease: its writes of ``refs``, once they land."""
        cache = self.cache
        backoff = Backoff(cache.config.lease_seconds, clock=cache.clock)
        found: dict[str, dict[str, Any]] = {}
        while len(found) < len(refs) and backoff.wait():
            found.update(self._written_since({k: r for k, r in refs.items() if k not in found}, began))
        return found

    def _list(self, key: str, listed: dict[str, float], fresh_until: float) -> None:
        """Write the account item: the functions listed (those that asked within
        ``KEEP_SECONDS``), due for the next account refresh at ``fresh_until``; drops the lease."""
        store = self.cache.store
        now = self.cache.clock.now()
        kept = {name: at for name, at in listed.items() if at > now - KEEP_SECONDS}
        # A table failure is logged by its breaker; the next asker lists the function again.
        with suppress(StoreUnavailable):
            store.put(key, {"functions": kept}, fresh_until=fresh_until, keep_until=now + KEEP_SECONDS)


def _home_of(refs: Mapping[str, FunctionRef]) -> Home:
    """The one account and Region of ``refs`` (the estimator resolves each to its clients')."""
    homes = {Home(str(ref.account), str(ref.region), ref.partition) for ref in refs.values()}
    if len(homes) != 1 or not all(ref.account and ref.region for ref in refs.values()):
        raise ValueError(f"functions of one account and Region are refreshed together, got {homes}")
    return homes.pop()


def _listed(item: StoredItem | None, now: float, skew: float) -> dict[str, float]:
    """The functions an account item lists, with when each last asked: only names that parse as
    functions and believable times (any writer may have written the item), the most recent
    :data:`MAX_LISTED` of them."""
    if item is None or item.corrupt or item.value is None or item.is_gone(now):
        return {}
    functions = item.value.get("functions")
    if not isinstance(functions, dict):
        return {}
    kept: dict[str, float] = {}
    for name, at in functions.items():
        if isinstance(name, str) and believable_time(at, now, skew) and _parses(name):
            kept[name] = float(at)
    newest = sorted(kept.items(), key=lambda entry: entry[1], reverse=True)[:MAX_LISTED]
    return dict(newest)


def _parses(name: str) -> bool:
    """``name`` is a function name or ARN (a listed name that is not would fail every refresh)."""
    try:
        parse_function(name)
    except (TypeError, ValueError):
        return False
    return True


def _value_written_after(
    item: StoredItem | None, since: float, now: float, skew: float
) -> dict[str, Any] | None:
    """The value of a function's item if it was fetched after ``since`` (and by ``now``)."""
    if item is None or item.corrupt or item.value is None or item.is_gone(now):
        return None
    value, fetched_at = item.value.get("value"), item.value.get("fetched_at")
    if not isinstance(value, dict) or not believable_time(fetched_at, now, skew) or fetched_at <= since:
        return None
    return value
