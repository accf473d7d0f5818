"""The ``siblings`` command against the moto server."""

from __future__ import annotations

import json

import pytest

from siblings.cli import main
from tests.conftest import Aws
from tests.helpers import put_lambda_metrics


def run(aws: Aws, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*argv[:1], "--endpoint-url", aws.endpoint_url, "--region", "us-east-1", *argv[1:]])
    out, err = capsys.readouterr()
    return code, out, err


def test_create_table_is_idempotent(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(aws, capsys, "create-table")[1].strip() == "table 'lambda-siblings' created"
    assert "already exists" in run(aws, capsys, "create-table")[1]


def test_estimate_json_and_table(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    run(aws, capsys, "create-table")
    put_lambda_metrics(aws.client("cloudwatch"), "worker", [(600, 1000)] * 5)
    code, out, _ = run(aws, capsys, "estimate", "worker", "idle", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["worker"]["value"] == 10 and data["worker"]["source"] == "cloudwatch"
    assert data["idle"]["value"] == 0
    code, out, _ = run(aws, capsys, "estimate", "worker", "--minutes-back", "5")
    assert code == 0 and "worker" in out and "10" in out and "dynamodb" in out
    code, out, _ = run(aws, capsys, "estimate", "worker", "--no-cache", "--json")
    assert json.loads(out)["worker"]["source"] == "cloudwatch"
    assert aws.recorder.count("monitoring", "GetMetricData") == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("estimate", "bad name!"), "function_name"),
        (("estimate", "fn", "--minutes-back", "0"), "minutes_back"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    aws: Aws, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, _, err = run(aws, capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_kill_switch_round_trip(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    run(aws, capsys, "create-table")
    assert "disabled" in run(aws, capsys, "disable", "worker", "--reason", "runaway")[1]
    code, out, _ = run(aws, capsys, "status", "worker", "--json")
    status = json.loads(out)
    assert code == 0 and status["spawning_disabled"] is True
    assert status["kill_switch"]["reason"] == "runaway"
    assert "DISABLED" in run(aws, capsys, "status", "worker")[1]
    assert "enabled" in run(aws, capsys, "enable", "worker")[1]
    assert json.loads(run(aws, capsys, "status", "worker", "--json")[1])["spawning_disabled"] is False
