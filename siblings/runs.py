"""Which execution runs a chain step, and which step an execution is.

Lambda can start one chain step twice: the parent crashed after its Invoke and was retried, or
an Invoke's reply was lost and the Invoke retried. Each sibling therefore claims its step when
it starts (``load_payload`` / ``Invocation`` with the context): one conditional write of
:func:`~siblings.keys.run_key` holding its ``aws_request_id``. A second execution of the step
(another request id) gets :class:`~siblings.DuplicateSibling` and does no work; a retry of the
same execution (Lambda reuses the request id) passes.

The parent also records the child's step under the Invoke's request id
(:func:`~siblings.keys.invocation_key`, written with the spawn record), which Lambda hands the
child as ``context.aws_request_id``. A handler that never reads its event (sosw's usual shape)
is found in its chain by :meth:`RunClaims.lookup`, so the generation limit still holds.
"""

from __future__ import annotations

import logging
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute

from estimator.clock import SYSTEM_CLOCK, Clock
from estimator.deadline import time_left
from estimator.item_kinds import ItemKind, ItemValue
from estimator.items import believable_time
from estimator.memory_store import MemoryStore
from estimator.polling import Backoff
from estimator.store import Store
from siblings.config import GuardErrorPolicy, SiblingsConfig
from siblings.context import InvocationInfo, remaining_seconds
from siblings.errors import DuplicateSibling
from siblings.keys import INVOCATION_PREFIX, RUN_PREFIX, invocation_key, run_key
from siblings.metadata import ChainMetadata, parse_metadata

log = logging.getLogger(__name__)

LOOKUP_PATIENCE_S = 1.0
"""How long a miss of the chain-position lookup is asked again (see :meth:`RunClaims.lookup`)."""
SETTLED_AFTER_S = 3.0
"""An execution this far into its run finds its parent's record written, if there is one: the
parent writes it as its Invoke returns, before the child has run a second."""


def lookup_patience(info: InvocationInfo, config: SiblingsConfig) -> float:
    """How long a miss of this execution's chain position is asked again: not at all once it
    has run :data:`SETTLED_AFTER_S` (``function_timeout_seconds`` less the time the context
    says is left), else :data:`LOOKUP_PATIENCE_S`."""
    remaining = remaining_seconds(info)
    timeout = config.function_timeout_seconds
    if timeout is not None and remaining is not None and timeout - remaining >= SETTLED_AFTER_S:
        return 0.0
    # Never more than a quarter of the spawn's time left: the rest is the spawn's own.
    left = time_left()
    return LOOKUP_PATIENCE_S if left is None else min(LOOKUP_PATIENCE_S, left / 4)


class RunClaim(ItemValue):
    """Which execution runs a step, and since when."""

    runner = UnicodeAttribute()
    started_at = NumberAttribute()

    @classmethod
    def in_bounds(cls, fields: Any, now: float, skew: float) -> bool:
        """A start the clock can believe."""
        return believable_time(fields.started_at, now, skew)


class RunItem(ItemKind):
    """``run#<scope>#<chain>#<gen>``: the claim of a step by the execution that runs it (a
    second execution of the step gets :class:`DuplicateSibling`)."""

    prefix = RUN_PREFIX
    schema = RunClaim


class ChildPosition(ItemValue):
    """A child's place in its chain, as :meth:`ChainMetadata.to_dict` writes it."""

    optional = frozenset({"v"})
    v = NumberAttribute()
    chain_id = UnicodeAttribute()
    generation = NumberAttribute()
    parent_request_id = UnicodeAttribute(null=True)
    spawned_at = NumberAttribute(null=True)
    chain_started_at = NumberAttribute(null=True)

    @classmethod
    def in_bounds(cls, fields: Any, now: float, skew: float) -> bool:
        """What the reserved key of an event must be (:func:`parse_metadata`, the one parser)."""
        try:
            parse_metadata({name: value for name, value in vars(fields).items() if value is not None})
        except ValueError:
            return False
        return True


class ReqItem(ItemKind):
    """``req#<scope>#<request id>``: where the request an Invoke returned sits in its chain,
    for a child that never read its event (:meth:`RunClaims.lookup`)."""

    prefix = INVOCATION_PREFIX
    schema = ChildPosition


class RunClaims:
    """Claims of chain steps by the executions that run them, and the step of a request id."""

    def __init__(
        self,
        store: Store | None,
        config: SiblingsConfig,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        # Without a shared table the claims only hold within this process.
        self.store: Store = store if store is not None else MemoryStore()
        self.config = config
        self.clock = clock

    def start(self, scope: str, metadata: ChainMetadata, request_id: str) -> None:
        """Claim ``metadata``'s step of the function ``scope`` (:attr:`FunctionRef.scope`) for
        ``request_id``; :class:`DuplicateSibling` when another execution holds it. Raises
        :class:`StoreUnavailable` when the table cannot be asked."""
        key = run_key(scope, metadata.chain_id, metadata.generation)
        now = self.clock.now()
        keep = now + self.config.spawn_record_ttl_seconds
        claim = {"runner": request_id, "started_at": now}
        existing = self.store.create(key, claim, keep, now)
        if existing is None:
            return
        holder = existing.value.get("runner") if existing.value else None
        if holder == request_id:
            return  # Lambda's retry of this same execution
        if not existing.corrupt and RunItem.valid(
            existing.value, self.clock.now(), self.config.max_clock_skew_seconds
        ):
            raise DuplicateSibling(metadata.chain_id, metadata.generation, str(holder))
        log.warning("run claim %r is not one of ours: %r", key, existing.value)
        if self.config.on_guard_error is GuardErrorPolicy.ALLOW:
            self.store.put(key, claim, fresh_until=keep, keep_until=keep)
            return
        raise DuplicateSibling(
            metadata.chain_id, metadata.generation, None, "the step's claim item is corrupt"
        )

    def lookup(
        self, scope: str, request_id: str, patience: float = LOOKUP_PATIENCE_S
    ) -> ChainMetadata | None:
        """The chain step recorded for the execution ``request_id`` of the function ``scope`` by
        its parent, if any.

        The parent writes it just after its Invoke returns, so a sibling that spawns at once may
        ask first: a miss is asked again for up to ``patience`` seconds before it counts (a true
        chain root pays that once; a sibling taken for a root would restart the generation count).
        Raises :class:`StoreUnavailable`; a record that does not parse is ignored (logged).
        """
        # Only a table is written by other processes: a store of this process is asked once.
        backoff = Backoff(patience if self.store.shared else 0.0, first=0.1, maximum=0.4, clock=self.clock)
        while True:
            item = self.store.get(invocation_key(scope, request_id))
            if item is not None and item.value is not None and not item.is_gone(self.clock.now()):
                break
            if not backoff.wait():
                return None
        try:
            return parse_metadata(item.value)
        except ValueError as exc:
            log.warning("chain position of request %s is unreadable: %s", request_id, exc)
            return None
