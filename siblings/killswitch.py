"""The operator's kill switch: one item per function in the shared table stops all spawning.

``siblings disable FN`` writes ``kill#<account>:<region>:FN`` with ``{"disabled": true, ...}``; every
``spawn_sibling`` of that function (any alias or version) then refuses, even with
``force=True``, until ``siblings enable FN``. The item is read on every spawn (one eventually
consistent GetItem: half a read unit, for the fleet's most-read item), so a switch takes effect
fleet-wide within about a second (DynamoDB: an eventually consistent read usually reflects a
write within a second; docs.aws.amazon.com/amazondynamodb/latest/developerguide/
HowItWorks.ReadConsistency.html). When DynamoDB is out (throttling, 5xx, connectivity), the
last state this process saw is used; after any other error (access denied, no table) or with
none, ``on_guard_error`` decides. Before 0.3 the item was ``kill#FN`` (one for every Region of a
global table; now each Region has its own): 0.3 does not read it, :func:`spawning_status`
reports one still there, and nothing here deletes it (0.2 versions still running read it).

The CLI calls :func:`disable_spawning`, :func:`enable_spawning` and :func:`spawning_status`.
"""

from __future__ import annotations

import getpass
import logging
import math
import os
import threading
from dataclasses import asdict, dataclass
from typing import Any

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute

from estimator.breaker import trips
from estimator.clock import SYSTEM_CLOCK, Clock
from estimator.exceptions import StoreUnavailable, UnprocessedKeys
from estimator.identity import at_home
from estimator.item_kinds import ItemKind, ItemValue
from estimator.items import StoredItem, number_in
from estimator.store import DynamoStore, Store
from estimator.validation import FunctionRef, parse_function
from siblings.config import SiblingsConfig
from siblings.keys import KILL_PREFIX, kill_key, legacy_kill_key, rules_key

log = logging.getLogger(__name__)

READ_CONSISTENT = False
"""How the switch is read on a spawn: eventually consistent (see the module's docstring)."""

# The switch must outlive any TTL sweep: keep it for a century.
_FOREVER_S = 100 * 365 * 24 * 3600.0


class KillSwitchValue(ItemValue):
    """A kill switch as :meth:`KillSwitch.set` writes it. (Its time is only shown, never acted
    on, so an operator's skewed clock does not make it corrupt.)"""

    optional = frozenset({"reason"})
    disabled = BooleanAttribute()
    reason = UnicodeAttribute()
    changed_by = UnicodeAttribute(null=True)
    changed_at = NumberAttribute(null=True)

    @classmethod
    def in_bounds(cls, fields: Any, now: float, skew: float) -> bool:
        """A finite time, if any (JSON's ``1e400`` decodes to infinity)."""
        return fields.changed_at is None or number_in(fields.changed_at, -math.inf, math.inf)


class KillItem(ItemKind):
    """``kill#<scope>``: one function's kill switch (a corrupt one refuses every spawn)."""

    prefix = KILL_PREFIX
    schema = KillSwitchValue


@dataclass(frozen=True)
class KillState:
    """Whether spawning is disabled for a function, and who said so."""

    function_name: str
    disabled: bool
    reason: str = ""
    changed_at: float | None = None
    changed_by: str | None = None
    corrupt: bool = False
    """The item is not one this library wrote: spawning is treated as disabled (fail closed)
    until an operator writes the switch again with ``siblings enable`` or ``disable``."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)


class KillSwitch:
    """Reads and flips the kill switch items of a :class:`DynamoStore`."""

    def __init__(self, store: Store, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, tuple[KillState, float]] = {}
        self._warned: set[str] = set()
        self._denied: set[tuple[str, type]] = set()

    def state(self, ref: FunctionRef) -> KillState:
        """The current state (raises :class:`StoreUnavailable` when DynamoDB fails).

        An item that is not one of ours means *disabled*: a guard must not be switched off by
        a malformed item.
        """
        item = self.store.get(kill_key(ref), consistent=READ_CONSISTENT)
        return self.state_of(ref, item)

    def read(
        self, ref: FunctionRef, also: list[str]
    ) -> tuple[KillState, dict[str, StoredItem | None]]:
        """The current state and, in the same BatchGetItem, the items at ``also`` (a cold
        container's other guard items). Keys DynamoDB left unprocessed are missing from the
        returned items (their guards read them); the switch itself unread raises
        :class:`StoreUnavailable`, like any failure."""
        if not also:
            return self.state(ref), {}
        key = kill_key(ref)
        try:
            items = self.store.get_many([key, *also], consistent=READ_CONSISTENT)
        except UnprocessedKeys as partial:
            if key not in partial.found:
                raise
            items = partial.found
        others = {name: item for name, item in items.items() if name != key}
        return self.state_of(ref, items[key]), others

    def stand_in(self, ref: FunctionRef, exc: StoreUnavailable, max_age: float) -> KillState | None:
        """What stands in for a switch that could not be read: in an outage (throttling, 5xx,
        connectivity: :func:`~estimator.breaker.trips`) the last known state (see
        :meth:`last_known`); after any other error, such as access denied or no table, only a
        switch last seen *disabled* (failing closed): an enabled one may have been flipped by
        ``siblings disable`` since, so ``on_guard_error`` decides. Said once per key."""
        key = kill_key(ref)
        if trips(exc):
            return self.last_known(ref, max_age)
        with self._lock:
            found = self._last.get(key)
        if found is not None and found[0].disabled:
            return found[0]
        with self._lock:
            if (key, type(exc)) in self._denied:
                return None
            self._denied.add((key, type(exc)))
        log.error(
            "kill switch %r could not be read (%s: %s): not an outage, so no last known state "
            "stands in and on_guard_error applies; let this role read it (dynamodb:GetItem and "
            "dynamodb:BatchGetItem on the table)",
            key,
            exc.code or type(exc).__name__,
            exc,
        )
        return None

    def state_of(self, ref: FunctionRef, item: StoredItem | None) -> KillState:
        """The state an item read by the caller (``None``: absent) says; remembered as the
        last known state."""
        function_name = ref.name
        if item is None or item.is_gone(self.clock.now()):
            state = KillState(function_name, disabled=False)
        elif item.corrupt or not KillItem.valid(item.value):
            state = KillState(
                function_name,
                disabled=True,
                reason="the kill-switch item is corrupt; rewrite it with `siblings enable` or `disable`",
                corrupt=True,
            )
            self._warn_once(item.key, item.value)
        else:
            value = item.value or {}
            state = KillState(
                function_name,
                disabled=value["disabled"],
                reason=value.get("reason") or "",
                changed_at=value.get("changed_at"),
                changed_by=value.get("changed_by"),
            )
        with self._lock:
            self._last[kill_key(ref)] = (state, self.clock.now())
        return state

    def _warn_once(self, key: str, value: Any) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.error("kill-switch item %r is corrupt (%r): spawning is treated as disabled", key, value)

    def last_known(self, ref: FunctionRef, max_age: float) -> KillState | None:
        """The state this process read last, for when DynamoDB is unavailable: a *disabled*
        switch of any age, an enabled one only if read within ``max_age`` seconds (an operator
        may have disabled spawning since; the guards pass ``stale_grace_seconds``)."""
        with self._lock:
            found = self._last.get(kill_key(ref))
        if found is None:
            return None
        state, read_at = found
        return state if state.disabled or self.clock.now() - read_at <= max_age else None

    def set(
        self, ref: FunctionRef, disabled: bool, reason: str = "", changed_by: str | None = None
    ) -> KillState:
        """Write the switch (kept, not deleted, on enable: the item records who enabled it)."""
        now = self.clock.now()
        state = KillState(ref.name, disabled, reason, now, changed_by)
        value = {k: v for k, v in state.to_dict().items() if k != "function_name"}
        self.store.put(
            kill_key(ref),
            value,
            fresh_until=now + _FOREVER_S,
            keep_until=now + _FOREVER_S,
        )
        with self._lock:
            self._last[kill_key(ref)] = (state, self.clock.now())
        return state


@dataclass(frozen=True)
class FunctionStatus:
    """What ``siblings status FN`` shows: the kill switch and the cached rule state."""

    kill: KillState
    rules: dict[str, Any] | None
    """The cached EventBridge answer (``enabled``, ``rule``...) or ``None`` when not cached."""
    rules_fresh_until: float | None
    legacy_kill: KillState | None = None
    """A switch written by a release before 0.3 (``kill#<name>``): versions running 0.3 no
    longer read it (``siblings disable``/``enable`` write theirs), versions still on 0.2 do."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "function_name": self.kill.function_name,
            "spawning_disabled": self.kill.disabled,
            "kill_switch": self.kill.to_dict(),
            "rules": self.rules,
            "rules_fresh_until": self.rules_fresh_until,
            "legacy_kill_switch": None if self.legacy_kill is None else self.legacy_kill.to_dict(),
        }


def _store(config: SiblingsConfig | None, session: Any, store: Store | None) -> Store:
    if store is not None:
        return store
    return DynamoStore(config or SiblingsConfig.from_env(), session=session)


def _ref(function_name: str, config: SiblingsConfig | None, session: Any) -> FunctionRef:
    """The function in the clients' account and Region (an ARN of another is a ValueError)."""
    return at_home(parse_function(function_name), config or SiblingsConfig.from_env(), session)


def _operator() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "unknown"
    return f"{user}@{os.uname().nodename}"


def disable_spawning(
    function_name: str,
    *,
    reason: str = "",
    config: SiblingsConfig | None = None,
    session: Any = None,
    store: Store | None = None,
) -> KillState:
    """Stop every future spawn of ``function_name`` (name or ARN), even forced ones.

    Raises :class:`StoreUnavailable` when the table cannot be written, ``ValueError`` for a
    bad name.
    """
    return _set_spawning(function_name, True, reason, config, session, store)


def enable_spawning(
    function_name: str,
    *,
    reason: str = "",
    config: SiblingsConfig | None = None,
    session: Any = None,
    store: Store | None = None,
) -> KillState:
    """Allow spawning of ``function_name`` again (the other guards still apply)."""
    return _set_spawning(function_name, False, reason, config, session, store)


def _set_spawning(
    function_name: str,
    disabled: bool,
    reason: str,
    config: SiblingsConfig | None,
    session: Any,
    store: Store | None,
) -> KillState:
    ref = _ref(function_name, config, session)
    switch = KillSwitch(_store(config, session, store))
    # A 0.2 switch is left alone: versions still running 0.2 read it (see CHANGELOG.md).
    return switch.set(ref, disabled, reason, _operator())


def spawning_status(
    function_name: str,
    *,
    config: SiblingsConfig | None = None,
    session: Any = None,
    store: Store | None = None,
) -> FunctionStatus:
    """The kill switch of ``function_name`` and its cached rule state (DynamoDB reads only)."""
    ref = _ref(function_name, config, session)
    table = _store(config, session, store)
    found = table.get_many([kill_key(ref), legacy_kill_key(ref), rules_key(ref)])
    kill = KillSwitch(table).state_of(ref, found[kill_key(ref)])
    legacy_item = found[legacy_kill_key(ref)]
    legacy = None if legacy_item is None else KillSwitch(table).state_of(ref, legacy_item)
    rules_item = found[rules_key(ref)]  # the rule state is cached per alias or version
    rules: dict[str, Any] | None = None
    fresh_until: float | None = None
    if rules_item is not None and rules_item.value is not None:
        cached = rules_item.value.get("value")
        rules = cached if isinstance(cached, dict) else None
        fresh_until = rules_item.fresh_until
    return FunctionStatus(kill=kill, rules=rules, rules_fresh_until=fresh_until, legacy_kill=legacy)
