"""Items and answers of this round's guards (recursion config, the account's list of functions)
are untrusted: a bad one is ignored or refused with a clear error, never a crash."""

from __future__ import annotations

from typing import Any

import pytest

from estimator.clock import ManualClock
from estimator.memory_store import MemoryStore
from estimator.shared_cache import TwoTierCache
from estimator.validation import parse_function
from siblings.config import SiblingsConfig
from siblings.keys import recursion_key
from siblings.recursion import RecursionLookup, RecursiveLoop, valid_recursion

REF = parse_function("arn:aws:lambda:eu-west-1:123456789012:function:f")


class _Lambda:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls = 0

    def get_function_recursion_config(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        return {"RecursiveLoop": self.answer}


class _Clients:
    def __init__(self, client: _Lambda) -> None:
        self.client = client

    def get(self, name: str) -> _Lambda:
        assert name == "lambda"
        return self.client


@pytest.mark.parametrize("junk", [["Allow"], {"a": 1}, 7, None, "allow", float("nan")])
def test_a_corrupt_cached_recursion_setting_is_ignored_and_read_again(junk: Any) -> None:
    clock = ManualClock()
    store = MemoryStore()
    config = SiblingsConfig(use_dynamodb=False)
    now = clock.now()
    store.put(recursion_key(REF), {"recursive_loop": junk}, now + 600, now + 600)
    assert valid_recursion({"recursive_loop": junk}) is False
    client = _Lambda("Allow")
    lookup = RecursionLookup(config, TwoTierCache(config, store, clock), _Clients(client))  # type: ignore[arg-type]
    assert lookup.recursion_config(REF).recursive_loop is RecursiveLoop.ALLOW
    assert client.calls == 1


@pytest.mark.parametrize("junk", [["Allow"], {"x": "Allow"}, 3, None])
def test_an_odd_recursion_answer_from_lambda_is_a_clear_error(junk: Any) -> None:
    clock = ManualClock()
    config = SiblingsConfig(use_dynamodb=False)
    lookup = RecursionLookup(config, TwoTierCache(config, MemoryStore(), clock), _Clients(_Lambda(junk)))  # type: ignore[arg-type]
    with pytest.raises(Exception) as caught:
        lookup.recursion_config(REF)
    assert not isinstance(caught.value, TypeError)
    assert "RecursiveLoop" in str(caught.value)


def _refresher(store: MemoryStore, clock: ManualClock, fetched: list[list[str]]) -> Any:
    from estimator.account import AccountRefresher
    from estimator.config import Config
    from estimator.keys import estimate_key

    config = Config(use_dynamodb=False)

    def fetch(refs: list[Any], minutes: int) -> dict[str, dict[str, Any]]:
        fetched.append([ref.resource for ref in refs])
        return {estimate_key(ref, minutes): {} for ref in refs}

    return AccountRefresher(TwoTierCache(config, store, clock), fetch, estimate_key, 60.0, lambda v: True)


@pytest.mark.parametrize(
    "functions",
    [
        {"not an arn / name!": 0.0},
        {"g": float("inf")},
        {"g": float("nan")},
        {"g": 1e300},
        {f"fn{i}": 0.0 for i in range(5000)},
    ],
)
def test_a_corrupt_account_list_neither_crashes_nor_grows_the_refresh(functions: dict[str, float]) -> None:
    from estimator.account import MAX_LISTED, _listed
    from estimator.identity import Home
    from estimator.keys import account_key, estimate_key

    HOME = Home("123456789012", "eu-west-1")

    clock = ManualClock()
    now = clock.now()
    store = MemoryStore()
    # A fresh list is the writer's own time: 0.0 stands for "now" (the clock is not at 0).
    listed = {name: (now if at == 0.0 else at) for name, at in functions.items()}
    store.put(account_key(HOME, 1), {"functions": listed}, now - 1, now + 3600)
    kept = _listed(store.get(account_key(HOME, 1)), now, 60.0)
    assert len(kept) <= MAX_LISTED
    assert all(at <= now for at in kept.values())
    fetched: list[list[str]] = []
    ref = parse_function("arn:aws:lambda:eu-west-1:123456789012:function:f")
    assert estimate_key(ref, 1) in _refresher(store, clock, fetched).load({estimate_key(ref, 1): ref}, 1)
    assert sum(len(call) for call in fetched) <= MAX_LISTED + 1
