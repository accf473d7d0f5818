"""``SpawnResult``: what one ``spawn_sibling`` call decided, truthy when a sibling was invoked."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """Why ``spawn_sibling`` decided what it did (``SpawnResult.reason``)."""

    SPAWNED = "spawned"
    """A sibling was invoked."""
    DUPLICATE = "duplicate"
    """This chain step was already spawned (a retry or a racing thread): no new invoke."""
    DRY_RUN = "dry_run"
    """``dry_run`` is configured: Lambda checked the call, nothing was started."""
    KILL_SWITCH = "kill_switch"
    """Refused: an operator disabled spawning for the function (``siblings disable FN``)."""
    MAX_GENERATIONS = "max_generations"
    """Refused: the chain already reached ``max_generations``."""
    MAX_CHAIN_SECONDS = "max_chain_seconds"
    """Refused: the chain began ``max_chain_seconds`` or more ago (see :mod:`siblings.budget`)."""
    RULES_DISABLED = "rules_disabled"
    """Refused: no EventBridge rule targeting the function is enabled, nor any schedule named in
    ``trigger_schedules``, and ``auto_spawning`` is off."""
    MAX_CONCURRENCY = "max_concurrency"
    """Refused: the estimated concurrency is at or above ``max_concurrency``."""
    ACCOUNT_HEADROOM = "account_headroom"
    """Refused: the account (or the function's reserved concurrency) is within
    ``min_account_headroom`` executions of its concurrency limit."""
    RECURSIVE_LOOP = "recursive_loop"
    """Refused: the function's ``RecursiveLoop`` is ``Terminate`` (Lambda's default), so Lambda
    would drop the chain after 16 invocations while the Invoke still answered 202; set
    ``RecursiveLoop: Allow`` on the function (the library's own guards replace AWS's)."""
    GUARD_ERROR = "guard_error"
    """Refused: a guard could not be answered and ``on_guard_error`` is ``refuse``."""
    FAILED = "failed"
    """The spawn was allowed but the Invoke failed (logged; the call raised ``SpawnFailed``)."""
    DEFERRED = "deferred"
    """Only a capacity guard refused and deferral is on: the sibling's event was scheduled to
    start at ``SpawnResult.deferred_until`` (see :mod:`siblings.defer`)."""


REFUSALS = frozenset(
    {
        Reason.KILL_SWITCH,
        Reason.MAX_GENERATIONS,
        Reason.MAX_CHAIN_SECONDS,
        Reason.RULES_DISABLED,
        Reason.MAX_CONCURRENCY,
        Reason.ACCOUNT_HEADROOM,
        Reason.RECURSIVE_LOOP,
        Reason.GUARD_ERROR,
    }
)
"""Every refusal reason."""


class Decision(StrEnum):
    """The one classification of a ``spawn_sibling`` outcome (:attr:`SpawnResult.decision`):
    the counters, the log line, the metrics and the chain log all use it."""

    SPAWNED = "spawned"
    DUPLICATE = "duplicate"
    DRY_RUN = "dry_run"
    REFUSED = "refused"
    FAILED = "failed"
    DEFERRED = "deferred"


_DECISIONS: dict[str, Decision] = {
    Reason.SPAWNED: Decision.SPAWNED,
    Reason.DUPLICATE: Decision.DUPLICATE,
    Reason.DRY_RUN: Decision.DRY_RUN,
    Reason.FAILED: Decision.FAILED,
    Reason.DEFERRED: Decision.DEFERRED,
    **{reason: Decision.REFUSED for reason in REFUSALS},
}

DEFERRABLE = frozenset({Reason.MAX_CONCURRENCY, Reason.ACCOUNT_HEADROOM})
"""The refusals that a deferral may replace: capacity, which passes. Never the kill switch,
the generation limit, the chain budget, the rule state or a guard error."""


@dataclass(frozen=True)
class SpawnResult:
    """The outcome of :meth:`siblings.SiblingsManager.spawn_sibling`.

    ``bool(result)`` is true when a sibling was invoked by this call or, for a duplicate, by
    the first call of the same chain step, or when it was deferred (scheduled to start later).
    Refusals are results, not exceptions; a spawn that was allowed but failed raises
    :class:`~siblings.SpawnFailed`.
    """

    spawned: bool
    """A sibling exists for this chain step (invoked now, or earlier for a duplicate)."""
    reason: str
    """A :class:`Reason`: ``spawned``, ``duplicate``, ``dry_run`` or one of :data:`REFUSALS`."""
    function_arn: str
    """The ARN invoked (alias or version kept from ``invoked_function_arn``)."""
    chain_id: str
    """Identifier shared by every execution of one chain (the root's request id)."""
    generation: int
    """Generation of the sibling (the root execution is generation 0)."""
    parent_request_id: str | None = None
    """``aws_request_id`` of the execution that asked for the spawn."""
    request_id: str | None = None
    """Request id of the async Invoke that created the sibling."""
    forced: bool = False
    """``force=True`` was given (EventBridge and concurrency guards skipped)."""
    offloaded: bool = False
    """The payload went to S3 and the sibling received a pointer."""
    payload_key: str | None = None
    """S3 key of the offloaded payload."""
    duplicate: bool = False
    """The step was spawned before; this result repeats the first one."""
    detail: str = ""
    """Human-readable explanation (which rule, which estimate, which error)."""
    guards: dict[str, Any] = field(default_factory=dict)
    """How each guard answered (value and source), for logs and debugging."""
    deferred: bool = False
    """A capacity guard refused and the sibling was scheduled to start later instead."""
    deferred_until: float | None = None
    """Epoch seconds when the deferred sibling's schedule fires."""
    deferred_for: str | None = None
    """The capacity refusal (one of :data:`DEFERRABLE`) that was deferred."""
    deferrals: int = 0
    """How many times this chain step has been deferred, this one included."""
    chain_started_at: float | None = None
    """Epoch seconds when the chain began (what ``max_chain_seconds`` counts from)."""

    def __bool__(self) -> bool:
        return self.spawned or self.deferred

    @property
    def decision(self) -> Decision:
        """What kind of outcome this is (a refusal reason is :attr:`Decision.REFUSED`)."""
        return _DECISIONS.get(self.reason, Decision.REFUSED)  # a reason of another version

    @property
    def refused(self) -> bool:
        """A guard said no."""
        return self.reason in REFUSALS

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy (what the structured log line carries)."""
        return dataclasses.asdict(self)


def duplicate_of(first: dict[str, Any], guards: dict[str, Any]) -> SpawnResult:
    """The result of a repeated chain step: the first spawn's result (as recorded), marked
    ``duplicate``, with this call's guard answers."""
    try:
        original = SpawnResult(**first)
    except TypeError:  # a record written by another version: keep what can be trusted
        original = SpawnResult(
            spawned=True, reason=Reason.SPAWNED, function_arn="", chain_id="", generation=0
        )
    return dataclasses.replace(
        original,
        spawned=True,
        reason=Reason.DUPLICATE,
        duplicate=True,
        detail="this chain step was already spawned; returning the first result",
        guards=guards,
    )
