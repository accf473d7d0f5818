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
  the origin only with probability ``outage_refresh_per_second x error_backoff_seconds / fleet``
  per back-off period, the fleet's size being the largest concurrency estimate the process has
  seen: the fleet's origin calls stay near ``outage_refresh_per_second`` at any N. Before any
  estimate is known, ``outage_refresh_probability`` is the share.

:class:`Plan` names what the shared tier tells a process to do about a key it missed.
"""

from __future__ import annotations

import random
from enum import StrEnum

from estimator.config import Config
from estimator.memory import Cached


class Plan(StrEnum):
    """What the shared tier says to do about one key that missed in memory."""

    DONE = "done"
    """A fresh value was there (now in memory too)."""
    LOAD = "load"
    """This caller refreshes it (it took the lease, or the table is unusable)."""
    STALE = "stale"
    """Another execution is refreshing: serve the stale value meanwhile."""
    WAIT = "wait"
    """Another execution is refreshing and there is no value at all: wait for it."""
    FAILED = "failed"
    """Another execution's refresh just failed: do not wait, do not retry yet."""


class RefreshPolicy:
    """The three rules above for one cache; ``rng`` is injectable for tests."""

    def __init__(self, config: Config, rng: random.Random | None = None) -> None:
        self.config = config
        self.random = rng or random.Random()
        self.fleet_size: int | None = None
        """The largest concurrency estimate seen (executions sharing the values), if any."""

    def observe_fleet(self, executions: int) -> None:
        """Note a concurrency estimate: the fleet reading these values is about that large."""
        if executions > 0 and (self.fleet_size is None or executions > self.fleet_size):
            self.fleet_size = executions

    def window(self, entry: Cached) -> float:
        """Seconds before ``entry`` expires in which reads spread and the early refresh happens:
        a share of the lifetime its writer gave it (readers may be configured otherwise)."""
        lifetime = max(0.0, entry.expires_at - entry.fetched_at)
        return lifetime * self.config.refresh_ahead_fraction

    def memory_until(self, entry: Cached, now: float) -> float:
        """When this process next reads the item: a random moment of the window, or the expiry
        itself if that moment has passed already."""
        until = entry.expires_at - self.random.uniform(0.0, self.window(entry))
        return until if until > now else entry.expires_at

    def due_early(self, entry: Cached, now: float) -> bool:
        """``entry`` is in its early-refresh window."""
        window = self.window(entry)
        return window > 0 and now >= entry.expires_at - window

    def ask_origin_in_outage(self) -> bool:
        """Whether this process refreshes from the origin itself while the table is down (it
        asks itself once per back-off period)."""
        config = self.config
        if self.fleet_size is None:
            share = config.outage_refresh_probability
        else:
            share = config.outage_refresh_per_second * config.error_backoff_seconds / self.fleet_size
        return self.random.random() < share
