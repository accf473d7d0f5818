"""The ``siblings`` command facing a broken AWS environment: one line on stderr, a distinct exit code.

Every AWS call goes to a moto server on 127.0.0.1 (or to a closed loopback port); the
environment of each test is stripped of every ``AWS_*`` variable first, so nothing from the
machine (a profile, a Region, instance metadata) can hide or cause the problem under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from siblings.cli import build_parser, main
from siblings.iam import iam_action
from siblings.local.calls import identify, read_body
from siblings.local.server import LOCAL_CREDENTIALS, LOCAL_REGION, LocalAwsServer, WsgiApp
from tests.conftest import Aws
from tests.docs import section
from tests.helpers import closed_port_url, serve_behind

ROOT = Path(__file__).resolve().parents[2]
TABLE_COMMANDS = [("status", "worker"), ("disable", "worker"), ("enable", "worker")]


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """No AWS configuration at all: no Region, no credentials, empty config files, no IMDS."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return dict(os.environ)


def with_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", LOCAL_CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LOCAL_CREDENTIALS["aws_secret_access_key"])


def with_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", LOCAL_REGION)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    """Exit code and stderr lines of ``siblings ARGV``."""
    code = main(list(argv))
    return code, capsys.readouterr().err.splitlines()


def assert_one_line(lines: list[str], command: str, *hints: str) -> None:
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"siblings {command}: error: ")
    assert "Traceback" not in lines[0]
    for hint in hints:
        assert hint in lines[0]


def command_line(command: tuple[str, ...], endpoint_url: str) -> list[str]:
    return [command[0], "--endpoint-url", endpoint_url, *command[1:]]


# --- no Region ---


@pytest.mark.parametrize("command", [("estimate", "worker"), ("create-table",), *TABLE_COMMANDS])
def test_no_region(
    aws: Aws, bare_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...],
) -> None:
    with_credentials(monkeypatch)
    code, err = run(capsys, *command_line(command, aws.endpoint_url))
    assert code == 3
    assert_one_line(err, command[0], "no AWS Region", "--region", "AWS_DEFAULT_REGION")


@pytest.mark.parametrize("command", [("estimate", "worker"), ("status", "worker")])
def test_no_region_through_a_real_process(
    aws: Aws, bare_env: dict[str, str], command: tuple[str, ...]
) -> None:
    env = {**bare_env, **{k.upper(): v for k, v in LOCAL_CREDENTIALS.items()}}
    done = subprocess.run(
        [sys.executable, "-m", "siblings.cli", *command_line(command, aws.endpoint_url)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 3
    assert_one_line(done.stderr.splitlines(), command[0], "no AWS Region")
    assert done.stdout == ""


def test_region_flag_fixes_it(
    aws: Aws, bare_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with_credentials(monkeypatch)
    code = main(["create-table", "--endpoint-url", aws.endpoint_url, "--region", LOCAL_REGION])
    assert code == 0 and capsys.readouterr().err == ""


# --- no credentials ---


@pytest.mark.parametrize("command", [("estimate", "worker"), ("create-table",), *TABLE_COMMANDS])
def test_no_credentials(
    aws: Aws, bare_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...],
) -> None:
    with_region(monkeypatch)
    code, err = run(capsys, *command_line(command, aws.endpoint_url))
    assert code == 4
    assert_one_line(err, command[0], "no AWS credentials", "AWS_PROFILE", "AWS_ACCESS_KEY_ID")


def test_partial_credentials(
    aws: Aws, bare_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with_region(monkeypatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDONLY")
    code, err = run(capsys, "status", "--endpoint-url", aws.endpoint_url, "worker")
    assert code == 4
    assert_one_line(err, "status", "no AWS credentials", "AWS_SECRET_ACCESS_KEY")


# --- no table ---


@pytest.mark.parametrize("command", TABLE_COMMANDS)
def test_no_table(
    aws: Aws, bare_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...],
) -> None:
    with_credentials(monkeypatch)
    with_region(monkeypatch)
    argv = [*command_line(command, aws.endpoint_url), "--table-name", "ops-siblings"]
    code, err = run(capsys, *argv)
    assert code == 5
    assert_one_line(
        err, command[0], "'ops-siblings'", LOCAL_REGION, "siblings create-table",
        "--table-name", "SIBLINGS_TABLE_NAME",
    )


def test_estimate_without_a_table_still_answers_from_cloudwatch(
    aws: Aws, bare_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with_credentials(monkeypatch)
    with_region(monkeypatch)
    code = main(["estimate", "--endpoint-url", aws.endpoint_url, "worker", "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert json.loads(out)["worker"]["source"] == "cloudwatch"


# --- endpoint unreachable ---


@pytest.mark.parametrize("command", [("estimate", "worker"), ("create-table",), *TABLE_COMMANDS])
def test_endpoint_unreachable(
    bare_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...],
) -> None:
    with_credentials(monkeypatch)
    with_region(monkeypatch)
    url = closed_port_url()
    code, err = run(capsys, *command_line(command, url))
    assert code == 8
    assert_one_line(err, command[0], url, "--endpoint-url", "SIBLINGS_ENDPOINT_URL", "network")


# --- AWS refuses: access denied, credentials rejected ---

ACCOUNT = "123456789012"


class Refusal:
    """WSGI middleware: answers DynamoDB and CloudWatch calls with the error AWS sends when it
    refuses a request (``code``), on their JSON protocol; ``None`` lets every call through.
    """

    def __init__(self) -> None:
        self.code: str | None = None
        self.refused: list[str] = []

    def wrap(self, app: WsgiApp) -> WsgiApp:
        def refusing(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            service, operation = identify(environ, read_body(environ))
            if self.code is None or service not in {"dynamodb", "monitoring"}:
                return app(environ, start_response)
            action = iam_action(service, operation)
            self.refused.append(action)
            status, headers, body = self._answer(service, action)
            start_response(status, headers)
            return [body]

        return refusing

    def _answer(self, service: str, action: str) -> tuple[str, list[tuple[str, str]], bytes]:
        assert self.code is not None
        if self.code == "AccessDeniedException":
            table = f"arn:aws:dynamodb:{LOCAL_REGION}:{ACCOUNT}:table/lambda-siblings"
            resource = f" on resource: {table}" if service == "dynamodb" else ""
            message = (
                f"User: arn:aws:iam::{ACCOUNT}:user/operator is not authorized to perform: "
                f"{action}{resource} because no identity-based policy allows the {action} action"
            )
        else:
            message = "The security token included in the request is invalid."
        headers = [
            ("x-amzn-RequestId", str(uuid.uuid4())),
            ("Content-Type", "application/x-amz-json-1.0"),
        ]
        if service == "monitoring":
            # CloudWatch is query-compatible: botocore reports the query protocol's code.
            query_code = {"AccessDeniedException": "AccessDenied"}.get(self.code, "InvalidClientTokenId")
            headers.append(("x-amzn-query-error", f"{query_code};Sender"))
        body = json.dumps({"__type": f"com.amazon.coral.service#{self.code}", "message": message})
        payload = body.encode()
        headers.append(("Content-Length", str(len(payload))))
        return "400 Bad Request", headers, payload


@pytest.fixture(scope="module")
def refusing_server() -> Iterator[tuple[LocalAwsServer, Refusal]]:
    yield from serve_behind(Refusal())


@pytest.fixture
def refusing(
    refusing_server: tuple[LocalAwsServer, Refusal], bare_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[str, Refusal]]:
    server, refusal = refusing_server
    server.reset()
    with_credentials(monkeypatch)
    with_region(monkeypatch)
    assert main(["create-table", "--endpoint-url", server.endpoint_url]) == 0
    refusal.refused.clear()
    try:
        yield server.endpoint_url, refusal
    finally:
        refusal.code = None


@pytest.mark.parametrize(
    ("command", "action"),
    [
        (("status", "worker"), "dynamodb:BatchGetItem"),
        (("disable", "worker"), "dynamodb:PutItem"),
        (("create-table",), "dynamodb:DescribeTable"),
        (("estimate", "worker"), "cloudwatch:GetMetricData"),
    ],
)
def test_access_denied(
    refusing: tuple[str, Refusal], capsys: pytest.CaptureFixture[str],
    command: tuple[str, ...], action: str,
) -> None:
    url, refusal = refusing
    capsys.readouterr()
    refusal.code = "AccessDeniedException"
    code, err = run(capsys, *command_line(command, url))
    assert action in refusal.refused
    assert code == 6
    assert_one_line(err, command[0], "access denied", action, "IAM")


@pytest.mark.parametrize("command", [("status", "worker"), ("estimate", "worker")])
def test_credentials_rejected(
    refusing: tuple[str, Refusal], capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    url, refusal = refusing
    capsys.readouterr()
    refusal.code = "UnrecognizedClientException"
    code, err = run(capsys, *command_line(command, url))
    assert code == 7
    assert_one_line(err, command[0], "rejected", "security token", "AWS_PROFILE")


# --- what stays as it was ---


def test_verbose_explains_the_chain_without_a_traceback(
    bare_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with_credentials(monkeypatch)
    with_region(monkeypatch)
    code, err = run(capsys, "-v", "status", "--endpoint-url", closed_port_url(), "worker")
    assert code == 8 and len(err) > 1
    assert any("EndpointConnectionError" in line for line in err)
    assert not any("Traceback" in line for line in err)


def test_exit_codes_are_documented_in_help() -> None:
    epilog = build_parser().format_help()
    for code, words in [
        ("2", "usage"), ("3", "Region"), ("4", "credentials"), ("5", "table"),
        ("6", "denied"), ("7", "rejected"), ("8", "endpoint"), ("130", "interrupted"),
    ]:
        assert any(line.split()[:1] == [code] and words in line for line in epilog.splitlines())
    cli_page = section("operate", "The CLI: `siblings`")
    assert "exit status" in cli_page.lower() and "| 8 |" in cli_page


def test_a_genuine_bug_still_shows_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import siblings.cli as cli

    def broken(args: Any) -> int:
        raise KeyError("bug")

    monkeypatch.setattr(cli, "cmd_create_table", broken)
    with pytest.raises(KeyError):
        main(["create-table"])


def test_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import siblings.cli as cli

    def interrupted(args: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_create_table", interrupted)
    assert main(["create-table"]) == 130
    assert capsys.readouterr().err == ""
