"""One circuit breaker per shared table: skip an unreachable table instead of paying its timeouts.

With DynamoDB unreachable or throttled, every call can cost the connect timeout times the SDK's
attempts, which a function near its deadline cannot afford. After such a failure the breaker
fails the next calls at once for ``backoff_seconds`` (the callers then degrade: memory and the
origin for the cache, ``on_guard_error`` for guards), then lets calls through again.

Only failures that say something about the table trip it: connectivity, throttling and 5xx.
A failure caused by one request's own input (a validation error, an item too large, access
denied on one key) is that request's problem and never changes how other requests are served.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from estimator.clock import SYSTEM_CLOCK, Clock
from estimator.exceptions import StoreUnavailable, causes

log = logging.getLogger(__name__)

T = TypeVar("T")

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "LimitExceededException",
    }
)
NETWORK_ERRORS = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)


def error_code(exc: BaseException | None) -> str | None:
    """The AWS error code behind ``exc`` (pynamodb's wrapper, botocore's ``ClientError``...)."""
    for error in causes(exc):
        code = getattr(error, "cause_response_code", None)
        if isinstance(code, str):
            return code
        response = getattr(error, "response", None)
        if isinstance(response, dict) and isinstance(response.get("Error", {}).get("Code"), str):
            return str(response["Error"]["Code"])
    return None


def _status(exc: BaseException) -> int:
    for error in causes(exc):
        response = getattr(error, "response", None)
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if isinstance(status, int):
                return status
    return 0


def trips(exc: BaseException) -> bool:
    """Whether a failure says the table is unhealthy: connectivity, throttling or a 5xx."""
    return (
        any(isinstance(error, NETWORK_ERRORS) for error in causes(exc))
        or error_code(exc) in THROTTLING_CODES
        or _status(exc) >= 500
    )


class Breaker:
    """Fails calls fast for ``backoff_seconds`` after a failure that :func:`trips` it."""

    def __init__(
        self,
        name: str,
        backoff_seconds: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = name
        self.backoff_seconds = backoff_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._last_error: StoreUnavailable | None = None

    @property
    def is_open(self) -> bool:
        """Calls are being skipped after a recent failure."""
        with self._lock:
            return self.clock.monotonic() < self._open_until

    def call(self, operation: str, action: Callable[[], T]) -> T:
        """Run ``action`` unless the breaker is open; a :class:`StoreUnavailable` that
        :func:`trips` it opens it. Raises :class:`StoreUnavailable` (``skipped`` when open)."""
        with self._lock:
            if self.clock.monotonic() < self._open_until:
                cause = self._last_error.cause if self._last_error else None
                raise StoreUnavailable(f"{operation} (skipped: {self.name} unavailable)", cause)
        try:
            return action()
        except StoreUnavailable as exc:
            if trips(exc) and self.backoff_seconds > 0:
                self._open(exc)
            raise

    def _open(self, exc: StoreUnavailable) -> None:
        with self._lock:
            was_open = self.clock.monotonic() < self._open_until
            self._open_until = self.clock.monotonic() + self.backoff_seconds
            self._last_error = exc
        if not was_open:
            log.warning(
                "shared cache unavailable (%s), using memory and the origin only for %.0f s: %s",
                self.name,
                self.backoff_seconds,
                exc,
            )
