"""The handler helpers: time budget from the context, and the Invocation object."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from siblings import METADATA_KEY, Invocation, TimeBudget, sufficient_execution_time_left
from siblings.metadata import ChainMetadata


def context(remaining_ms: int, request_id: str = "req-1") -> SimpleNamespace:
    return SimpleNamespace(
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:worker",
        aws_request_id=request_id,
        get_remaining_time_in_millis=lambda: remaining_ms,
    )


def test_budget_compares_remaining_time_with_the_shutdown_period() -> None:
    assert sufficient_execution_time_left(context(10_001), 10)
    assert not sufficient_execution_time_left(context(10_000), 10)
    budget = TimeBudget(context(2_500), shutdown_seconds=2)
    assert budget.remaining_seconds == 2.5 and budget and budget.sufficient_execution_time_left
    assert not TimeBudget(context(0), shutdown_seconds=0)


def test_budget_reads_the_clock_on_every_check() -> None:
    remaining = iter([30_000, 20_000, 5_000])
    ctx = SimpleNamespace(get_remaining_time_in_millis=lambda: next(remaining))
    budget = TimeBudget(ctx, shutdown_seconds=10)
    assert [budget.sufficient_execution_time_left for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize(
    ("ctx", "shutdown", "error"),
    [
        (None, 10, TypeError),
        (SimpleNamespace(), 10, TypeError),
        (context(1), "10", TypeError),
        (context(1), True, TypeError),
        (context(1), -1, ValueError),
        (context(1), float("nan"), ValueError),
    ],
)
def test_budget_rejects_bad_arguments(ctx: Any, shutdown: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        TimeBudget(ctx, shutdown)


class RecordingManager:
    """Stands in for SiblingsManager: records what Invocation passes on."""

    def __init__(self) -> None:
        self.loaded: list[tuple[Any, Any]] = []
        self.spawned: list[tuple[Any, ...]] = []

    def load_payload(self, event: Any, lambda_context: Any = None) -> dict[str, Any]:
        self.loaded.append((event, lambda_context))
        return {k: v for k, v in event.items() if k != METADATA_KEY}

    def spawn_sibling(self, *args: Any, **kwargs: Any) -> str:
        self.spawned.append((*args, kwargs))
        return "result"


def test_invocation_of_a_root_event() -> None:
    manager = RecordingManager()
    ctx = context(60_000, "root-req")
    run = Invocation({"cursor": 3}, ctx, shutdown_seconds=5, manager=manager)  # type: ignore[arg-type]
    assert run.payload == {"cursor": 3}
    assert (run.generation, run.chain_id, run.metadata) == (0, "root-req", None)
    assert run.sufficient_execution_time_left and run.remaining_seconds == 60.0
    assert manager.loaded == [({"cursor": 3}, ctx)]
    assert run.spawn_sibling({"cursor": 4}) == "result"
    assert manager.spawned == [(ctx, {"cursor": 4}, False, {"event": {"cursor": 3}})]


def test_invocation_of_a_sibling_event() -> None:
    meta = ChainMetadata("chain-9", 4, "parent")
    event = {"cursor": 8, METADATA_KEY: meta.to_dict()}
    manager = RecordingManager()
    run = Invocation(event, context(1_000), manager=manager)  # type: ignore[arg-type]
    assert (run.generation, run.chain_id, run.payload) == (4, "chain-9", {"cursor": 8})
    assert not run.sufficient_execution_time_left  # 1 s left, 10 s kept back by default
    run.spawn_sibling(force=True)
    assert manager.spawned[0][2] is True and manager.spawned[0][3] == {"event": event}
