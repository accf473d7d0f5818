"""A function's log stream as Lambda's Python runtime writes it, for the local runtime.

On Lambda, what a handler writes reaches CloudWatch Logs in one of two ways, and CloudWatch
extracts Embedded Metric Format only from a log event that *is* the EMF JSON document
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):

- ``print`` / ``sys.stdout``: each line is a log event as written, in both log formats ("if your
  function outputs logs using Python print statements, Lambda can only send log outputs to
  CloudWatch Logs in plain text format":
  https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html);
- the ``logging`` module, through the handler the runtime puts on the root logger: with
  ``LogFormat: Text`` each record becomes ``[LEVEL]\\t<time>\\t<request id>\\t<message>``; with
  ``LogFormat: JSON`` a JSON object with ``timestamp``, ``level``, ``message``, ``logger`` and
  ``requestId`` (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-logformat.html).

:class:`LogCapture` does the same for the threads the local runtime runs handlers on: a
registration with a ``log_format`` gets its stdout lines and log records written to its
stream (:meth:`LogCapture.events`) instead of the process's stdout. Other threads are untouched.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

from estimator.clock import SYSTEM_CLOCK, Clock


class LogFormat(StrEnum):
    """A function's ``LoggingConfig.LogFormat``."""

    TEXT = "Text"
    JSON = "JSON"


@dataclass(frozen=True)
class _Current:
    function_name: str
    request_id: str
    log_format: LogFormat


class LogCapture:
    """The log streams of the functions registered with a ``log_format`` (thread-safe)."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._events: dict[str, list[str]] = {}
        self._installs = 0
        self._handler = _RecordHandler(self)
        self._original: TextIO | None = None

    def bound(
        self, target: Callable[..., None], function_name: str, request_id: str,
        log_format: LogFormat | None,
    ) -> Callable[..., None]:
        """``target`` run with this thread's output written to ``function_name``'s stream
        (unchanged when ``log_format`` is ``None``)."""
        if log_format is None:
            return target

        def run(*args: Any) -> None:
            self._local.current = _Current(function_name, request_id, LogFormat(log_format))
            self._install()
            try:
                target(*args)
            finally:
                self._local.current = None
                self._uninstall()

        return run

    def events(self, function_name: str) -> list[str]:
        """The log events of ``function_name`` so far, oldest first."""
        with self._lock:
            return list(self._events.get(function_name, []))

    def current(self) -> _Current | None:
        """What the calling thread runs, when it runs a captured function."""
        return getattr(self._local, "current", None)

    def append(self, current: _Current, message: str) -> None:
        """Add one log event to ``current``'s stream."""
        with self._lock:
            self._events.setdefault(current.function_name, []).append(message)

    def format_record(self, current: _Current, record: logging.LogRecord) -> str:
        """``record`` as the runtime's root handler writes it in ``current``'s log format."""
        stamp = datetime.fromtimestamp(record.created, UTC)
        iso = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
        message = record.getMessage()
        if current.log_format is LogFormat.TEXT:
            return f"[{record.levelname}]\t{iso}\t{current.request_id}\t{message}"
        return json.dumps({
            "timestamp": iso, "level": record.levelname, "message": message,
            "logger": record.name, "requestId": current.request_id,
        })

    def _install(self) -> None:
        with self._lock:
            self._installs += 1
            if self._installs > 1:
                return
            logging.getLogger().addHandler(self._handler)
            self._original = sys.stdout
            sys.stdout = _StdoutRouter(self, sys.stdout)  # type: ignore[assignment]

    def _uninstall(self) -> None:
        with self._lock:
            self._installs -= 1
            if self._installs:
                return
            logging.getLogger().removeHandler(self._handler)
            if isinstance(sys.stdout, _StdoutRouter) and self._original is not None:
                sys.stdout = self._original
            self._original = None


class _RecordHandler(logging.Handler):
    """The runtime's root handler: records of captured threads go to their stream."""

    def __init__(self, capture: LogCapture) -> None:
        super().__init__()
        self.capture = capture

    def emit(self, record: logging.LogRecord) -> None:
        current = self.capture.current()
        if current is not None:
            self.capture.append(current, self.capture.format_record(current, record))


class _StdoutRouter:
    """``sys.stdout`` while captured functions run: their lines to their stream, the rest on."""

    def __init__(self, capture: LogCapture, original: TextIO) -> None:
        self._capture = capture
        self._original = original
        self._pending = threading.local()

    def write(self, text: str) -> int:
        current = self._capture.current()
        if current is None:
            return self._original.write(text)
        buffered = getattr(self._pending, "text", "") + text
        *lines, rest = buffered.split("\n")
        for line in lines:
            self._capture.append(current, line)
        self._pending.text = rest
        return len(text)

    def flush(self) -> None:
        current = self._capture.current()
        rest = getattr(self._pending, "text", "")
        if current is not None and rest:
            self._capture.append(current, rest)
            self._pending.text = ""
        self._original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)
