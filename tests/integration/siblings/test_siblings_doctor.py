"""``siblings doctor``: each pre-flight check passes on a good deployment and fails once, alone,
against the embedded server."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from siblings import cli, doctor
from siblings.iam import RUNTIME_ACTIONS
from tests.integration.siblings.support import FUNCTION, REGION, SiblingsEnv

PRINCIPAL = "arn:aws:iam::123456789012:role/worker-role"


class RecursionAnswered:
    """The Lambda client with GetFunctionRecursionConfig answered (moto 5.2.5 has none)."""

    def __init__(self, client: Any, loop: str = "Allow") -> None:
        self._client = client
        self.loop = loop

    def get_function_recursion_config(self, FunctionName: str) -> dict[str, Any]:  # noqa: N803
        """AWS's response shape (FunctionName, RecursiveLoop)."""
        return {"RecursiveLoop": self.loop}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class Simulator:
    """IAM's SimulatePrincipalPolicy, deciding ``denied`` actions implicitDeny (moto has none)."""

    def __init__(self, denied: frozenset[str] = frozenset()) -> None:
        self.denied = denied
        self.asked: list[dict[str, Any]] = []

    def simulate_principal_policy(self, **request: Any) -> dict[str, Any]:
        """AWS's response shape: one EvaluationResult per action."""
        self.asked.append(request)
        return {"EvaluationResults": [
            {"EvalActionName": action,
             "EvalDecision": "implicitDeny" if action in self.denied else "allowed"}
            for action in request["ActionNames"]
        ]}


def deploy(env: SiblingsEnv, **variables: str) -> dict[str, Any]:
    """A good deployment: an enabled rule, a payload bucket, reserved concurrency above
    max_concurrency; ``variables`` change the function's SIBLINGS_* environment."""
    env.rule("schedule")
    bucket = env.bucket()
    lam = env.client("lambda")
    lam.put_function_concurrency(FunctionName=FUNCTION, ReservedConcurrentExecutions=20)
    environment = {"SIBLINGS_PAYLOAD_BUCKET": bucket, "SIBLINGS_MAX_CONCURRENCY": "10", **variables}
    lam.update_function_configuration(FunctionName=FUNCTION, Environment={"Variables": environment})
    return {"lambda": RecursionAnswered(lam), "iam": Simulator()}


def run(env: SiblingsEnv, injected: dict[str, Any], **overrides: Any) -> tuple[int, list[str]]:
    out = io.StringIO()
    settings = {"endpoint_url": env.endpoint_url, "region_name": REGION, **overrides}
    code = doctor.run(FUNCTION, settings, env.session, out, principal_arn=PRINCIPAL, injected=injected)
    return code, out.getvalue().splitlines()


def test_a_good_deployment_passes_every_check(env: SiblingsEnv) -> None:
    injected = deploy(env)
    code, lines = run(env, injected)
    assert code == 0, lines
    assert [line.split(":")[0] for line in lines] == [
        "✓ table", "✓ recursion", "✓ trigger", "✓ concurrency", "✓ payload bucket", "✓ iam", "✓ emf",
    ]
    (asked,) = injected["iam"].asked
    assert asked["PolicySourceArn"] == PRINCIPAL and set(asked["ActionNames"]) == RUNTIME_ACTIONS


def _no_table(env: SiblingsEnv, injected: dict[str, Any]) -> dict[str, Any]:
    return {"table_name": "no-such-table"}


def _terminate(env: SiblingsEnv, injected: dict[str, Any]) -> dict[str, Any]:
    injected["lambda"].loop = "Terminate"  # Lambda's default
    return {}


class RecursionUnanswered(RecursionAnswered):
    """An endpoint without the API (moto 5.2.5 answers 404, as an old emulator would)."""

    def get_function_recursion_config(self, FunctionName: str) -> dict[str, Any]:  # noqa: N803
        """Fail as botocore does on a 404 without an AWS error body."""
        error: Any = {"Error": {"Code": "404", "Message": "Not Found"}}
        raise ClientError(error, "GetFunctionRecursionConfig")


def _unanswered(env: SiblingsEnv, injected: dict[str, Any]) -> dict[str, Any]:
    injected["lambda"] = RecursionUnanswered(env.client("lambda"))
    return {}


def _rule_disabled(env: SiblingsEnv, injected: dict[str, Any]) -> dict[str, Any]:
    env.client("events").disable_rule(Name="schedule")
    return {}


def test_an_enabled_trigger_schedule_passes_the_trigger_check(env: SiblingsEnv) -> None:
    injected = deploy(env)
    env.client("events").disable_rule(Name="schedule")
    env.client("scheduler").create_schedule(
        Name="nightly", ScheduleExpression="rate(1 hour)", FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": env.function_arn, "RoleArn": PRINCIPAL}, State="ENABLED",
    )
    env.client("lambda").update_function_configuration(FunctionName=FUNCTION, Environment={
        "Variables": {"SIBLINGS_TRIGGER_SCHEDULES": "default/nightly"}
    })
    code, lines = run(env, injected)
    assert lines[2] == "✓ trigger: schedule 'default/nightly' is ENABLED", lines
    assert code == 0


def _reserved_below_max(env: SiblingsEnv, injected: dict[str, Any]) -> dict[str, Any]:
    env.client("lambda").put_function_concurrency(FunctionName=FUNCTION, ReservedConcurrentExecutions=5)
    return {}


def _no_bucket(env: SiblingsEnv, injected: dict[str, Any]) -> dict[str, Any]:
    env.client("lambda").update_function_configuration(
        FunctionName=FUNCTION, Environment={"Variables": {"SIBLINGS_PAYLOAD_BUCKET": "missing-bucket"}}
    )
    return {}


def _denied(env: SiblingsEnv, injected: dict[str, Any]) -> dict[str, Any]:
    injected["iam"] = Simulator(frozenset({"lambda:InvokeFunction"}))
    return {}


def _metrics_off(env: SiblingsEnv, injected: dict[str, Any]) -> dict[str, Any]:
    env.client("lambda").update_function_configuration(
        FunctionName=FUNCTION, Environment={"Variables": {"SIBLINGS_METRICS_ENABLED": "false"}}
    )
    return {}


@pytest.mark.parametrize(
    ("breaks", "check", "says"),
    [
        (_no_table, "table", "run `siblings create-table`"),
        (_terminate, "recursion", "RecursiveLoop is 'Terminate'"),
        (_unanswered, "recursion", "GetFunctionRecursionConfig not answered"),
        (_rule_disabled, "trigger", "no ENABLED EventBridge rule"),
        (_reserved_below_max, "concurrency", "reserved concurrency 5 < max_concurrency=10"),
        (_no_bucket, "payload bucket", "s3://missing-bucket/"),
        (_denied, "iam", "may not lambda:InvokeFunction"),
        (_metrics_off, "emf", "set SIBLINGS_METRICS_ENABLED=true"),
    ],
)
def test_each_check_fails_alone_with_its_fix(
    env: SiblingsEnv,
    breaks: Callable[[SiblingsEnv, dict[str, Any]], dict[str, Any]],
    check: str,
    says: str,
) -> None:
    injected = deploy(env)
    overrides = breaks(env, injected)
    code, lines = run(env, injected, **overrides)
    assert code == 1
    failed = [line for line in lines if line.startswith("✗")]
    assert len(failed) == 1 and failed[0].startswith(f"✗ {check}: "), lines
    assert says in failed[0]
    assert len(lines) == 7


def test_the_command_reports_an_unknown_function_in_one_line(
    env: SiblingsEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["doctor", "nobody", "--endpoint-url", env.endpoint_url, "--region", REGION]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["siblings doctor: error: function 'nobody' not found in this account and Region"]


def test_the_command_runs_every_check_against_the_server(
    env: SiblingsEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy(env)
    argv = ["doctor", FUNCTION, "--endpoint-url", env.endpoint_url, "--region", REGION]
    # Every answer from the embedded server itself, recursion config included.
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7 and all(line.startswith("✓") for line in lines), lines
    env.client("lambda").put_function_recursion_config(FunctionName=FUNCTION, RecursiveLoop="Terminate")
    assert cli.main(argv) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line[0] for line in lines].count("✗") == 1
    assert lines[1].startswith("✗ recursion: RecursiveLoop is 'Terminate'")
    assert lines[5].startswith("✓ iam: not simulated")
