"""Which executions did work, seen from the work itself rather than from handlers' reports.

A handler's report of what it did is lost with an attempt that crashed, and a handler that
started a chain step it should not have would not say so. The fleet therefore notes each unit
of work where it happens (:meth:`WorkLog.note` from the work function), under the request id
of the execution running it; the verification then counts work starts per chain step
(:mod:`siblings.local.verify`).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any


class WorkLog:
    """Units of work done per execution (request id); thread-safe.

    Wrap each container's handler with :meth:`wrap` and call :meth:`note` from its work loop:
    the attempt running on the calling thread is the one credited. Lambda's retries of an
    execution keep its request id, so they add to the same entry.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._units: Counter[str] = Counter()
        self._local = threading.local()

    def wrap(self, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """``handler`` with its work credited to the request id of the attempt running it."""

        def working(event: Any, context: Any) -> Any:
            self._local.request_id = str(getattr(context, "aws_request_id", "") or "")
            try:
                return handler(event, context)
            finally:
                self._local.request_id = None

        return working

    def note(self) -> None:
        """One unit of work done by the attempt running on this thread."""
        request_id = getattr(self._local, "request_id", None)
        if request_id:
            with self._lock:
                self._units[request_id] += 1

    def started(self) -> dict[str, int]:
        """Units of work done so far, by request id (executions that did none are absent)."""
        with self._lock:
            return dict(self._units)
