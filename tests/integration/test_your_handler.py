"""Your own handler, locally: ``siblings local``, ``siblings simulate --handler``, ``siblings.testing``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from siblings.local.handler_run import check_chain
from siblings.testing import lambda_context
from tests.docs import ROOT, blocks

# The docs page's handler and its test, written out as a user's project.
PAGE = "testing-your-handler"


def user_project(tmp_path: Path) -> Path:
    handler, test = blocks(PAGE, "python")[:2]
    (tmp_path / "my_app").mkdir()
    (tmp_path / "my_app" / "__init__.py").write_text("")
    (tmp_path / "my_app" / "handler.py").write_text(handler)
    (tmp_path / "test_my_handler.py").write_text(test)
    return tmp_path


def environment(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIBLINGS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(project), str(ROOT)])
    return env


def siblings_command(*argv: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from siblings.cli import main; sys.exit(main())", *argv]


@pytest.mark.slow
def test_the_docs_test_of_a_handler_passes_as_a_users_test(tmp_path: Path) -> None:
    project = user_project(tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "siblings.testing",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "test_my_handler.py",
        ],
        cwd=project,
        env=environment(project),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert len(blocks(PAGE, "python")[1].strip().splitlines()) <= 6  # "five lines"


@pytest.mark.slow
def test_simulate_runs_any_handler_and_verifies_its_chain(tmp_path: Path) -> None:
    project = user_project(tmp_path)
    done = subprocess.run(
        siblings_command(
            "simulate",
            "--handler",
            "my_app.handler:lambda_handler",
            "--event",
            '{"cursor": 0}',
            "--invocation-seconds",
            "2",
            "--shutdown-seconds",
            "1",
            "--json",
        ),
        cwd=project,
        env=environment(project),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["passed"] is True and document["max_generation"] >= 1
    assert document["invocations"] == document["steps"] == document["max_generation"] + 1


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--handler", "no_such_module:handler"], "no module 'no_such_module'"),
        (["--handler", "my_app.handler"], "package.module:function"),
        (["--handler", "my_app.handler:nothing_here"], "no function 'nothing_here'"),
        (["--handler", "my_app.handler:lambda_handler", "--event", "/no/such.json"], "no such file"),
        (["--handler", "my_app.handler:lambda_handler", "--event", "[1]"], "JSON object"),
    ],
)
def test_simulate_handler_bad_input_is_one_line(tmp_path: Path, argv: list[str], words: str) -> None:
    project = user_project(tmp_path)
    done = subprocess.run(
        siblings_command("simulate", *argv),
        cwd=project,
        env=environment(project),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and words in done.stderr and "Traceback" not in done.stderr


def test_local_serves_until_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen(
        siblings_command("local", "--port", "0"),
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background by a shell inherits SIGINT ignored, and so would the
        # child (an ignored signal survives exec): Ctrl-C is what this test sends.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert process.stdout is not None
        exports = {}
        for line in process.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                exports[name] = value
            elif line.startswith("#"):
                break
        assert exports["AWS_ENDPOINT_URL"] == exports["SIBLINGS_ENDPOINT_URL"]
        client = boto3.client(
            "dynamodb",
            endpoint_url=exports["AWS_ENDPOINT_URL"],
            region_name=exports["AWS_DEFAULT_REGION"],
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=exports["AWS_SESSION_TOKEN"],
        )
        assert (
            client.describe_table(TableName=exports["SIBLINGS_TABLE_NAME"])["Table"]["TableStatus"]
            == "ACTIVE"
        )
        rules = boto3.client(
            "events",
            endpoint_url=exports["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).list_rules()["Rules"]
        assert [rule["State"] for rule in rules] == ["ENABLED"]
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0 and "Traceback" not in err


def test_lambda_context_counts_down_on_its_clock() -> None:
    from estimator.clock import ManualClock

    clock = ManualClock()
    context = lambda_context("fn", remaining_ms=3_000, qualifier="live", clock=clock)
    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:fn:live"
    assert context.get_remaining_time_in_millis() == 3_000
    clock.advance(1.0)
    assert context.get_remaining_time_in_millis() == 2_000
    assert context.aws_request_id != lambda_context("fn").aws_request_id


def test_the_chain_check_catches_what_it_claims(tmp_path: Path) -> None:
    """A step worked twice, a runaway and a lost spawn, each reported."""
    from siblings.local.runtime.records import Attempt, AttemptOutcome, InvocationRecord, InvocationStatus
    from siblings.metadata import METADATA_KEY, ChainMetadata

    def record(
        request_id: str, generation: int, parent: str | None, result: object = None
    ) -> InvocationRecord:
        event = {} if generation == 0 else {METADATA_KEY: ChainMetadata("root", generation, parent).to_dict()}
        inv = InvocationRecord(
            request_id, "fn", None, "arn", "$LATEST", json.dumps(event).encode(), 3, 128, 0.0
        )
        inv.status = InvocationStatus.SUCCEEDED
        inv.attempts.append(Attempt(1, 0.0, 0.1, outcome=AttemptOutcome.SUCCEEDED, result=result))
        return inv

    ok = [record("root", 0, None), record("a", 1, "root"), record("b", 2, "a")]
    assert check_chain(ok, set(), max_generations=5).passed
    twice = [*ok, record("b2", 2, "a")]
    assert "two executions" in check_chain(twice, set(), max_generations=5).problems[0]
    assert check_chain(twice, {"b2"}, max_generations=5).passed  # stopped as a duplicate
    assert "max_generations" in check_chain(ok, set(), max_generations=1).problems[0]
    lost = [*ok[:2], record("b", 2, "a", result={"spawned": True})]
    assert "no sibling ran" in check_chain(lost, set(), max_generations=5).problems[0]
