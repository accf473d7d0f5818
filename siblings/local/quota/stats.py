"""The quota layer's counts, and the reserved paths that serve them over HTTP."""

from __future__ import annotations

from dataclasses import dataclass

RESERVED_PREFIX = "/_quota/"
"""Paths under this prefix are the layer's own API, never passed to moto."""


@dataclass
class CallStats:
    """Server-side counts of one ``(service, action)``."""

    calls: int = 0
    """Requests received, retries and throttled ones included."""
    throttled: int = 0
    """Requests answered with a throttling error by this layer."""
    retries: int = 0
    """Requests that were SDK retries (attempt 2 or later)."""
    unprocessed: int = 0
    """Batch items (BatchGetItem keys, BatchWriteItem requests) answered as unprocessed
    because their partition was over its rate, their batch otherwise served."""
