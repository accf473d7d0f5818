"""Every Python example of the docs site and the README runs on the moto server, as a user runs it."""

from __future__ import annotations

import json
from typing import Any

import pytest

import estimator.estimator as estimator_module
import siblings.handler as handler_module
from tests.conftest import Aws
from tests.docs import blocks, pages
from tests.integration.siblings.support import FakeContext, build_env


@pytest.fixture
def user_env(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Any:
    # What a user sets to point the library at an endpoint: only SIBLINGS_* variables.
    monkeypatch.setenv("SIBLINGS_ENDPOINT_URL", aws.endpoint_url)
    monkeypatch.setenv("SIBLINGS_REGION_NAME", "us-east-1")
    monkeypatch.setattr(estimator_module, "_default_estimators", {})
    monkeypatch.setattr(handler_module, "_default", None)
    return build_env(aws.endpoint_url, aws.recorder)


# Each page's Python blocks, in page order, and the tests below that run them.
EXECUTED = {
    "README": 1,
    "index": 1,
    "estimate-concurrency": 2,
    "spawn-siblings": 2,
    "operate": 1,
    "testing-your-handler": 2,  # a user's project: tests/integration/test_your_handler.py
}


def test_every_python_block_is_executed_here() -> None:
    found = {name: len(blocks(name, "python")) for name in pages() if blocks(name, "python")}
    assert found == EXECUTED


def run_block(name: str, index: int) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(blocks(name, "python")[index], f"{name}.md", "exec"), namespace)
    return namespace


def test_estimator_examples(user_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run_block("estimate-concurrency", 0)
    run_block("estimate-concurrency", 1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "0" and lines[1] == "0"
    assert lines[2] == "0 dynamodb False"  # the first block already shared the value
    assert lines[3] == "None None"  # no ConcurrentExecutions datapoints
    assert lines[4] == "0"
    assert lines[5] == "{'fn-a': 0, 'fn-b': 0, 'fn-c': 0}"
    assert lines[6] == "1000"  # the embedded server's GetAccountSettings


def test_invocation_handler_example(user_env: Any) -> None:
    user_env.rule("schedule")
    handler = run_block("spawn-siblings", 0)["lambda_handler"]
    assert handler({}, FakeContext(user_env.function_arn, remaining_ms=60_000)) == {
        "done": True,
        "generation": 0,
    }
    result = handler({"cursor": 5}, FakeContext(user_env.function_arn, remaining_ms=5_000))
    assert result["spawned"] is True and result["generation"] == 1
    assert user_env.invokes.events[0]["cursor"] == 5


def test_sosw_style_example(user_env: Any) -> None:
    user_env.rule("schedule")
    user_env.bucket("my-bucket")
    handler = run_block("spawn-siblings", 1)["lambda_handler"]
    assert handler({}, FakeContext(user_env.function_arn)) == "Reached the end of data"
    result = handler({"cursor": 3}, FakeContext(user_env.function_arn, remaining_ms=5_000))
    assert result["spawned"] is True
    assert user_env.invokes.events[0]["cursor"] == 3


def test_powertools_metrics_example(user_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from aws_lambda_powertools import Metrics

    user_env.rule("schedule")
    namespace: dict[str, Any] = {}
    Metrics().clear_metrics()  # one metric set per process: start and end empty
    try:
        namespace = run_block("operate", 0)
        capsys.readouterr()
        result = namespace["lambda_handler"]({"cursor": 1}, FakeContext(user_env.function_arn))
        printed = capsys.readouterr().out
    finally:
        Metrics().clear_metrics()
    assert result["spawned"] is True and user_env.invokes.events[0]["cursor"] == 2
    (document,) = [json.loads(line) for line in printed.splitlines() if line.startswith("{")]
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MyApp"
    assert document["spawned"] == [1.0] and document["service"] == "orders"


@pytest.mark.parametrize("name", ["README", "index"])
def test_landing_example(name: str, user_env: Any) -> None:
    user_env.rule("schedule")
    handler = run_block(name, 0)["lambda_handler"]
    assert handler({"cursor": 999}, FakeContext(user_env.function_arn)) == {"done": True}
    result = handler({}, FakeContext(user_env.function_arn, remaining_ms=5_000))
    assert result["spawned"] is True and result["generation"] == 1
    assert user_env.invokes.events[0]["cursor"] == 0
