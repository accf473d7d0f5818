"""Waiting for another execution's write: doubling delays, bounded by a deadline."""

from __future__ import annotations

from estimator.clock import SYSTEM_CLOCK, Clock

FIRST_DELAY_S = 0.05
MAX_DELAY_S = 0.5


class Backoff:
    """Sleeps ``first``, ``2*first``... (at most ``maximum``) between polls, until ``timeout``.

    ``clock`` is injectable so that tests need not wait.
    """

    def __init__(
        self,
        timeout: float,
        *,
        first: float = FIRST_DELAY_S,
        maximum: float = MAX_DELAY_S,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._clock = clock
        self._deadline = clock.monotonic() + max(0.0, timeout)
        self._delay = first
        self._maximum = maximum

    def wait(self) -> bool:
        """Sleep before the next poll; False (without sleeping) once the deadline has passed.

        The last sleep is cut to the deadline, so the total never exceeds ``timeout``.
        """
        remaining = self._deadline - self._clock.monotonic()
        if remaining <= 0:
            return False
        self._clock.sleep(min(self._delay, remaining))
        self._delay = min(self._delay * 2, self._maximum)
        return True
