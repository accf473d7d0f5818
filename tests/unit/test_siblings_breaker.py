"""The shared-table circuit breaker used by the kill switch and the spawn records."""

from __future__ import annotations

from typing import Any

import pytest

from estimator.exceptions import StoreUnavailable
from siblings.breaker import StoreBreaker


class FlakyStore:
    """Counts calls; raises StoreUnavailable while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    def _hit(self) -> None:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("GetItem", ConnectionError("unreachable"))

    def get(self, key: str) -> Any:
        self._hit()
        return None

    def put(self, key: str, value: Any, fresh_until: float, keep_until: float) -> None:
        self._hit()

    def put_if_absent(self, key: str, value: Any, keep_until: float, now: Any = None) -> Any:
        self._hit()
        return None

    def delete(self, key: str) -> None:
        self._hit()


def test_after_a_failure_calls_are_skipped_until_the_backoff_ends() -> None:
    now = [0.0]
    store = FlakyStore()
    breaker = StoreBreaker(store, backoff_seconds=5.0, clock=lambda: now[0])  # type: ignore[arg-type]
    assert breaker.get("k") is None and not breaker.is_down
    store.down = True
    with pytest.raises(StoreUnavailable):
        breaker.get("k")
    assert breaker.is_down and store.calls == 2
    for call in (
        lambda: breaker.get("k"),
        lambda: breaker.put("k", {}, 1.0, 2.0),
        lambda: breaker.put_if_absent("k", {}, 2.0),
        lambda: breaker.delete("k"),
    ):
        with pytest.raises(StoreUnavailable, match="skipped") as caught:
            call()
        assert isinstance(caught.value.cause, ConnectionError)
    assert store.calls == 2  # none of them reached the table
    now[0] = 5.0
    store.down = False
    breaker.put("k", {}, 1.0, 2.0)
    assert store.calls == 3 and not breaker.is_down
