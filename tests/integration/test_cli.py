"""The ``siblings`` command against the moto server."""

from __future__ import annotations

import json

import pytest

from estimator import ConcurrencyEstimator
from estimator.clock import SYSTEM_CLOCK, Clock, ManualClock
from siblings.cli import main
from tests.conftest import Aws
from tests.helpers import local_config, minute_clock, put_concurrency_metrics, put_lambda_metrics


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich wraps tables to 80 columns when not on a terminal; keep the cells whole."""
    monkeypatch.setenv("COLUMNS", "200")


def run(
    aws: Aws, capsys: pytest.CaptureFixture[str], *argv: str, clock: Clock = SYSTEM_CLOCK
) -> tuple[int, str, str]:
    code = main(
        [*argv[:1], "--endpoint-url", aws.endpoint_url, "--region", "us-east-1", *argv[1:]],
        clock=clock,
    )
    out, err = capsys.readouterr()
    return code, out, err


def test_create_table_is_idempotent(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(aws, capsys, "create-table")[1].strip() == "table 'lambda-siblings' created"
    assert "already exists" in run(aws, capsys, "create-table")[1]


def test_estimate_json_and_table(
    aws: Aws, capsys: pytest.CaptureFixture[str], clock: ManualClock
) -> None:
    # The command on a virtual clock: however slow the machine, its window stays the data's.
    run(aws, capsys, "create-table")
    put_lambda_metrics(aws.client("cloudwatch"), "worker", [(600, 1000)] * 5, clock=clock)
    code, out, _ = run(aws, capsys, "estimate", "worker", "idle", "--json", clock=clock)
    assert code == 0
    data = json.loads(out)
    assert data["worker"]["value"] == 10 and data["worker"]["source"] == "cloudwatch"
    assert data["idle"]["value"] == 0
    assert data["worker"]["observed_peak"] is None and data["worker"]["account_limit"] == 1000
    code, out, _ = run(aws, capsys, "estimate", "worker", "--minutes-back", "5", clock=clock)
    assert code == 0 and "worker" in out and "10" in out and "dynamodb" in out
    code, out, _ = run(aws, capsys, "estimate", "worker", "--no-cache", "--json", clock=clock)
    assert json.loads(out)["worker"]["source"] == "cloudwatch"
    assert aws.recorder.count("monitoring", "GetMetricData") == 2


def test_estimate_shows_observed_peak_and_the_account(
    aws: Aws, capsys: pytest.CaptureFixture[str], clock: ManualClock
) -> None:
    run(aws, capsys, "create-table")
    cloudwatch = aws.client("cloudwatch")
    put_lambda_metrics(cloudwatch, "worker", [(600, 1000)] * 5, clock=clock)
    put_concurrency_metrics(cloudwatch, "worker", [4, 12, 7, 9, 5], clock=clock)
    put_concurrency_metrics(cloudwatch, None, [80, 140, 90, 70, 60], clock=clock)  # account-wide
    aws.server.account_settings.concurrency_limit = 500
    code, out, _ = run(aws, capsys, "estimate", "worker", "--json", clock=clock)
    entry = json.loads(out)["worker"]
    assert code == 0
    assert (entry["value"], entry["observed_peak"]) == (10, 12)
    assert (entry["account_concurrency"], entry["account_limit"]) == (140, 500)
    code, out, _ = run(aws, capsys, "estimate", "worker", clock=clock)
    assert code == 0 and "observed_peak" in out and "140 / 500" in out and "12" in out
    assert aws.recorder.count("monitoring", "GetMetricData") == 1
    assert aws.recorder.count("lambda", "GetAccountSettings") == 1  # then the shared cache


def test_watch_reads_through_the_shared_cache(
    aws: Aws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # One virtual clock for the fleet and the watcher: however slow the machine, the fleet's
    # value is still fresh when the watcher reads it, and each window lasts exactly 1 s.
    clock = minute_clock()
    run(aws, capsys, "create-table")
    put_concurrency_metrics(aws.client("cloudwatch"), "worker", [3, 5], clock=clock)
    # The fleet keeps the estimate fresh: the watcher costs it no extra GetMetricData.
    fleet = ConcurrencyEstimator(
        local_config(aws.endpoint_url, cache_ttl_seconds=1.0), session=aws.session, clock=clock
    )
    fleet.estimate("worker")
    aws.recorder.reset()
    monkeypatch.setenv("SIBLINGS_CACHE_TTL_SECONDS", "1")
    code, out, _ = run(aws, capsys, "estimate", "worker", "--watch", "--count", "1", clock=clock)
    assert code == 0 and "worker" in out and "observed_peak" in out
    assert aws.recorder.count("monitoring", "GetMetricData") == 0
    assert clock.slept == 0  # one refresh shown: no wait for the next window
    # Three refreshes, one per cache window (1 s): at most one GetMetricData each.
    code, out, _ = run(aws, capsys, "estimate", "worker", "--watch", "--count", "3", clock=clock)
    assert code == 0 and out.count("worker") >= 1
    assert 1.0 <= clock.slept <= 3.0  # two waits, each until the shown value expires (>= 0.5 s)
    assert 1 <= aws.recorder.count("monitoring", "GetMetricData") <= 3


def test_watch_refuses_no_cache(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(aws, capsys, "estimate", "worker", "--watch", "--no-cache")
    assert code == 2 and "shared cache" in err


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
