"""``siblings chain`` and ``siblings chains`` against the embedded server: every step of a chain
in order, and a function's recent chains without a scan, in 80 columns and as JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from siblings import Invocation, SiblingsManager, SpawnResult
from siblings.chain_log import day_of, slot_key
from siblings.chain_view import recent_chains
from siblings.cli import main
from siblings.keys import chains_key
from tests.helpers import scoped
from tests.integration.siblings.support import FUNCTION, FakeContext, SiblingsEnv


def run(env: SiblingsEnv, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main([*argv[:1], "--endpoint-url", env.endpoint_url, "--region", "us-east-1", *argv[1:]])
    out, err = capsys.readouterr()
    return code, out + err


def step(event: dict[str, Any], manager: SiblingsManager, request_id: str | None = None) -> Any:
    """One execution: read the event (claims the step), hand over at once."""
    context = FakeContext(manager_arn(manager), **({"aws_request_id": request_id} if request_id else {}))
    run_ = Invocation(event, context, shutdown_seconds=1, manager=manager)
    return run_.spawn_sibling({"cursor": run_.payload.get("cursor", 0) + 1})


def manager_arn(manager: SiblingsManager) -> str:
    return manager._arn  # type: ignore[attr-defined, no-any-return]


def chain_of(env: SiblingsEnv, limit: int) -> tuple[str, list[SpawnResult], SiblingsManager]:
    """A chain run generation after generation until the generation limit refuses."""
    manager = env.manager({"max_generations": limit, "chain_index": True})
    manager._arn = env.function_arn  # type: ignore[attr-defined]
    results = [step({}, manager)]
    while results[-1]:  # each sibling runs under its Invoke's request id, as on Lambda
        results.append(step(env.invokes.events[-1], manager, str(results[-1].request_id)))
    return results[0].chain_id, results, manager


def test_a_chain_shows_every_step_in_order(env: SiblingsEnv, capsys: pytest.CaptureFixture[str]) -> None:
    env.rule("schedule")
    chain_id, results, manager = chain_of(env, 2)
    assert [r.reason for r in results] == ["spawned", "spawned", "max_generations"]
    # A second execution of step 1 (another request id) is stopped.
    stopped = step(env.invokes.events[0], manager)
    assert stopped.duplicate
    env.recorder.reset()
    code, out = run(env, capsys, "chain", chain_id, "--json")
    assert code == 0
    view = json.loads(out)
    assert (view["function"], view["last_generation"], view["outcome"]) == (FUNCTION, 3, "refused")
    rows = view["steps"]
    assert [(r["generation"], r["outcome"], r["reason"]) for r in rows] == [
        (0, "root", None), (1, "spawned", None), (2, "spawned", None), (3, "refused", "max_generations"),
    ]
    assert rows[0]["request_id"] == chain_id
    assert [r["request_id"] for r in rows[1:3]] == [results[0].request_id, results[1].request_id]
    assert rows[1]["duplicate_stopped"] == stopped.parent_request_id
    assert rows[2]["duplicate_stopped"] is None
    for earlier, later in zip(rows[:3], rows[1:3], strict=False):
        assert earlier["started_at"] <= earlier["finished_at"] <= later["started_at"]
    assert rows[3]["started_at"] is None and rows[3]["request_id"] is None
    assert env.recorder.counts() == {("dynamodb", "GetItem"): 1, ("dynamodb", "BatchGetItem"): 1}
    code, out = run(env, capsys, "chain", chain_id)
    lines = out.splitlines()
    assert code == 0 and max(len(line) for line in lines) <= 80
    assert any("refused: max_generations" in line for line in lines)
    assert any("duplicate stopped" in line for line in lines)
    assert lines[-1].split()[0] == "3"


def test_chains_lists_the_recent_chains_without_a_scan(
    env: SiblingsEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env.rule("schedule")
    first, _, _ = chain_of(env, 1)
    second, _, _ = chain_of(env, 3)
    env.recorder.reset()
    code, out = run(env, capsys, "chains", FUNCTION, "--json")
    assert code == 0
    listing = json.loads(out)
    assert [(c["chain_id"], c["last_generation"], c["outcome"], c["reason"]) for c in listing["chains"]] == [
        (second, 4, "refused", "max_generations"), (first, 2, "refused", "max_generations"),
    ]
    assert env.recorder.count("dynamodb", "Scan") == 0 and env.recorder.count("dynamodb", "Query") == 0
    # Hints, slots, heads; and the CLI's account once, as the keys carry it.
    assert env.recorder.counts() == {("dynamodb", "BatchGetItem"): 3, ("sts", "GetCallerIdentity"): 1}
    code, out = run(env, capsys, "chains", FUNCTION)
    lines = out.splitlines()
    assert code == 0 and max(len(line) for line in lines) <= 80
    assert lines[2].startswith(second) and lines[3].startswith(first)


def test_the_chain_log_costs_no_request_for_a_spawn_and_one_for_a_refusal(env: SiblingsEnv) -> None:
    env.rule("schedule")
    counts = {}
    for enabled in (False, True):
        manager = env.manager({"chain_log": enabled, "max_generations": 1})
        manager.spawn_sibling(env.context())  # the chain's first decision: its list entry
        event = env.invokes.events[-1]
        env.recorder.reset()
        spawned = manager.spawn_sibling(env.context(), event=event)  # refused: generation 2
        refusal = env.recorder.counts()
        env.recorder.reset()
        again = env.manager({"chain_log": enabled}).spawn_sibling(env.context(), event=event)
        assert not spawned and again
        counts[enabled] = (refusal, env.recorder.counts())
    (off_refusal, off_spawn), (on_refusal, on_spawn) = counts[False], counts[True]
    assert on_spawn == off_spawn  # the step and head ride in the spawn's own BatchWriteItem
    assert on_refusal == {**off_refusal, ("dynamodb", "BatchWriteItem"): 1}
    assert ("dynamodb", "BatchWriteItem") not in off_refusal


def test_the_day_list_is_opt_in_and_costs_a_root_three_requests(env: SiblingsEnv) -> None:
    env.rule("schedule")
    counts = {}
    for indexed in (False, True):
        manager = env.manager({"chain_index": indexed})
        assert manager.spawn_sibling(env.context())  # warms the container's caches
        env.recorder.reset()
        assert manager.spawn_sibling(env.context())  # a warm root: a chain of its own
        counts[indexed] = env.recorder.counts()
        listed = recent_chains(manager.store, scoped(FUNCTION), env.clock.now())
        assert len(listed) == (2 if indexed else 0)
    plain, indexed_counts = counts[False], counts[True]
    extra = {key: indexed_counts[key] - plain.get(key, 0) for key in indexed_counts}
    assert {key: n for key, n in extra.items() if n} == {
        ("dynamodb", "GetItem"): 1, ("dynamodb", "PutItem"): 2,
    }


def test_an_unknown_chain_is_exit_status_1(env: SiblingsEnv, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(env, capsys, "chain", "no-such-chain")
    assert code == 1 and "no chain 'no-such-chain'" in out


def test_a_stale_hint_costs_a_probe_and_never_shares_a_slot(env: SiblingsEnv) -> None:
    """Two chains started from containers that both read the hint before either moved it."""
    env.rule("schedule")
    first, _, _ = chain_of(env, 1)
    store = env.manager().store
    assert store is not None
    day = chains_key(scoped(FUNCTION), day_of(env.clock.now()))  # the managers' day, not the wall clock's
    store.put(day, {"next": 0}, 4e9, 4e9)  # the hint as a racing writer left it
    second, _, _ = chain_of(env, 1)
    slots = store.get_many([slot_key(day, 0), slot_key(day, 1)])
    assert [s.value["chain_id"] for s in slots.values() if s and s.value] == [first, second]
    assert [c.chain_id for c in recent_chains(store, scoped(FUNCTION), env.clock.now())] == [second, first]
