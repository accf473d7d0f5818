"""The refresh policy's fleet-wide bounds: the early refresh and the outage share."""

from __future__ import annotations

import random

import pytest

from estimator.config import Config
from estimator.memory import Cached
from estimator.refresh_policy import RefreshPolicy


@pytest.mark.parametrize("fleet", [100, 1000, 5000])
def test_outage_askers_per_second_do_not_grow_with_the_fleet(fleet: int) -> None:
    # Each process of the fleet decides once per back-off period whether to ask the origin.
    config = Config(outage_refresh_per_second=1.0, error_backoff_seconds=5.0)
    policy = RefreshPolicy(config, random.Random(fleet))
    policy.observe_fleet(fleet)
    periods = 40
    asked = sum(policy.ask_origin_in_outage() for _ in range(fleet * periods))
    per_second = asked / (periods * config.error_backoff_seconds)
    assert 0.6 <= per_second <= 1.4  # about the configured 1/s, at every N


def test_without_a_known_fleet_size_the_fixed_share_asks() -> None:
    config = Config(outage_refresh_probability=0.1)
    policy = RefreshPolicy(config, random.Random(1))
    asked = sum(policy.ask_origin_in_outage() for _ in range(10_000))
    assert 800 <= asked <= 1200


def test_the_largest_fleet_seen_counts() -> None:
    policy = RefreshPolicy(Config(outage_refresh_per_second=1.0, error_backoff_seconds=5.0))
    policy.observe_fleet(1000)
    policy.observe_fleet(3)
    assert policy.fleet_size == 1000
    policy.observe_fleet(0)  # nothing ran: still no reason to ask more often than for one
    assert policy.fleet_size == 1000


def test_the_early_window_keeps_steady_refreshes_within_a_tenth_of_one_per_ttl() -> None:
    # At large N some reader enters the early window the moment it opens: one refresh every
    # (1 - fraction) x TTL, which must stay within 1.1x of one per TTL.
    config = Config()
    entry = Cached({}, "test", 0.0, 60.0)
    window = RefreshPolicy(config).window(entry)
    assert 60.0 / (60.0 - window) <= 1.1
    assert window >= 3.0  # the fleet's reads still spread over seconds, not one instant
