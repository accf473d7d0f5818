"""The simulator's clock: CloudWatch's time runs ``time_scale`` times faster than the wall clock.

One-minute metric resolution then fits into a run of seconds; waits and deadlines stay those
of the local runtime, which runs in real time.
"""

from __future__ import annotations

import time


class SimClock:
    """Epoch seconds running ``scale`` times faster than the wall clock from creation on.

    Only :meth:`now` (CloudWatch's time, and the estimator's cache TTLs) is scaled: waits and
    deadlines are those of the local runtime, which runs in real time.
    """

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.origin = time.time()

    def now(self) -> float:
        """The scaled time now."""
        return self.origin + (time.time() - self.origin) * self.scale

    def monotonic(self) -> float:
        """The real monotonic clock (the runtime's deadlines are real)."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """A real sleep (executions wait in real time)."""
        if seconds > 0:
            time.sleep(seconds)
