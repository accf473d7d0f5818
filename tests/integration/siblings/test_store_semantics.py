"""Spawn records on the real (moto) table: a release removes only its own claim (issue 18.6),
and one definition of "expired" at the TTL boundary (issue 18.7)."""

from __future__ import annotations

import math

from estimator.clock import ManualClock
from estimator.store import DynamoStore
from siblings.keys import spawn_key
from siblings.ledger import ClaimStatus, SpawnLedger
from tests.helpers import scoped
from tests.integration.siblings.support import SiblingsEnv

KEY = spawn_key(scoped("worker"), "chain-store-semantics", 3)


def ledger(env: SiblingsEnv, clock: ManualClock, **overrides: float) -> SpawnLedger:
    config = env.config(lease_seconds=10.0, lease_wait_seconds=3.0, **overrides)
    return SpawnLedger(
        DynamoStore(config, session=env.session),
        config,
        clock=clock,
    )


def test_a_stalled_attempt_releasing_does_not_delete_its_successors_claim(env: SiblingsEnv) -> None:
    clock = ManualClock(start=float(math.floor(1.9e9)))
    records = ledger(env, clock)
    records.store.delete(KEY)
    first = records.claim(KEY, "req-1")  # attempt A: its Invoke stalls
    assert first.status is ClaimStatus.CLAIMED
    clock.advance(11.0)  # Lambda retries the parent after A's lease: B takes the record over
    second = records.claim(KEY, "req-1")
    assert second.status is ClaimStatus.CLAIMED and second.token != first.token
    records.release(KEY, first.token)  # A's Invoke finally fails (429): A gives up its claim
    item = records.store.get(KEY)
    assert item is not None and item.value is not None
    assert item.value["token"] == second.token  # B's claim stands: no second sibling can spawn
    records.release(KEY, second.token)
    assert records.store.get(KEY) is None


def test_a_record_at_its_ttl_is_expired_for_the_store_and_for_the_reader(env: SiblingsEnv) -> None:
    clock = ManualClock(start=1.9e9 + 0.25)
    records = ledger(env, clock, spawn_record_ttl_seconds=60.0)
    records.store.delete(KEY)
    assert records.claim(KEY, "parent-a").status is ClaimStatus.CLAIMED
    item = records.store.get(KEY)
    assert item is not None and item.keep_until is not None
    clock.advance(item.keep_until - clock.now())  # exactly at the TTL: gone for everyone
    assert item.is_gone(clock.now())
    waited_from = clock.monotonic()
    retry = records.claim(KEY, "parent-b")
    assert retry.status is ClaimStatus.CLAIMED  # not a "busy" duplicate after waiting the lease
    assert clock.monotonic() == waited_from  # and without waiting at all
