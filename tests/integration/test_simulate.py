"""``siblings simulate`` at a tiny size: the fleet runs, and its verification means something."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from siblings.local.runtime import Attempt, Invocation
from siblings.local.simulate import main
from siblings.local.verify import verify
from siblings.metadata import METADATA_KEY

TINY = [
    "--chains", "3",
    "--records", "60",
    "--record-seconds", "0.02",
    "--invocation-seconds", "2",
    "--shutdown-seconds", "1",
    "--timeout", "60",
    "--json",
]


def simulate(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    """Run the command in process; return its exit code and JSON summary."""
    code = main([*TINY, *extra])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_tiny_fleet_processes_every_record_exactly_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plot = tmp_path / "timeline.png"
    # max_generations 1: every chain hits the generation limit, parks and is resumed by the
    # schedule, so that path is verified too.
    code, summary = simulate(
        capsys, "--records", "100", "--max-generations", "1", "--plot", str(plot)
    )

    verification = summary["verification"]
    assert code == 0, verification["problems"]
    assert verification["ok"] and summary["completed"]
    assert verification["records"] == {
        "expected": 300, "exactly_once": 300, "missing": 0, "duplicated": 0
    }
    assert verification["generations"]["max_seen"] <= 1
    assert summary["spawns"]["spawned"] >= 3
    assert summary["spawns"]["refused"].get("max_generations", 0) >= 1
    assert verification["spawns"]["lost"] == 0
    assert summary["executions"]["retries"] == 0  # no faults injected
    # The guards are cached: a handful of control-plane calls for the whole fleet.
    assert summary["calls"]["eventbridge"] <= 10
    assert summary["calls"]["lambda_invoke"] == summary["spawns"]["spawned"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_verification_still_passes_with_injected_faults(capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = simulate(capsys, "--fault-rate", "0.15", "--seed", "3")

    verification = summary["verification"]
    throttles = summary["throttles"]
    injected = sum(throttles["injected"].values()) + sum(
        throttles["handler_crashes_injected"].values()
    )
    assert injected >= 1  # faults really happened...
    assert summary["executions"]["retries"] >= sum(throttles["handler_crashes_injected"].values())
    assert code == 0, verification["problems"]  # ...and nothing was lost or done twice
    assert verification["records"]["exactly_once"] == 180


@pytest.mark.slow
def test_verification_fails_when_a_record_is_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = simulate(capsys, "--records", "30", "--drop-record", "c001:7")

    verification = summary["verification"]
    assert code == 1
    assert not verification["ok"]
    assert verification["records"]["missing"] == 1
    assert verification["details"]["missing"] == ["c001#7"]
    assert any("never processed" in problem for problem in verification["problems"])


def test_bad_settings_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--invocation-seconds", "1", "--shutdown-seconds", "2", "--json"]) == 2
    assert "shutdown_seconds" in capsys.readouterr().err


def _invocation(request_id: str, event: dict[str, Any], result: Any = None) -> Invocation:
    invocation = Invocation(
        request_id=request_id,
        function_name="fn",
        qualifier=None,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
        function_version="$LATEST",
        payload=json.dumps(event).encode(),
        timeout_seconds=1.0,
        memory_mb=128,
        accepted_at=0.0,
    )
    invocation.attempts.append(Attempt(number=1, started_at=0.0, outcome="succeeded",
                                       result=result))
    invocation.status = "succeeded"
    return invocation


def _sibling_event(generation: int) -> dict[str, Any]:
    return {"chain": "c", METADATA_KEY: {"v": 1, "chain_id": "root", "generation": generation}}


def test_verify_reports_duplicates_runaway_chains_and_lost_spawns() -> None:
    unrun = _invocation("never-ran", _sibling_event(1))
    unrun.attempts.clear()
    unrun.status = "queued"
    invocations = [
        _invocation("a", {"chain": "c"}, {"action": "spawned", "request_id": "b"}),
        _invocation("b", _sibling_event(4), {"action": "spawned", "request_id": "ghost"}),
        unrun,
    ]

    result = verify(
        chains={"c": 3},
        record_counts={("c", 0): 1, ("c", 1): 2},
        invocations=invocations,
        max_generations=3,
    )

    assert not result.ok
    assert (result.records_once, result.records_missing, result.records_duplicated) == (1, 1, 1)
    assert result.max_generation == 4
    assert result.spawns_reported == 2
    assert result.spawns_lost == 2  # "ghost" never reached Lambda; "never-ran" never ran
    assert len(result.problems) == 5


def test_verify_passes_a_clean_run() -> None:
    result = verify(
        chains={"c": 2},
        record_counts={("c", 0): 1, ("c", 1): 1},
        invocations=[
            _invocation("a", {"chain": "c"}, {"action": "spawned", "request_id": "b"}),
            _invocation("b", _sibling_event(1), {"action": "done"}),
        ],
        max_generations=1,
    )

    assert result.ok and result.problems == []
    assert result.to_dict()["records"]["exactly_once"] == 2
