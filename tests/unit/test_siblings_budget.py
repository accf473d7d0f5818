"""The chain budget: the root's start travels in the metadata, is validated, and bounds a chain."""

from __future__ import annotations

import math

import pytest

from siblings.budget import check_chain_budget
from siblings.config import SiblingsConfig
from siblings.metadata import ChainMetadata, parse_metadata, root_metadata
from siblings.result import REFUSALS, Reason


def test_the_roots_first_spawn_starts_the_chain_clock_and_every_child_keeps_it() -> None:
    first = root_metadata("req-0").child("req-0", now=100.0)
    second = first.child("req-1", now=160.0)
    assert first.chain_started_at == 100.0
    assert second.chain_started_at == 100.0 and second.spawned_at == 160.0
    assert parse_metadata(second.to_dict()) == second


def test_an_event_of_an_older_version_counts_from_its_own_spawn() -> None:
    old = parse_metadata({"v": 1, "chain_id": "c", "generation": 3, "spawned_at": 50.0})
    assert old.chain_started_at is None
    assert old.child("p", now=70.0).chain_started_at == 50.0


@pytest.mark.parametrize(
    "started",
    [True, "10", -1.0, math.inf, math.nan, 4e10, 200.0],  # 200 > spawned_at: after its own step
)
def test_a_malformed_chain_start_is_an_error_not_a_new_budget(started: object) -> None:
    raw = {"v": 1, "chain_id": "c", "generation": 2, "spawned_at": 100.0, "chain_started_at": started}
    with pytest.raises(ValueError, match="chain_started_at"):
        parse_metadata(raw)


def _child(started: float, now: float) -> ChainMetadata:
    return ChainMetadata("c", 4, "p", spawned_at=now, chain_started_at=started)


def test_no_budget_no_refusal() -> None:
    verdict = check_chain_budget(_child(0.0, 1e9), SiblingsConfig())
    assert verdict.allowed and verdict.info == {"max_chain_seconds": None}


def test_a_chain_under_its_budget_goes_on_and_one_at_it_is_refused() -> None:
    config = SiblingsConfig(max_chain_seconds=600)
    under = check_chain_budget(_child(1000.0, 1599.0), config)
    assert under.allowed and under.info["elapsed_seconds"] == 599.0
    at = check_chain_budget(_child(1000.0, 1600.0), config)
    assert not at.allowed and at.reason is Reason.MAX_CHAIN_SECONDS
    assert "600" in at.detail and at.info["elapsed_seconds"] == 600.0
    assert Reason.MAX_CHAIN_SECONDS in REFUSALS


def test_a_chain_start_in_the_future_is_not_believed() -> None:
    config = SiblingsConfig(max_chain_seconds=600, max_clock_skew_seconds=60)
    verdict = check_chain_budget(_child(2000.0, 1000.0), config)  # 1000 s ahead of the clock
    assert not verdict.allowed and verdict.reason is Reason.MAX_CHAIN_SECONDS
    assert "future" in verdict.detail
    within_skew = check_chain_budget(_child(1030.0, 1000.0), config)
    assert within_skew.allowed


@pytest.mark.parametrize("value", [0, -5, 400 * 24 * 3600])
def test_max_chain_seconds_is_bounded(value: float) -> None:
    with pytest.raises(ValueError, match="max_chain_seconds"):
        SiblingsConfig(max_chain_seconds=value)
