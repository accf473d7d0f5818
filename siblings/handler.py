"""Handler helpers: a time budget read from the Lambda context, and a one-object worker loop.

A worker that processes a cursor and hands the rest to a sibling before its deadline::

    from siblings import Invocation

    def lambda_handler(event, context):
        run = Invocation(event, context, shutdown_seconds=10)
        cursor = run.payload.get("cursor", 0)          # S3-offloaded payloads resolved
        while run.sufficient_execution_time_left:      # remaining time > shutdown period
            if cursor >= 1000:
                return {"done": True, "generation": run.generation}
            process(cursor)
            cursor += 1
        result = run.spawn_sibling({"cursor": cursor}) # guarded, idempotent, SpawnResult
        return result.to_dict()

* :class:`Invocation` ``(event, context, *, shutdown_seconds=10.0, manager=None)``:
  ``payload`` (the event without the reserved key), ``duplicate`` (another execution already
  runs this chain step: return at once), ``chain_id``, ``generation``,
  ``sufficient_execution_time_left``, ``remaining_seconds``, ``spawn_sibling(payload=None,
  force=False)``. It tells the manager the incoming chain metadata, so the generation limit
  and idempotency work without further arguments. ``manager`` defaults to one shared
  :class:`~siblings.SiblingsManager` built from the ``SIBLINGS_*`` environment.
* :class:`TimeBudget` ``(context, shutdown_seconds=10.0)`` and
  :func:`sufficient_execution_time_left` ``(context, shutdown_seconds=10.0)`` for code that
  keeps its own loop (sosw's ``Processor`` property of the same name, as a function).

The remaining time always comes from ``context.get_remaining_time_in_millis()``; the shutdown
period is the time kept back to stop cleanly and spawn (a few seconds is plenty when the guards
are cached; allow for Invoke retries on a throttled account).
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING, Any

from siblings.defer import StepRelayed
from siblings.errors import DuplicateSibling
from siblings.metadata import ChainMetadata, metadata_of

if TYPE_CHECKING:
    from siblings.manager import SiblingsManager
    from siblings.result import SpawnResult

log = logging.getLogger(__name__)

DEFAULT_SHUTDOWN_SECONDS = 10.0
"""Time kept back by default (sosw's example uses ``shutdown_period: 10``)."""

_default_lock = threading.Lock()
_default: SiblingsManager | None = None


def default_manager() -> SiblingsManager:
    """One :class:`~siblings.SiblingsManager` per process, built on first use from the
    environment (a warm container reuses its clients and caches)."""
    global _default
    with _default_lock:
        if _default is None:
            from siblings.manager import SiblingsManager

            _default = SiblingsManager()
        return _default


def _check_shutdown(shutdown_seconds: Any) -> float:
    if isinstance(shutdown_seconds, bool) or not isinstance(shutdown_seconds, int | float):
        raise TypeError(f"shutdown_seconds must be a number, got {type(shutdown_seconds).__name__}")
    if not math.isfinite(shutdown_seconds) or shutdown_seconds < 0:
        raise ValueError(f"shutdown_seconds must be >= 0, got {shutdown_seconds!r}")
    return float(shutdown_seconds)


class TimeBudget:
    """The time an execution has left, minus a shutdown period kept back to stop cleanly."""

    def __init__(self, lambda_context: Any, shutdown_seconds: float = DEFAULT_SHUTDOWN_SECONDS):
        remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
        if not callable(remaining):
            raise TypeError(
                "lambda_context has no get_remaining_time_in_millis(): pass the context "
                f"object your handler received, got {type(lambda_context).__name__}"
            )
        self._remaining_ms = remaining
        self.shutdown_seconds = _check_shutdown(shutdown_seconds)

    @property
    def remaining_seconds(self) -> float:
        """Seconds until Lambda stops the execution."""
        return float(self._remaining_ms()) / 1000.0

    @property
    def sufficient_execution_time_left(self) -> bool:
        """More than the shutdown period is left: keep working."""
        return self.remaining_seconds > self.shutdown_seconds

    def __bool__(self) -> bool:
        return self.sufficient_execution_time_left


def sufficient_execution_time_left(
    lambda_context: Any, shutdown_seconds: float = DEFAULT_SHUTDOWN_SECONDS
) -> bool:
    """Whether more than ``shutdown_seconds`` remain in this execution."""
    return TimeBudget(lambda_context, shutdown_seconds).sufficient_execution_time_left


class Invocation:
    """One execution of a sibling-spawning worker: its payload, chain position and time budget.

    Reading the event here strips the reserved key, resolves an S3-offloaded payload and
    tells the manager where this execution sits in its chain.
    """

    def __init__(
        self,
        event: Any,
        lambda_context: Any,
        *,
        shutdown_seconds: float = DEFAULT_SHUTDOWN_SECONDS,
        manager: SiblingsManager | None = None,
    ) -> None:
        self.manager = manager if manager is not None else default_manager()
        self.event = event
        self.context = lambda_context
        self.budget = TimeBudget(lambda_context, shutdown_seconds)
        self.metadata: ChainMetadata | None = metadata_of(event)
        self.duplicate: DuplicateSibling | None = None
        """Set when another execution already runs this chain step: return at once."""
        try:
            self.payload: dict[str, Any] = self.manager.load_payload(event, lambda_context)
        except DuplicateSibling as exc:
            log.warning("%s; this execution does no work", exc)
            self.duplicate = exc
            self.payload = {}

    @property
    def generation(self) -> int:
        """0 for a chain root, then 1, 2... for each sibling."""
        return self.metadata.generation if self.metadata is not None else 0

    @property
    def chain_id(self) -> str | None:
        """The chain's id (``None`` for a root until it spawns: it is the root's request id)."""
        if self.metadata is not None:
            return self.metadata.chain_id
        return getattr(self.context, "aws_request_id", None)

    @property
    def remaining_seconds(self) -> float:
        """Seconds until Lambda stops the execution."""
        return self.budget.remaining_seconds

    @property
    def sufficient_execution_time_left(self) -> bool:
        """More than the shutdown period is left: keep working. Always False for a
        :attr:`duplicate`, so that a ``while`` loop on it does no work."""
        return self.duplicate is None and self.budget.sufficient_execution_time_left

    def spawn_sibling(self, payload: Any = None, force: bool = False) -> SpawnResult:
        """Hand ``payload`` to a sibling through the manager's guards; see
        :meth:`siblings.SiblingsManager.spawn_sibling`. A :attr:`duplicate` spawns nothing."""
        if isinstance(self.duplicate, StepRelayed):  # this execution relayed a deferred spawn
            return self.duplicate.result
        if self.duplicate is not None:
            return self.manager.refuse_duplicate(self.context, self.duplicate)
        return self.manager.spawn_sibling(self.context, payload, force, event=self.event)
