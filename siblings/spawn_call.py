"""The per-call state of one ``spawn_sibling`` decision, passed whole instead of in parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from siblings.context import InvocationInfo
from siblings.keys import spawn_key
from siblings.metadata import ChainMetadata
from siblings.payload import EncodedEvent
from siblings.result import Reason, SpawnResult


@dataclass
class SpawnCall:
    """One ``spawn_sibling`` call: what it asks for, and what its guards said so far."""

    info: InvocationInfo
    child: ChainMetadata
    encoded: EncodedEvent
    forced: bool
    started: float
    """``time.monotonic()`` when the call began (for the logged latency)."""
    guards: dict[str, Any] = field(default_factory=dict)
    """How each guard answered, copied into the result."""
    guard_ms: float | None = None
    """How long the guards took (the claim included), once they have run."""
    defer: bool = False
    """A capacity refusal is deferred instead (:mod:`siblings.defer`)."""
    deferrals: int = 0
    """How often this step was deferred before (a relay of a deferral carries the count)."""
    deadline: float | None = None
    """The ``clock.monotonic()`` value by which the call's AWS calls must be done
    (:func:`~siblings.context.spawn_deadline`, taken when the call began); ``None``: taken
    when the decision starts."""

    @property
    def key(self) -> str:
        """The spawn record key of the step this call would create."""
        return spawn_key(self.info.ref.scope, self.child.chain_id, self.child.generation)

    def result(self, reason: Reason, **fields: Any) -> SpawnResult:
        """The call's :class:`SpawnResult` with ``reason`` and any other ``fields``."""
        return SpawnResult(
            spawned=fields.pop("spawned", reason is Reason.SPAWNED),
            reason=reason,
            function_arn=self.info.function_arn,
            chain_id=self.child.chain_id,
            generation=self.child.generation,
            parent_request_id=self.info.request_id,
            forced=self.forced,
            guards=self.guards,
            chain_started_at=self.child.chain_started_at,
            **fields,
        )
