"""Every Python example in README.md runs, against the moto server, as a user would run it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import estimator.estimator as estimator_module
import siblings.handler as handler_module
from tests.conftest import Aws
from tests.integration.siblings.support import FakeContext, build_env

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.fixture
def user_env(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Any:
    # What a user sets to point the library at an endpoint: only SIBLINGS_* variables.
    monkeypatch.setenv("SIBLINGS_ENDPOINT_URL", aws.endpoint_url)
    monkeypatch.setenv("SIBLINGS_REGION_NAME", "us-east-1")
    monkeypatch.setattr(estimator_module, "_default_estimators", {})
    monkeypatch.setattr(handler_module, "_default", None)
    return build_env(aws.endpoint_url, aws.recorder)


def test_readme_has_the_examples() -> None:
    assert len(python_blocks()) == 4


def test_estimator_examples(user_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    for block in python_blocks()[:2]:
        exec(compile(block, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "0" and lines[1] == "0"
    assert lines[2] == "0 dynamodb False"  # the first block already shared the value
    assert lines[3] == "{'fn-a': 0, 'fn-b': 0, 'fn-c': 0}"


def test_invocation_handler_example(user_env: Any) -> None:
    user_env.rule("schedule")
    namespace: dict[str, Any] = {}
    exec(compile(python_blocks()[2], "README.md", "exec"), namespace)
    handler = namespace["lambda_handler"]
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
    namespace: dict[str, Any] = {}
    exec(compile(python_blocks()[3], "README.md", "exec"), namespace)
    handler = namespace["lambda_handler"]
    assert handler({}, FakeContext(user_env.function_arn)) == "Reached the end of data"
    result = handler({"cursor": 3}, FakeContext(user_env.function_arn, remaining_ms=5_000))
    assert result["spawned"] is True
    assert user_env.invokes.events[0]["cursor"] == 3
