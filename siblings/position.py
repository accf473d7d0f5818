"""Where this execution sits in its chain: the one answer, from four sources in one order.

:func:`chain_position` asks, and the first that knows answers:

1. **the event** the handler passed to ``spawn_sibling(event=...)``: its reserved key
   (:func:`~siblings.metadata.metadata_of`; no key: a chain root);
2. **what** ``load_payload(event, context)`` **saw** for this request id, remembered in the
   process (:func:`~siblings.metadata.recall`; it may remember "a root");
3. **the reserved key left in the payload** being spawned (a handler that passes its event on
   as the payload);
4. **the parent's record under this request id** in the shared table
   (:meth:`~siblings.runs.RunClaims.lookup`): a handler that never read its event. The answer,
   found or not, is remembered (asked once per execution).

``None`` means a new chain starts here. When source 4 cannot be asked
(:class:`StoreUnavailable`), ``on_guard_error=allow`` starts a new chain (said in the log, not
remembered, so the next spawn asks again); otherwise the error is raised and the spawn refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from siblings.config import GuardErrorPolicy
from siblings.context import InvocationInfo
from siblings.errors import StoreUnavailable
from siblings.metadata import ChainMetadata, metadata_of, parse_metadata, recall, remember
from siblings.runs import RunClaims, lookup_patience

log = logging.getLogger(__name__)


def chain_position(
    info: InvocationInfo, event: Any, embedded: Any, runs: RunClaims
) -> ChainMetadata | None:
    """This execution's place in its chain (see the module docstring); ``None``: a root.

    ``embedded`` is the reserved key found in the payload (``None``: none). Raises
    ``TypeError`` for an event that is not a dict, ``ValueError`` for an unreadable reserved
    key, :class:`StoreUnavailable` when only the table could tell and it cannot be asked.
    """
    if event is not None:
        if not isinstance(event, Mapping):
            raise TypeError(f"event must be a dict, got {type(event).__name__}")
        return metadata_of(event)
    if info.request_id:
        known, metadata = recall(info.request_id)
        if known:
            return metadata
    if embedded is not None:
        return parse_metadata(embedded)
    if info.request_id:
        return _recorded_position(info, info.request_id, runs, lookup_patience(info, runs.config))
    return None


def _recorded_position(
    info: InvocationInfo, request_id: str, runs: RunClaims, patience: float
) -> ChainMetadata | None:
    """Source 4: the position the parent recorded under this execution's request id (asked
    again for ``patience`` seconds: none once the execution has run a few seconds)."""
    try:
        metadata = runs.lookup(info.ref.scope, request_id, patience)
    except StoreUnavailable as exc:
        if runs.config.on_guard_error is not GuardErrorPolicy.ALLOW:
            raise  # refused: a new chain here would reset the generation count
        log.warning("chain position of %s unknown (%s): a new chain (on_guard_error=allow)", request_id, exc)
        return None  # not remembered: the next spawn of this execution asks again
    if metadata is None:
        log.info("no chain position recorded for request %s: a new chain starts here", request_id)
    remember(request_id, metadata)
    return metadata
