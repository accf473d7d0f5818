"""What ``siblings chain`` and ``siblings chains`` read: one small item per chain step, a head
per chain and a per-function per-day list of chains, in the shared table.

Every spawn decision of a chain step (generation ``g``, the child) leaves:

* ``step#<chain>#<g>`` (:func:`~siblings.keys.step_key`): the step's last decision (outcome,
  reason, request id, time, deferred until, how often deferred); a later decision of the same
  step (a deferral that fired) overwrites it;
* ``chain#<chain>`` (:func:`~siblings.keys.chain_key`): the chain's head (function, start,
  last generation and outcome), so that a listing needs no read of the steps;
* once per chain, at its first decision, the chain id takes the next slot of its function's
  list of the day: ``chains#<scope>#<yyyy-mm-dd>#<n>`` (:func:`~siblings.keys.chains_key`; the
  scope is ``<account>:<region>:<function>``), a put-if-absent, so that two chains never share a
  slot, guided by a hint item ``chains#<scope>#<yyyy-mm-dd>`` holding the next free slot (a
  stale hint costs a probe); at most :data:`DAY_LIST_MAX` a day. That is the index:
  ``siblings chains FN`` reads the hints, the newest slots and the heads (three
  BatchGetItems), never a table scan; no schema change (no GSI), and only the store's plain
  operations, so any backend can hold it.

A duplicate decision (a second execution of step ``g``, stopped, asking to spawn ``g+1``)
writes ``step#<chain>#<g>#duplicate`` instead, never a step or the head.

Cost: a spawned step adds its two items to the BatchWriteItem that already records the spawn
(no extra request, about 2 WCU); a refusal, deferral or failure is one BatchWriteItem; a
duplicate one PutItem; a chain's first spawn three more (the hint's GetItem, the slot's
conditional PutItem, the hint's PutItem), made in parallel with the spawn's own requests
(:meth:`~siblings.spawner.Spawner` submits :meth:`ChainLog.list_chain` to its pool), and only
with ``chain_index=True``: the day lists are opt-in, so a chain root's spawn stays at its
three requests by default. Writes are best effort: the spawn's outcome never depends on them
(a failure is logged). ``chain_log=False`` turns it all off.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from estimator.clock import SYSTEM_CLOCK, Clock
from estimator.items import StoredItem
from estimator.store import Store
from estimator.validation import parse_function
from siblings.config import SiblingsConfig
from siblings.errors import StoreUnavailable
from siblings.keys import chain_key, chains_key, step_key
from siblings.result import Decision, SpawnResult

log = logging.getLogger(__name__)

DAY_LIST_MAX = 1000
"""Chains listed per function and day (ids of at most 128 characters: well under 400 KB)."""
_DETAIL_MAX = 200
_PROBES = 16
"""Slots tried past a stale hint before giving up on listing a chain."""

Item = tuple[str, dict[str, Any], float, float]


DUPLICATE_WORD = "duplicate stopped"
"""How ``siblings chain`` names a second execution of a step that was stopped."""


def outcome_of(result: SpawnResult) -> str | None:
    """The outcome word of a decision, as ``siblings chain`` prints it: its
    :attr:`~SpawnResult.decision` (a duplicate is :data:`DUPLICATE_WORD`); ``None`` when it
    leaves no step record (a dry run)."""
    decision = result.decision
    if decision is Decision.DRY_RUN:
        return None
    return DUPLICATE_WORD if decision is Decision.DUPLICATE else decision.value


def day_of(epoch: float) -> str:
    """The UTC day of ``epoch``, as in :func:`~siblings.keys.chains_key`."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d")


class ChainLog:
    """Writes the step, head and day-list items of each decision (see the module docstring)."""

    def __init__(self, store: Store, config: SiblingsConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.config = config
        self.clock = clock

    def items(self, result: SpawnResult) -> list[Item]:
        """The step and head items of ``result`` (none for a duplicate or a dry run)."""
        outcome = outcome_of(result)
        if outcome is None or result.decision is Decision.DUPLICATE or not result.chain_id:
            return []
        now = self.clock.now()
        keep = now + self.config.spawn_record_ttl_seconds
        step = {
            "outcome": outcome,
            "reason": str(result.reason),
            "generation": result.generation,
            "request_id": result.request_id,
            "parent_request_id": result.parent_request_id,
            "decided_at": now,
            "deferred_until": result.deferred_until,
            "deferrals": result.deferrals,
            "detail": result.detail[:_DETAIL_MAX],
        }
        head = {
            "function": _function(result.function_arn),
            "scope": _scope(result.function_arn),
            "chain_started_at": result.chain_started_at,
            "last_generation": result.generation,
            "outcome": outcome,
            "reason": str(result.reason),
            "updated_at": now,
            "deferred_until": result.deferred_until,
        }
        return [
            (step_key(result.chain_id, result.generation), step, keep, keep),
            (chain_key(result.chain_id), head, keep, keep),
        ]

    def observe(self, result: SpawnResult) -> None:
        """Record ``result`` (a :class:`~siblings.decisions.DecisionLog` observer). A spawn's
        items went with its spawn record; every other outcome is written here."""
        outcome = outcome_of(result)
        if outcome is None or not result.chain_id:
            return
        try:
            if result.decision is Decision.DUPLICATE:
                self._duplicate(result)
                return
            if result.decision is not Decision.SPAWNED:
                self.store.put_many(self.items(result))
        except StoreUnavailable as exc:
            log.warning("chain log of %s step %s not written: %s", result.chain_id, result.generation, exc)

    def _duplicate(self, result: SpawnResult) -> None:
        now = self.clock.now()
        keep = now + self.config.spawn_record_ttl_seconds
        value = {"request_id": result.parent_request_id, "at": now, "detail": result.detail[:_DETAIL_MAX]}
        # The stopped execution runs the step before the one it asked to spawn.
        ran = max(result.generation - 1, 0)
        self.store.put(step_key(result.chain_id, ran, duplicate=True), value, keep, keep)

    def list_chain(self, chain_id: str, function_arn: str) -> None:
        """Add a chain to its function's list of the day (best effort: never raises)."""
        try:
            self._list(chain_id, function_arn)
        except Exception as exc:  # the spawn's outcome never depends on its listing
            log.warning("chain %s not listed: %s", chain_id, exc)

    def _list(self, chain_id: str, function_arn: str) -> None:
        """The first free slot from the day's hint, taken with a put-if-absent (two chains never
        share a slot), then the hint moved on. A stale hint only costs a probe or two; any
        store backend can do it."""
        now = self.clock.now()
        base = chains_key(_scope(function_arn), day_of(now))
        keep = now + self.config.spawn_record_ttl_seconds
        hint = self.store.get(base)
        slot = next_slot(hint)
        for _ in range(_PROBES):
            if slot >= DAY_LIST_MAX:
                log.info("the chains list %s is full: chain %s is not listed", base, chain_id)
                return
            entry = {"chain_id": chain_id, "at": now}
            existing = self.store.create(slot_key(base, slot), entry, keep, now)
            if existing is None:
                break
            if isinstance(existing.value, dict) and existing.value.get("chain_id") == chain_id:
                return  # listed before (a retried root)
            slot += 1
        else:
            log.warning("no free slot in %s near %d: chain %s is not listed", base, slot, chain_id)
            return
        self.store.put(base, {"next": slot + 1, "updated_at": now}, keep, keep)


def slot_key(base: str, slot: int) -> str:
    """Key of one slot of a day's list of chains."""
    return f"{base}#{slot}"


def next_slot(hint: StoredItem | None) -> int:
    """The first slot the day's hint says is free (0 without a believable hint)."""
    value = hint.value if hint is not None and not hint.corrupt else None
    found = value.get("next") if isinstance(value, dict) else None
    if isinstance(found, bool) or not isinstance(found, int) or not 0 <= found <= DAY_LIST_MAX:
        return 0
    return found

def _function(function_arn: str) -> str:
    try:
        return parse_function(function_arn).name
    except (TypeError, ValueError):
        return "unknown"


def _scope(function_arn: str) -> str:
    """The function's :attr:`~estimator.validation.FunctionRef.scope` (its run claims and day
    lists are keyed by it)."""
    try:
        return parse_function(function_arn).scope
    except (TypeError, ValueError):
        return "unknown"

