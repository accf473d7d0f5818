"""Virtual AWS time for the benchmarks: one clock that every time-dependent part reads.

The simulation runs one execution's decision at a time (discrete events in AWS time). While a
decision runs, :meth:`VirtualClock.now` is that execution's time; a sleep inside it (an SDK
retry, a wait for another execution's refresh) moves that execution's time forward only, so
sleeps cost no wall time and never hold up the rest of the fleet. Each execution's next
decision is scheduled from the time its decision ended.

What reads this clock: the library (estimator, cache tiers, breakers, kill switch, refresh
waits: injected), the quota layer's token buckets and the benchmark's meters (injected),
botocore's retry sleeps and sosw's ``datetime.now()`` (patched here, for the benchmark's
process only).
"""

from __future__ import annotations

import datetime as _dt
import types
from typing import Any


class VirtualClock:
    """Epoch seconds of AWS time, set per decision; :meth:`sleep` advances it.

    An :class:`estimator.clock.Clock` (``now``, ``monotonic``, ``sleep``): the library takes it
    as it takes the real clock. ``monotonic`` is ``now`` (virtual time never steps back).
    """

    def __init__(self, start: float) -> None:
        self.start = float(start)
        self._now = float(start)
        self.slept = 0.0
        """Total virtual seconds spent sleeping (SDK backoffs, refresh waits)."""

    def now(self) -> float:
        """The running execution's time (epoch seconds)."""
        return self._now

    def monotonic(self) -> float:
        """The running execution's time (deadlines and elapsed times)."""
        return self._now

    def set(self, when: float) -> None:
        """Start an event (a decision) at ``when``."""
        self._now = float(when)

    def sleep(self, seconds: float) -> None:
        """Pass ``seconds`` of the running execution's time, at no wall-clock cost."""
        if seconds > 0:
            self._now += seconds
            self.slept += seconds

    def elapsed(self) -> float:
        """Seconds of AWS time since :attr:`start`."""
        return self._now - self.start

    def utcnow(self) -> _dt.datetime:
        """The time as a naive UTC datetime (what ``datetime.now()`` gives on Lambda)."""
        return _dt.datetime.fromtimestamp(self._now, tz=_dt.UTC).replace(tzinfo=None)


class _TimeModule:
    """Stands in for the ``time`` module in botocore's endpoint: its retry sleeps are virtual."""

    def __init__(self, clock: VirtualClock, real: types.ModuleType) -> None:
        self._clock = clock
        self._real = real

    def sleep(self, seconds: float) -> None:
        self._clock.sleep(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def patch_sdk_sleep(clock: VirtualClock) -> None:
    """Make botocore's retry backoffs (``time.sleep`` in ``botocore.endpoint``) pass virtual time."""
    import time

    import botocore.endpoint

    botocore.endpoint.time = _TimeModule(clock, time)  # type: ignore[attr-defined]


def patch_sosw_clock(clock: VirtualClock) -> None:
    """sosw 0.7.47 builds its metric window from ``datetime.datetime.now()``: give it AWS time.

    Only the module's name ``datetime`` is replaced (by a namespace whose ``datetime.now()``
    reads the virtual clock); sosw's code is run as published.
    """
    import sosw.components.siblings as sosw_siblings

    class _VirtualDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz: _dt.tzinfo | None = None) -> _VirtualDatetime:  # type: ignore[override]
            moment = clock.utcnow()
            if tz is not None:
                moment = moment.replace(tzinfo=_dt.UTC).astimezone(tz)
            return cls(
                moment.year, moment.month, moment.day, moment.hour, moment.minute,
                moment.second, moment.microsecond, moment.tzinfo,
            )

    sosw_siblings.datetime = types.SimpleNamespace(  # type: ignore[attr-defined]
        datetime=_VirtualDatetime, timedelta=_dt.timedelta
    )
