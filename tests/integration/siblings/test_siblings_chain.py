"""A cursor worker built on Invocation, run generation after generation from the real Invokes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from siblings import METADATA_KEY, Invocation, SiblingsManager, SpawnResult
from tests.integration.siblings.support import SiblingsEnv


@dataclass
class TickingContext:
    """Each look at the clock costs a second: a short execution, deterministically."""

    invoked_function_arn: str
    remaining_ms: int = 4_000
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        self.remaining_ms -= 1_000
        return self.remaining_ms + 1_000


def worker(event: dict[str, Any], context: Any, manager: SiblingsManager) -> Any:
    """Counts a cursor up to 10, three steps per execution, then hands over."""
    run = Invocation(event, context, shutdown_seconds=1, manager=manager)
    cursor = run.payload.get("cursor", 0)
    while run.sufficient_execution_time_left:
        if cursor >= 10:
            return {"done": cursor, "generation": run.generation}
        cursor += 1
    return run.spawn_sibling({"cursor": cursor})


def test_a_chain_runs_to_the_end_one_generation_at_a_time(env: SiblingsEnv) -> None:
    env.rule("schedule")
    manager = env.manager()
    root = TickingContext(env.function_arn)
    outcome = worker({"source": "aws.events"}, root, manager)
    seen: list[tuple[int, int]] = []
    while isinstance(outcome, SpawnResult):
        assert outcome.reason == "spawned"
        event = env.invokes.events[-1]
        seen.append((event["cursor"], event[METADATA_KEY]["generation"]))
        assert event[METADATA_KEY]["chain_id"] == root.aws_request_id
        outcome = worker(event, TickingContext(env.function_arn), manager)
    assert outcome == {"done": 10, "generation": 3}
    assert seen == [(3, 1), (6, 2), (9, 3)]
    assert env.invoke_count() == 3


def test_the_generation_limit_ends_a_chain(env: SiblingsEnv) -> None:
    env.rule("schedule")
    manager = env.manager({"max_generations": 2})
    outcome = worker({}, TickingContext(env.function_arn), manager)
    for _ in range(5):
        if not outcome:
            break
        outcome = worker(env.invokes.events[-1], TickingContext(env.function_arn), manager)
    assert isinstance(outcome, SpawnResult)
    assert outcome.reason == "max_generations" and outcome.generation == 3
    assert env.invoke_count() == 2


def test_a_retried_sibling_does_not_fork_the_chain(env: SiblingsEnv) -> None:
    env.rule("schedule")
    worker({}, TickingContext(env.function_arn), env.manager())
    event = env.invokes.events[-1]
    context = TickingContext(env.function_arn)
    first = worker(event, context, env.manager())
    # Lambda runs the same event again (same request id) in a fresh container.
    retry = TickingContext(env.function_arn, aws_request_id=context.aws_request_id)
    again = worker(event, retry, env.manager())
    assert first.reason == "spawned" and again.duplicate
    assert again.request_id == first.request_id
    assert env.invoke_count() == 2
