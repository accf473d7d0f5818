"""``siblings simulate`` at a tiny size: the fleet runs, and its verification means something."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from siblings.local.runtime import Attempt, InvocationRecord
from siblings.local.simulate import main
from siblings.local.verify import verify
from siblings.metadata import METADATA_KEY

# The runtime keeps Lambda's deadlines on real time. 1 s of work per execution (60 records of
# 0.02 s need two), and 5 s left for the commit, the guards and the hand-off: with only 1 s, a
# loaded machine missed deadlines and guard lookups, the chains finished on retries and the
# schedule, and nothing was spawned (``assert 0 >= 3``); with 3 s, both CPUs taken by other
# work still left one run with a single spawn. The margin costs no time: an execution ends
# when its work is handed off, not at its deadline.
TINY = [
    "--chains", "3",
    "--records", "60",
    "--record-seconds", "0.02",
    "--invocation-seconds", "6",
    "--shutdown-seconds", "5",
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
    # (At the default time scale: at 240, the schedule firing every 0.25 s under two CPU hogs
    # once left a chain without its root's spawn, ``assert 2 >= 3``.)
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
    # No faults injected: the only failures allowed are deadlines missed on a loaded machine
    # (4 s invocations), and each is retried as Lambda would; the records stay exactly-once.
    executions = summary["executions"]
    assert executions["errors"] == executions["timeouts"]
    assert executions["retries"] == executions["timeouts"]
    assert executions["failed_after_retries"] == 0
    # The guards are cached: a handful of control-plane calls for the whole fleet.
    assert summary["calls"]["eventbridge"] <= 10
    assert summary["calls"]["lambda_invoke"] == summary["spawns"]["spawned"]
    # The runtime publishes ConcurrentExecutions as Lambda does; the observed peak comes from
    # the same GetMetricData call as Little's law and never exceeds the true peak.
    concurrency = summary["concurrency"]
    assert concurrency["estimate_peak"] is not None
    assert concurrency["observed_peak"] is not None
    assert 1 <= concurrency["observed_peak"] <= concurrency["true_peak"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Without --template the fleet makes its own shared table.
    assert summary["settings"]["table_name"] == "lambda-siblings"
    assert summary["shared_table"]["created_by_fleet"] is True


@pytest.mark.slow
def test_capacity_refusals_are_deferred_and_every_record_still_runs_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # max_concurrency 2 with 3 chains: spawns are refused for capacity, and deferred instead.
    # 240 records a chain: the chains outlive the metrics' publication delay, so the estimate
    # the guard reads has caught up with the fleet (60 records end before any minute is out).
    # With max_concurrency 1 a chain could only move on after a whole idle metric minute (the
    # estimate counts the chain itself): 25-45 s of deferral ping-pong instead of about 15.
    code, summary = simulate(
        capsys, "--chains", "3", "--records", "240", "--max-concurrency", "2", "--defer"
    )
    verification = summary["verification"]
    assert code == 0, verification["problems"]
    assert summary["spawns"]["deferred"] >= 1
    assert summary["spawns"]["deferred_for"].get("max_concurrency", 0) >= 1
    assert verification["records"] == {"expected": 720, "exactly_once": 720, "missing": 0, "duplicated": 0}
    assert verification["spawns"]["lost"] == 0 and verification["steps"]["started_twice"] == 0


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
def test_a_function_left_at_terminate_refuses_every_spawn_and_loses_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # CloudWatch's time (and the schedule that resumes parked chains, once a metric minute) 240
    # times the wall clock's: the chains wait 0.25 s, not 1 s, for each resumption.
    code, summary = simulate(
        capsys, "--records", "120", "--recursive-loop", "terminate", "--time-scale", "240"
    )

    verification = summary["verification"]
    assert code == 0, verification["problems"]
    assert summary["spawns"]["spawned"] == 0
    assert summary["spawns"]["refused"].get("recursive_loop", 0) >= 3  # each chain, at least once
    assert summary["calls"]["lambda_invoke"] == 0  # refused before any hand-off
    assert verification["records"]["exactly_once"] == 360  # the schedule resumed every chain


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
    assert main(["--fault", "meteor_strike=1", "--json"]) == 2
    assert "lost_invoke_reply" in capsys.readouterr().err  # the kinds are listed
    assert main(["--fault", "lost_invoke_reply=2", "--json"]) == 2
    assert "within 0..1" in capsys.readouterr().err


@pytest.mark.slow
def test_both_windows_forced_invoke_steps_twice_and_start_them_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Every chain step meets both windows once: its parent's first Invoke loses its reply (the
    # Invoker retries), then the parent dies before its spawn record (Lambda retries it).
    # 9 s kept back, not 5: this test counts every failed spawn, and with 4 s left the spawn's
    # call timeouts (from the time left, estimator.deadline: 1 s per DynamoDB attempt) were
    # missed by the local server under two CPU hogs (``failed 5 <= 3``); with 8 s left each call
    # keeps its configured timeout. The run takes no longer: executions end at their hand-off.
    code, summary = simulate(
        capsys, "--fault", "crash_after_invoke=1", "--fault", "lost_invoke_reply=1",
        "--invocation-seconds", "10", "--shutdown-seconds", "9",
    )

    verification = summary["verification"]
    assert code == 0, verification["problems"]
    assert verification["records"]["exactly_once"] == 180
    faults = summary["faults_injected"]
    # A parent whose record write dies with its process reports SpawnFailed(maybe_spawned=True)
    # (its sibling runs, its record is lost), not "spawned": the only failures of this run.
    spawned = summary["spawns"]["spawned"] + summary["spawns"]["failed"]
    assert spawned >= 3  # each chain needs more than one execution
    assert summary["spawns"]["failed"] <= faults["crash_after_invoke"]
    assert faults["lost_invoke_reply"] >= 3 and faults["crash_after_invoke"] >= 3
    assert faults["invoke_throttle"] == faults["handler_crash"] == 0  # only the windows
    # Two Invokes for each step that lost a reply, and both executions ran...
    assert summary["calls"]["lambda_invoke"] == spawned + faults["lost_invoke_reply"]
    steps = verification["steps"]
    assert steps["invoked_twice"] >= faults["lost_invoke_reply"]
    # ...but the work of each step started once: the library stopped every second execution.
    assert steps["started_twice"] == 0
    assert steps["duplicates_stopped"] >= steps["invoked_twice"]
    assert summary["executions"]["duplicates_stopped"] == steps["duplicates_stopped"]
    # Each crashed parent was retried by Lambda, with its request id.
    assert summary["executions"]["crashed"] == faults["crash_after_invoke"]
    assert summary["executions"]["retries"] >= faults["crash_after_invoke"]


def _invocation(request_id: str, event: dict[str, Any], result: Any = None) -> InvocationRecord:
    invocation = InvocationRecord(
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
        work_started={"a": 1, "b": 1},
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
        work_started={"a": 3, "b": 2},
    )

    assert result.ok and result.problems == []
    assert result.to_dict()["records"]["exactly_once"] == 2
    assert result.to_dict()["steps"] == {
        "executed": 2, "invoked_twice": 0, "started_twice": 0, "work_starts": 2,
        "duplicates_stopped": 0,
    }


def test_verify_fails_a_chain_step_whose_work_started_in_two_executions() -> None:
    # Step 1 of chain "root" was invoked three times: two executions did work, one was stopped.
    invocations = [
        _invocation("b", _sibling_event(1), {"action": "done"}),
        _invocation("c", _sibling_event(1), {"action": "done"}),
        _invocation("d", _sibling_event(1), {"action": "duplicate"}),
    ]

    result = verify(
        chains={}, record_counts={}, invocations=invocations, max_generations=3,
        work_started={"b": 5, "c": 1},
    )

    assert not result.ok
    assert (result.steps_invoked_twice, result.steps_started_twice) == (1, 1)
    assert result.duplicates_stopped == 1
    assert result.details["started_twice"] == ["root#1 (b, c)"]
    assert result.problems == ["1 chain step(s) started in two executions or more: root#1 (b, c)"]


def test_verify_counts_lambda_retries_of_one_execution_as_one_start() -> None:
    retried = _invocation("b", _sibling_event(1), {"action": "done"})
    retried.attempts.insert(0, Attempt(number=1, started_at=0.0, outcome="failed", error="crash"))
    invocations = [
        retried,
        _invocation("c", _sibling_event(1), {"action": "duplicate"}),
        # Without sibling metadata an execution starts a chain of its own: never a repeat.
        _invocation("e", {"chain": "c"}, {"action": "done"}),
        _invocation("f", {"chain": "c"}, {"action": "done"}),
    ]

    result = verify(
        chains={}, record_counts={}, invocations=invocations, max_generations=3,
        work_started={"b": 7, "e": 1, "f": 1},
    )

    assert result.ok, result.problems
    assert (result.steps_executed, result.steps_invoked_twice, result.work_starts) == (3, 1, 3)
    assert result.duplicates_stopped == 1


def test_throttle_injector_answers_like_aws() -> None:
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import ClientError

    from siblings.local.faults import ThrottleInjector
    from siblings.local.server import LocalAwsServer

    injector = ThrottleInjector(1.0, seed=1)
    with LocalAwsServer(middleware=injector.wrap) as server:
        config = BotoConfig(retries={"mode": "standard", "total_max_attempts": 1})
        kwargs = {**server.client_kwargs(), "config": config}
        with pytest.raises(ClientError) as invoke:
            boto3.client("lambda", **kwargs).invoke(FunctionName="fn", InvocationType="Event")
        with pytest.raises(ClientError) as metrics:
            boto3.client("cloudwatch", **kwargs).get_metric_data(
                MetricDataQueries=[], StartTime=0, EndTime=1
            )
        boto3.client("s3", **kwargs).list_buckets()  # not a target: passes through

    assert invoke.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert invoke.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert metrics.value.response["Error"]["Code"] == "Throttling"
    assert injector.injected() == 2
    assert injector.injected("lambda", "Invoke") == 1


def test_throttle_injector_takes_a_rate_per_call() -> None:
    from siblings.local.faults import ThrottleInjector

    injector = ThrottleInjector(0.0, rates={("lambda", "Invoke"): 1.0})
    answers: list[str] = []
    app = injector.wrap(lambda environ, start_response: start_response("200 OK", []) or [b""])
    for service, target in (("lambda", None), ("monitoring", "GraniteServiceVersion20100801.GetMetricData")):
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/2015-03-31/functions/fn/invocations" if target is None else "/",
            "HTTP_AUTHORIZATION": f"Credential=k/20240101/us-east-1/{service}/aws4_request",
            **({"HTTP_X_AMZ_TARGET": target} if target else {}),
            "CONTENT_LENGTH": "0",
            "wsgi.input": io.BytesIO(b""),
        }
        app(environ, lambda status, headers, *_: answers.append(status))

    assert answers[0].startswith("429") and answers[1].startswith("200")
    assert injector.injected() == 1


def test_crash_injector_is_repeatable_and_honours_the_rate() -> None:
    from siblings.local.faults import CrashInjector, InjectedCrash

    class Context:
        def __init__(self, request_id: str) -> None:
            self.aws_request_id = request_id

    def outcomes(seed: int) -> list[str]:
        injector = CrashInjector(0.3, seed=seed, max_steps=5)

        def handler(event: Any, context: Any) -> str:
            for _ in range(5):
                injector.step()
            return "ok"

        crashing = injector.wrap(handler)
        results = []
        for index in range(200):
            try:
                results.append(crashing({}, Context(f"req-{index}")))
            except InjectedCrash as exc:
                results.append("after" if "after" in str(exc) else "mid")
        return results

    first, again = outcomes(5), outcomes(5)
    crashed = sum(result != "ok" for result in first)
    assert first == again
    assert 30 <= crashed <= 90  # about 30% of 200
    assert {"mid", "after"} <= set(first)


def test_example_store_commits_each_record_once_across_crashes_and_zombies(aws: Any) -> None:
    from siblings.local.fleet_worker import load_worker_module
    from siblings.local.settings import DEFAULT_WORKER_FILE

    worker = load_worker_module(DEFAULT_WORKER_FILE)
    dynamodb = aws.client("dynamodb")
    now = [1000.0]
    store = worker.ChainStore(dynamodb, "chains", "output", clock=lambda: now[0])
    store.create_tables()
    store.add_chain("c", 20)

    first = store.claim("c", 1, "A")
    assert first is not None and (first.cursor, first.epoch) == (0, 1)
    assert store.claim("c", 1, "A") is not None  # Lambda's retry of A: same request id
    assert store.commit(first, "A", 0, ["r"] * 5) == 5
    # A crashed attempt wrote its batch at 5 but never moved the cursor: that batch stands.
    dynamodb.put_item(
        TableName="output",
        Item={**worker.batch_key("c", 5), "count": {"N": "3"},
              "results": {"L": [{"S": "r"}] * 3}},
    )
    assert store.commit(first, "A", 5, ["r"] * 5) == 8

    assert store.claim("c", 1, "intruder") is None  # same epoch, other owner
    second = store.claim("c", 2, "B")  # the sibling takes over
    assert second is not None and second.cursor == 8
    assert store.commit(first, "A", 8, ["zombie"] * 4) is None  # A is a zombie now...
    assert store.commit(second, "B", 8, ["r"] * 6) == 12  # ...whose write B keeps, once
    assert store.claim("c", 1, "A") is None  # A's retry cannot come back

    assert store.set_status(second, "B", "parked")
    assert not store.set_status(first, "A", "done")
    adopted = store.adopt("C", stale_after_seconds=60)
    assert adopted is not None and (adopted.epoch, adopted.cursor) == (3, 12)
    assert store.adopt("D", stale_after_seconds=60) is None  # running, heartbeat fresh
    now[0] += 120
    abandoned = store.adopt("D", stale_after_seconds=60)  # C went silent for too long
    assert abandoned is not None and abandoned.epoch == 4
    assert store.commit(adopted, "C", 12, ["r"]) is None  # C wrote a batch, lost the cursor
    assert store.commit(abandoned, "D", 12, ["r"] * 8) == 13  # C's batch of one stands
    assert store.commit(abandoned, "D", 13, ["r"] * 7) == 20

    coverage = store.coverage()
    assert sorted(coverage) == [("c", index) for index in range(20)]
    assert set(coverage.values()) == {1}


def test_a_retried_scheduled_execution_gets_back_the_chain_it_adopted(aws: Any) -> None:
    from siblings.local.fleet_worker import load_worker_module
    from siblings.local.settings import DEFAULT_WORKER_FILE

    worker = load_worker_module(DEFAULT_WORKER_FILE)
    store = worker.ChainStore(aws.client("dynamodb"), "chains")  # one table for both
    store.create_tables()
    store.add_chain("x", 4)

    adopted = store.adopt("S", stale_after_seconds=60)  # crashes after this...
    again = store.adopt("S", stale_after_seconds=60)  # ...and Lambda retries the same request

    assert adopted is not None and again is not None
    assert (again.chain_id, again.epoch) == (adopted.chain_id, adopted.epoch) == ("x", 1)
    assert store.adopt("T", stale_after_seconds=60) is None  # running, not stale
    assert store.commit(again, "S", 0, ["r"] * 4) == 4
    assert store.coverage() == {("x", index): 1 for index in range(4)}


@pytest.mark.slow
def test_fleet_runs_on_the_table_of_the_deployed_template(capsys: pytest.CaptureFixture[str]) -> None:
    template = Path(__file__).resolve().parents[2] / "template.yaml"
    code, summary = simulate(capsys, "--template", str(template))

    verification = summary["verification"]
    assert code == 0, verification["problems"]
    assert verification["ok"] and verification["records"]["exactly_once"] == 180
    shared = summary["shared_table"]
    # The stack's table, named by the parameter the fleet passed (the template's default and the
    # fleet's own table are both "lambda-siblings"); it existed, so the fleet created nothing.
    assert summary["settings"]["table_name"] == shared["name"] == "sim-stack-siblings"
    assert shared["stack_outputs"]["SiblingsTableName"] == "sim-stack-siblings"
    assert shared["created_by_fleet"] is False
    assert summary["settings"]["payload_bucket"] == shared["stack_outputs"]["PayloadBucketName"]
    # What the fleet's guards wrote there during the run.
    items = shared["items_by_kind"]
    assert items.get("estimate", 0) >= 1 and items.get("rules", 0) >= 1
    # One ledger item per spawn (a retried execution's repeat spawn finds it and adds none).
    assert 1 <= items.get("spawn", 0) <= summary["spawns"]["spawned"]
