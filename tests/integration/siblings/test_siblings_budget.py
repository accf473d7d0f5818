"""max_chain_seconds against the embedded server: refused from the metadata alone, with force."""

from __future__ import annotations

import copy

from siblings import METADATA_KEY
from tests.integration.siblings.support import FakeContext, SiblingsEnv


def _aged(event: dict, seconds: float) -> dict:
    """The event as if its chain had started ``seconds`` earlier."""
    older = copy.deepcopy(event)
    older[METADATA_KEY]["chain_started_at"] -= seconds
    older[METADATA_KEY]["spawned_at"] -= seconds / 2
    return older


def test_a_chain_past_its_budget_is_refused_without_a_single_aws_call(env: SiblingsEnv) -> None:
    env.rule("schedule")
    manager = env.manager({"max_chain_seconds": 600})
    root = manager.spawn_sibling(env.context(), payload={"cursor": 1})
    assert root and root.generation == 1
    event = env.invokes.events[-1]
    started = event[METADATA_KEY]["chain_started_at"]
    assert started == event[METADATA_KEY]["spawned_at"]
    within = FakeContext(env.function_arn)
    young = manager.spawn_sibling(within, {"cursor": 2}, event=_aged(event, 100))
    assert young and young.generation == 2
    env.recorder.reset()
    child = FakeContext(env.function_arn)
    for force in (False, True):
        refused = manager.spawn_sibling(child, {"cursor": 2}, force=force, event=_aged(event, 700))
        assert not refused and refused.reason == "max_chain_seconds"
        assert refused.guards["chain_budget"]["max_chain_seconds"] == 600
        assert refused.guards["chain_budget"]["elapsed_seconds"] >= 700
    # The decision read nothing; the chain log recorded each refusal (one write apiece).
    assert env.recorder.counts() == {("dynamodb", "BatchWriteItem"): 2}
    assert manager.stats["refused_max_chain_seconds"] == 2
    quiet = env.manager({"max_chain_seconds": 600, "chain_log": False})
    env.recorder.reset()
    assert not quiet.spawn_sibling(child, {"cursor": 2}, event=_aged(event, 700))
    assert env.recorder.count() == 0


def test_the_budget_is_carried_through_the_recorded_position(env: SiblingsEnv) -> None:
    """A handler that never reads its event finds its chain start in the parent's record."""
    env.rule("schedule")
    manager = env.manager({"max_chain_seconds": 600})
    first = manager.spawn_sibling(env.context())
    child = FakeContext(env.function_arn, aws_request_id=str(first.request_id))
    second = env.manager({"max_chain_seconds": 600}).spawn_sibling(child)
    assert second and second.generation == 2
    sent = env.invokes.events[-1][METADATA_KEY]
    assert sent["chain_started_at"] == env.invokes.events[0][METADATA_KEY]["chain_started_at"]
