"""When a process reads, refreshes or holds back, so that a fleet does not move as one.

Thousands of containers caching one value would otherwise act in the same instant: every
memory entry expires at the item's shared ``fresh_until``, every container reads the item then,
and every one of them tries for the refresh lease; with the table down, every one asks the
origin itself. Three rules spread them out:

* **jittered memory expiry**: a process keeps a value in memory until a random moment of the
  last ``refresh_ahead_fraction`` of its freshness, so the fleet's reads of the item spread over
  that window instead of landing at once;
* **early refresh**: the first reader inside that window (with no lease visibly held) refreshes
  the value before it expires, so the later readers find the new one;
* **bounded outage refresh**: with the table unavailable, a process holding a stale value asks
  the origin only with probability ``outage_refresh_probability`` per back-off period.
"""

from __future__ import annotations

import random

from estimator.config import Config


class RefreshPolicy:
    """The three rules above for one cache; ``rng`` is injectable for tests."""

    def __init__(self, config: Config, rng: random.Random | None = None) -> None:
        self.config = config
        self.random = rng or random.Random()

    def window(self, ttl: float) -> float:
        """Seconds before expiry in which reads spread and the early refresh happens."""
        return ttl * self.config.refresh_ahead_fraction

    def memory_until(self, expires_at: float, now: float, ttl: float) -> float:
        """When this process next reads the item: a random moment of the window, or the expiry
        itself if that moment has passed already."""
        until = expires_at - self.random.uniform(0.0, self.window(ttl))
        return until if until > now else expires_at

    def due_early(self, fresh_until: float, now: float, ttl: float) -> bool:
        """The value is in its early-refresh window."""
        window = self.window(ttl)
        return window > 0 and now >= fresh_until - window

    def ask_origin_in_outage(self) -> bool:
        """Whether this process refreshes from the origin itself while the table is down."""
        return self.random.random() < self.config.outage_refresh_probability
