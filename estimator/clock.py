"""Time as a dependency: one object that says the time and waits, real or virtual.

Everything time-dependent in the library (caches, leases, breaker back-offs, refresh policy,
position lookups, Invoke retries, kill-switch stand-ins) takes a :class:`Clock` and reads time
only through it, so tests and the AWS-time benchmark can run on a virtual clock and no outcome
depends on how fast the machine is. The default is :data:`SYSTEM_CLOCK`, the real one.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Wall time (epoch seconds), a monotonic time, and a way to wait."""

    def now(self) -> float:
        """Epoch seconds (what ``time.time()`` says on the real clock)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never steps back (for deadlines and elapsed times)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass (a no-op for zero or less)."""
        ...


class SystemClock:
    """The real clock: :func:`time.time`, :func:`time.monotonic`, :func:`time.sleep`."""

    def now(self) -> float:
        """Epoch seconds from the system clock."""
        return time.time()

    def monotonic(self) -> float:
        """The process's monotonic clock."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds`` of real time."""
        if seconds > 0:
            time.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()
"""The default clock of every component."""


class ManualClock:
    """A virtual clock for tests: time moves only when :meth:`advance` or :meth:`sleep` says.

    ``now`` and ``monotonic`` move together. A sleep advances the clock at once, so code that
    waits (a back-off, a lease wait) runs through its waits without wall time passing.
    Thread-safe.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._lock = threading.Condition()
        self._offset = 0.0
        self._start = float(start)
        self.slept = 0.0
        """Total virtual seconds spent in :meth:`sleep`."""

    def now(self) -> float:
        """Epoch seconds of virtual time."""
        with self._lock:
            return self._start + self._offset

    def monotonic(self) -> float:
        """Virtual seconds since the clock was made."""
        with self._lock:
            return self._offset

    def sleep(self, seconds: float) -> None:
        """Advance the clock by ``seconds`` without waiting."""
        if seconds > 0:
            with self._lock:
                self._offset += seconds
                self.slept += seconds
                self._lock.notify_all()

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (never back)."""
        if seconds < 0:
            raise ValueError(f"a clock does not step back: advance({seconds})")
        with self._lock:
            self._offset += seconds
            self._lock.notify_all()

    def __repr__(self) -> str:
        return f"ManualClock(now={self.now():.3f})"
