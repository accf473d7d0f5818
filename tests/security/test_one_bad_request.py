"""A request's own bad input fails that request only: checked before AWS, and never trips the
shared breaker that every other spawn of the container goes through."""

from __future__ import annotations

import pytest

from estimator.exceptions import StoreUnavailable
from siblings import METADATA_KEY, Invocation
from siblings.metadata import ChainMetadata
from tests.integration.siblings.support import SiblingsEnv


def event_with(**metadata: object) -> dict[str, object]:
    meta = ChainMetadata("chain-1", 1, "parent").to_dict()
    return {"cursor": 1, METADATA_KEY: {**meta, **metadata}}


@pytest.mark.parametrize(
    "metadata",
    [
        {"chain_id": "c" * 3000},
        {"chain_id": "../../other-function"},
        {"chain_id": ""},
        {"generation": -1},
        {"generation": 10**9},
        {"generation": 1.5},
        {"parent_request_id": "x" * 500},
        {"spawned_at": float("nan")},
        {"v": 99},
    ],
)
def test_bad_chain_metadata_is_refused_before_any_aws_call(
    env: SiblingsEnv, metadata: dict[str, object]
) -> None:
    env.rule("schedule")
    manager = env.manager()
    env.recorder.reset()
    with pytest.raises(ValueError, match="__siblings__"):
        manager.spawn_sibling(env.context(), {"cursor": 2}, event=event_with(**metadata))
    with pytest.raises(ValueError, match="__siblings__"):
        Invocation(event_with(**metadata), env.context(), manager=manager)
    assert sum(env.recorder.counts().values()) == 0


def test_a_validation_error_on_one_key_does_not_refuse_the_other_spawns(env: SiblingsEnv) -> None:
    env.rule("schedule")
    manager = env.manager()
    assert manager.store is not None
    # DynamoDB rejects a key over 2,048 bytes with ValidationException: this request's fault.
    with pytest.raises(StoreUnavailable, match="ValidationException"):
        manager.store.put("spawn#" + "k" * 3000, {"state": "pending"}, 2e9, 2e9)
    assert not manager.store.breaker.is_open
    result = manager.spawn_sibling(env.context(), {"cursor": 1})
    assert result and result.reason == "spawned"
