"""The reserved key every sibling event carries: chain id, generation, parent request id.

A sibling's event is the caller's payload (a JSON object) plus one key, :data:`METADATA_KEY`::

    {"cursor": 42, "__siblings__": {"v": 1, "chain_id": "9c1e...", "generation": 3,
                                    "parent_request_id": "5f0a...", "spawned_at": 1767225600.0,
                                    "chain_started_at": 1767225480.0}}

When the payload was offloaded to S3 the event holds only the key, with a ``payload`` pointer
(see :mod:`siblings.payload`). ``siblings.load_payload(event)`` strips the key.

The chain id is the ``aws_request_id`` of the execution that started the chain (the root,
generation 0); every sibling carries it on, one generation more than its parent.

``spawn_sibling`` does not receive the event, so it must learn the incoming metadata some other
way. In order of precedence: the ``event=`` argument; what ``load_payload(event, context)``
remembered for the context's request id; the reserved key left inside the payload passed to
``spawn_sibling`` (when the caller re-sends a modified copy of its event). With none of these
the execution is treated as a chain root; the generation limit then cannot see the chain.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache

METADATA_KEY = "__siblings__"
"""The one reserved top-level key of a sibling event."""
METADATA_VERSION = 1
MAX_GENERATION = 1_000_000
"""The largest generation an event may carry (``max_generations`` cannot be set higher)."""

_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_YEAR_3000 = 32_503_680_000.0

_REMEMBERED_MAX = 256


@dataclass(frozen=True)
class ChainMetadata:
    """Where an execution sits in its chain."""

    chain_id: str
    """The root execution's request id, shared by every generation."""
    generation: int
    """0 for the root, parent's generation + 1 for each sibling."""
    parent_request_id: str | None = None
    """Request id of the execution that spawned this one (``None`` for the root)."""
    spawned_at: float | None = None
    """Epoch seconds when the parent invoked this execution."""
    chain_started_at: float | None = None
    """Epoch seconds when the chain began: the root's first spawn decision (the root's own
    start is not known to it), carried unchanged by every sibling; ``max_chain_seconds``
    counts from it (:mod:`siblings.budget`). ``None`` for a root, and in events of versions
    that did not carry it."""

    def child(self, parent_request_id: str | None, now: float) -> ChainMetadata:
        """The metadata of a sibling spawned by this execution at ``now`` (the caller's clock)."""
        spawned_at = now
        # An event of an older version carries no chain start: its own spawn stands in (later
        # than the true start, so its budget is never shorter than configured).
        started = self.chain_started_at if self.chain_started_at is not None else self.spawned_at
        return ChainMetadata(
            chain_id=self.chain_id,
            generation=self.generation + 1,
            parent_request_id=parent_request_id,
            spawned_at=spawned_at,
            chain_started_at=spawned_at if started is None else started,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form put under :data:`METADATA_KEY`."""
        return {
            "v": METADATA_VERSION,
            "chain_id": self.chain_id,
            "generation": self.generation,
            "parent_request_id": self.parent_request_id,
            "spawned_at": self.spawned_at,
            "chain_started_at": self.chain_started_at,
        }


def root_metadata(request_id: str) -> ChainMetadata:
    """The metadata of a chain root: the chain id is its own request id, so a retried root
    (Lambda reuses the request id) maps to the same chain."""
    return ChainMetadata(chain_id=request_id, generation=0)


def check_id(label: str, value: Any) -> str:
    """Return ``value`` if it is a valid id (chain or request id), else raise ``ValueError``.

    Ids end up in table keys and S3 keys, so only what Lambda's request ids use is accepted:
    1-128 letters, digits, ``-`` and ``_``.
    """
    if not isinstance(value, str) or not _ID.match(value):
        shown = value if not isinstance(value, str) or len(value) <= 80 else value[:80] + "..."
        raise ValueError(f"{label} must be 1-128 letters, digits, '-' or '_', got {shown!r}")
    return value


def parse_metadata(raw: Any) -> ChainMetadata:
    """Validate the value found under :data:`METADATA_KEY`; ``ValueError`` when malformed.

    A malformed key is an error rather than "no chain": silently restarting at generation 0
    would defeat the generation limit. Checked before any AWS call: the chain id and request
    ids by :func:`check_id`, the generation in 0..:data:`MAX_GENERATION`, the time finite.
    """
    where = f"event[{METADATA_KEY!r}]"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be an object, got {type(raw).__name__}")
    version = raw.get("v", METADATA_VERSION)
    if version != METADATA_VERSION or isinstance(version, bool):
        raise ValueError(f"{where}['v'] is {version!r}; this library reads version {METADATA_VERSION}")
    chain_id = check_id(f"{where}['chain_id']", raw.get("chain_id"))
    generation = raw.get("generation")
    if isinstance(generation, bool) or not isinstance(generation, int) or not (
        0 <= generation <= MAX_GENERATION
    ):
        raise ValueError(f"{where}['generation'] must be an int in 0..{MAX_GENERATION}")
    parent = raw.get("parent_request_id")
    if parent is not None:
        check_id(f"{where}['parent_request_id']", parent)
    spawned_at = _epoch(raw, "spawned_at", where)
    started = _epoch(raw, "chain_started_at", where)
    if started is not None and spawned_at is not None and started > spawned_at:
        raise ValueError(f"{where}['chain_started_at'] is after its own step's spawned_at")
    return ChainMetadata(
        chain_id=chain_id,
        generation=generation,
        parent_request_id=parent,
        spawned_at=spawned_at,
        chain_started_at=started,
    )


def _epoch(raw: Mapping[str, Any], name: str, where: str) -> float | None:
    """The optional epoch-seconds field ``name``: ``ValueError`` unless a finite time in range
    (whether the clock can believe it is the reader's check: :mod:`siblings.budget`)."""
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < _YEAR_3000:
        raise ValueError(f"{where}[{name!r}] must be epoch seconds")
    return float(value)


def metadata_of(event: Any) -> ChainMetadata | None:
    """The chain metadata of an event, ``None`` when the event is not a sibling event."""
    if not isinstance(event, Mapping) or METADATA_KEY not in event:
        return None
    return parse_metadata(event[METADATA_KEY])


class _Remembered:
    """Incoming metadata by request id, so ``spawn_sibling(context)`` finds what
    ``load_payload(event, context)`` saw. Keyed by request id because a warm container runs
    many executions one after another: a plain "last event" would leak across them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: LRUCache[str, tuple[ChainMetadata | None]] = LRUCache(maxsize=_REMEMBERED_MAX)

    def put(self, request_id: str, metadata: ChainMetadata | None) -> None:
        """Record ``metadata`` for ``request_id``, forgetting the least recent beyond the bound."""
        with self._lock:
            self._items[request_id] = (metadata,)  # boxed: None is a value here (a root)

    def get(self, request_id: str) -> tuple[bool, ChainMetadata | None]:
        """``(known, metadata)`` for ``request_id``."""
        with self._lock:
            found = self._items.get(request_id)
        return (True, found[0]) if found is not None else (False, None)


_remembered = _Remembered()


def remember(request_id: str, metadata: ChainMetadata | None) -> None:
    """Record the incoming metadata (``None``: a root) of the execution ``request_id``."""
    _remembered.put(request_id, metadata)


def recall(request_id: str) -> tuple[bool, ChainMetadata | None]:
    """``(known, metadata)`` recorded by :func:`remember` for ``request_id``."""
    return _remembered.get(request_id)
