"""One circuit breaker per shared table: skip an unreachable table instead of paying its timeouts.

With DynamoDB unreachable or throttled, every call can cost the connect timeout times the SDK's
attempts, which a function near its deadline cannot afford. After such a failure the breaker
fails the next calls at once for ``backoff_seconds`` (the callers then degrade: memory and the
origin for the cache, ``on_guard_error`` for guards), then lets calls through again.

Only failures that say something about the table trip it: connectivity, throttling and 5xx
(:func:`trips`, the one definition of an *outage*, for which stale values may stand in).
A failure caused by one request's own input (a validation error, an item too large, a
condition) is that request's problem and never changes how other requests are served.

Configuration errors are neither: the table does not exist (every operation is skipped) or the
role may not make one operation (that operation is skipped), for ``backoff_seconds`` too, so a
process does not pay a doomed request on every call; each is logged once per process with its
fix. Skipped calls raise the class of the error that stopped them, so a caller can still tell
an outage from a configuration error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from estimator.clock import SYSTEM_CLOCK, Clock
from estimator.exceptions import (
    StoreAccessDenied,
    StoreThrottled,
    StoreUnavailable,
    StoreUnreachable,
    TableMissing,
    UnprocessedKeys,
)
from estimator.failures import FailureKind, classify

log = logging.getLogger(__name__)

T = TypeVar("T")


def error_code(exc: BaseException | None) -> str | None:
    """The AWS error code behind ``exc`` (pynamodb's wrapper, botocore's ``ClientError``...)."""
    return None if exc is None else classify(exc).code


def trips(exc: BaseException) -> bool:
    """Whether a failure says the table is unhealthy: connectivity, throttling or a 5xx.

    A batch that read some of its keys (:class:`UnprocessedKeys` with ``found``) says the
    table answers: it does not trip.
    """
    if isinstance(exc, UnprocessedKeys) and exc.found:
        return False
    if isinstance(exc, StoreThrottled | StoreUnreachable):
        return True
    failure = classify(exc)
    # Any 5xx, whatever its code says (SERVER_ERROR is only the 5xx no other kind claimed).
    return failure.kind in _OUTAGES or failure.status >= 500


_OUTAGES = frozenset({FailureKind.THROTTLED, FailureKind.UNREACHABLE})


_ALL = "*"
_said: set[tuple[str, str, str]] = set()
_said_lock = threading.Lock()


def _say_once(name: str, operation: str, exc: StoreUnavailable, backoff: float) -> None:
    """Log a configuration error with its fix, once per process per table, kind and operation."""
    kind = type(exc).__name__
    scope = _ALL if isinstance(exc, TableMissing) else operation
    with _said_lock:
        if (name, kind, scope) in _said:
            return
        _said.add((name, kind, scope))
    if isinstance(exc, TableMissing):
        fix = (
            "create it with `siblings create-table` (or deploy template.yaml), or point "
            "SIBLINGS_TABLE_NAME / SIBLINGS_REGION_NAME at the right one"
        )
    else:
        fix = (
            f"grant dynamodb:{operation} on the table to this role (the policy in the deploy "
            "guide, or `siblings doctor`), or check its credentials"
        )
    log.error(
        "%s: %s (%s); the table is not asked for %s again for %.0f s. Fix: %s",
        name,
        exc,
        exc.code or kind,
        "anything" if scope == _ALL else operation,
        backoff,
        fix,
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
        # Operations skipped after a configuration error ("*": every one), until when and why.
        self._blocked: dict[str, tuple[float, StoreUnavailable]] = {}

    @property
    def is_open(self) -> bool:
        """Calls are being skipped after a recent failure."""
        with self._lock:
            return self.clock.monotonic() < self._open_until

    def call(self, operation: str, action: Callable[[], T]) -> T:
        """Run ``action`` unless the breaker is open (or ``operation`` blocked); a
        :class:`StoreUnavailable` that :func:`trips` it opens it, a configuration error blocks
        what it concerns. Raises :class:`StoreUnavailable` (``skipped`` when open), of the
        class of the error that stopped it."""
        stopped = self._stopped_by(operation)
        if stopped is not None:
            kind = StoreThrottled if isinstance(stopped, UnprocessedKeys) else type(stopped)
            raise kind(
                f"{operation} (skipped: {self.name} unavailable)", stopped.cause, stopped.code
            )
        try:
            return action()
        except StoreUnavailable as exc:
            if self.backoff_seconds > 0:
                if trips(exc):
                    self._open(exc)
                elif isinstance(exc, TableMissing | StoreAccessDenied):
                    self._block(operation, exc)
            raise

    def _stopped_by(self, operation: str) -> StoreUnavailable | None:
        now = self.clock.monotonic()
        with self._lock:
            if now < self._open_until:
                return self._last_error or StoreUnavailable(operation, None)
            for scope in (_ALL, operation):
                blocked = self._blocked.get(scope)
                if blocked is not None and now < blocked[0]:
                    return blocked[1]
        return None

    def _block(self, operation: str, exc: StoreUnavailable) -> None:
        scope = _ALL if isinstance(exc, TableMissing) else operation
        with self._lock:
            self._blocked[scope] = (self.clock.monotonic() + self.backoff_seconds, exc)
        _say_once(self.name, operation, exc, self.backoff_seconds)

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
