"""A chain root in sosw's shape (the handler never passed its event) does not wait for a parent."""

from __future__ import annotations

from tests.integration.siblings.support import SiblingsEnv


def _req_reads(env: SiblingsEnv) -> list[bytes]:
    reads: list[bytes] = []

    def listener(call: tuple[str, str], environ: dict[str, object], body: bytes) -> None:
        if call == ("dynamodb", "GetItem") and b"req#" in body:
            reads.append(body)

    env.recorder.listeners.append(listener)
    return reads


def test_a_root_that_has_run_for_seconds_asks_for_its_position_once(env: SiblingsEnv) -> None:
    env.rule("schedule")
    # The chain log (its own items for a chain's first spawn) is left out: the guards and the
    # ledger are what is counted here.
    manager = env.manager(config=env.config(function_timeout_seconds=60, chain_log=False))
    assert manager.spawn_sibling(env.context(), payload={"warm": True})  # caches now warm
    reads = _req_reads(env)
    env.recorder.reset()
    # 10 s into a 60 s execution: a parent's record of it would have landed long ago.
    result = manager.spawn_sibling(env.context(remaining_ms=50_000), payload={"cursor": 1})
    assert result and result.generation == 1  # a new chain
    assert len(reads) == 1  # asked once, no polling
    assert env.recorder.count("dynamodb") <= 4


def test_patience_only_for_an_execution_that_may_have_just_started() -> None:
    from siblings.config import SiblingsConfig
    from siblings.context import read_context
    from siblings.runs import LOOKUP_PATIENCE_S, lookup_patience
    from tests.integration.siblings.support import FakeContext

    arn = "arn:aws:lambda:us-east-1:123456789012:function:worker"
    timed = SiblingsConfig(function_timeout_seconds=60)

    def patience(config: SiblingsConfig, remaining_ms: int) -> float:
        return lookup_patience(read_context(FakeContext(arn, remaining_ms=remaining_ms)), config)

    assert patience(timed, 59_900) == LOOKUP_PATIENCE_S  # 0.1 s in: the parent may be writing
    assert patience(timed, 50_000) == 0.0  # 10 s in: the record would be there
    assert patience(SiblingsConfig(), 50_000) == LOOKUP_PATIENCE_S  # timeout unknown: wait
