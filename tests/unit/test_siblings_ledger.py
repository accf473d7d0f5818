"""Spawn records: claim, complete, release, crash takeover - over an in-memory store."""

from __future__ import annotations

from typing import Any

import pytest

from estimator.items import StoredItem
from siblings.config import SiblingsConfig
from siblings.keys import spawn_key
from siblings.ledger import SpawnLedger


class Clock:
    """Wall and monotonic time that only move when someone sleeps (or a test moves ``now``)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Seam:
    """``clock`` as the :class:`estimator.clock.Clock` the ledger takes (``sleep`` looked up at
    each call, so a test may replace it)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def now(self) -> float:
        return self.clock.now

    def monotonic(self) -> float:
        return self.clock.now

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)


class MemoryStore:
    """The slice of DynamoStore the ledger uses; ``on_sleep`` lets a test act mid-wait."""

    def __init__(self) -> None:
        self.items: dict[str, StoredItem] = {}
        self.writes = 0

    def get(self, key: str) -> StoredItem | None:
        return self.items.get(key)

    def put(self, key: str, value: dict[str, Any], fresh_until: float, keep_until: float) -> None:
        self.writes += 1
        self.items[key] = StoredItem(key, value, fresh_until, keep_until)

    def create(self, key: str, value: dict[str, Any], keep_until: float, now: float) -> StoredItem | None:
        existing = self.items.get(key)
        if existing is not None and not existing.is_gone(now):
            return existing
        self.put(key, value, keep_until, keep_until)
        return None

    def put_many(self, items: list[tuple[str, dict[str, Any], float, float]]) -> None:
        for key, value, fresh_until, keep_until in items:
            self.put(key, value, fresh_until, keep_until)

    def delete(self, key: str) -> None:
        self.items.pop(key, None)


def ledger(store: MemoryStore | None, clock: Clock, **config: Any) -> SpawnLedger:
    values = {"lease_seconds": 10.0, "lease_wait_seconds": 3.0, **config}
    return SpawnLedger(
        store,  # type: ignore[arg-type]
        SiblingsConfig(**values),
        clock=Seam(clock),
    )


KEY = spawn_key("123456789012:us-east-1:fn", "chain", 4)


def test_key_shape() -> None:
    assert KEY == "spawn#123456789012:us-east-1:fn#chain#4"


def test_claim_complete_then_repeat_returns_the_first_result() -> None:
    clock, store = Clock(), MemoryStore()
    records = ledger(store, clock)
    claim = records.claim(KEY, "req-1")
    assert claim.status == "claimed" and claim.token
    assert store.items[KEY].value["state"] == "pending"  # type: ignore[index]
    records.complete(KEY, "req-1", claim.token, {"request_id": "invoke-1"})
    assert records.peek(KEY) == {"request_id": "invoke-1"}
    # Another container (a fresh ledger on the same table) sees it too.
    other = ledger(store, clock)
    assert other.peek(KEY) == {"request_id": "invoke-1"}
    repeat = other.claim(KEY, "req-1")
    assert (repeat.status, repeat.result) == ("done", {"request_id": "invoke-1"})


def test_release_lets_the_step_be_claimed_again() -> None:
    clock, store = Clock(), MemoryStore()
    records = ledger(store, clock)
    assert records.claim(KEY, "req-1").status == "claimed"
    records.release(KEY)
    assert KEY not in store.items
    assert records.claim(KEY, "req-1").status == "claimed"


def test_a_crashed_claim_of_the_same_request_is_taken_over_once_old() -> None:
    clock, store = Clock(), MemoryStore()
    ledger(store, clock).claim(KEY, "req-1")  # the crashed first attempt
    clock.now += 60  # Lambda retries a minute later
    retry = ledger(store, clock).claim(KEY, "req-1")
    assert retry.status == "claimed"
    assert clock.sleeps == []  # no waiting for an old claim
    assert store.items[KEY].value["token"] == retry.token  # type: ignore[index]


def test_a_young_claim_of_the_same_request_is_waited_for_then_taken_over() -> None:
    clock, store = Clock(), MemoryStore()
    ledger(store, clock).claim(KEY, "req-1")
    retry = ledger(store, clock, lease_wait_seconds=30.0).claim(KEY, "req-1")
    assert retry.status == "claimed"
    assert 10.0 <= sum(clock.sleeps) < 11.0  # waited until the claim was lease_seconds old


def test_a_young_claim_that_completes_meanwhile_gives_the_first_result() -> None:
    clock, store = Clock(), MemoryStore()
    first = ledger(store, clock)
    claim = first.claim(KEY, "req-1")
    second = ledger(store, clock)
    original_sleep = clock.sleep

    def complete_during_wait(seconds: float) -> None:
        original_sleep(seconds)
        if store.items[KEY].value["state"] == "pending":  # type: ignore[index]
            first.complete(KEY, "req-1", claim.token, {"request_id": "invoke-1"})

    clock.sleep = complete_during_wait  # type: ignore[method-assign]
    outcome = second.claim(KEY, "req-1")
    assert (outcome.status, outcome.result) == ("done", {"request_id": "invoke-1"})


def test_another_requests_claim_is_never_taken_over() -> None:
    clock, store = Clock(), MemoryStore()
    ledger(store, clock).claim(KEY, "req-1")
    clock.now += 3600
    outcome = ledger(store, clock).claim(KEY, "req-2")
    assert (outcome.status, outcome.owner) == ("busy", "req-1")
    assert sum(clock.sleeps) <= 3.0  # bounded by lease_wait_seconds


def test_waiting_is_bounded_by_the_deadline() -> None:
    clock, store = Clock(), MemoryStore()
    ledger(store, clock).claim(KEY, "req-1")
    outcome = ledger(store, clock, lease_wait_seconds=30.0).claim(
        KEY, "req-1", deadline=clock.now + 1.0
    )
    assert outcome.status == "busy"
    assert sum(clock.sleeps) <= 1.0


@pytest.mark.parametrize(
    "value",
    [
        None,
        {"state": "weird"},
        {"state": "pending", "owner": 5, "token": "t", "claimed_at": 1.0},
        {"state": "pending", "owner": "x", "token": "t", "claimed_at": "soon"},
        {"state": "pending", "owner": "x", "token": "t", "claimed_at": 2e9 + 10**6},
        {"state": "invoked", "owner": "x", "token": "t", "invoked_at": 1.0, "result": "ok"},
    ],
)
def test_a_record_that_is_not_ours_is_reported_not_trusted(value: dict[str, Any] | None) -> None:
    """Fail closed: the manager applies on_guard_error to it (refuse, or take it over)."""
    clock, store = Clock(), MemoryStore()
    store.items[KEY] = StoredItem(KEY, value, 1e12, 1e12, corrupt=value is None)
    records = ledger(store, clock)
    assert records.claim(KEY, "req-1").status == "corrupt"
    assert records.take_over(KEY).status == "claimed"
    assert store.items[KEY].value["state"] == "pending"  # type: ignore[index]


def test_an_expired_record_counts_as_absent() -> None:
    clock, store = Clock(), MemoryStore()
    records = ledger(store, clock, spawn_record_ttl_seconds=100.0)
    claim = records.claim(KEY, "req-1")
    records.complete(KEY, "req-1", claim.token, {"request_id": "old"})
    clock.now += 101
    fresh = ledger(store, clock, spawn_record_ttl_seconds=100.0)
    assert fresh.peek(KEY) is None
    assert fresh.claim(KEY, "req-9").status == "claimed"


def test_without_a_store_records_live_in_process() -> None:
    clock = Clock()
    records = ledger(None, clock)
    claim = records.claim(KEY, "req-1")
    assert claim.status == "claimed"
    assert records.peek(KEY) is None
    records.complete(KEY, "req-1", claim.token, {"request_id": "x"})
    assert records.peek(KEY) == {"request_id": "x"}
    assert records.claim(KEY, "req-1").status == "done"
    records.release(KEY)  # no-op without a store
