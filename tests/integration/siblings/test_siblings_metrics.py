"""Operator metrics of spawn decisions in CloudWatch Embedded Metric Format, all three ways:
the caller's Powertools ``Metrics``, Powertools' own documents on stdout (on Lambda), and the
decision's JSON log line. Every document is checked against the EMF specification."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import siblings.emf
from siblings import METADATA_KEY
from siblings.decisions import log as decisions_log
from siblings.decisions import stdout_handler
from tests.integration.siblings.support import FUNCTION, SiblingsEnv

# CloudWatch's units (MetricDatum.Unit), the only ones EMF accepts.
UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None",
}


def assert_emf(document: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Check ``document`` against the EMF specification; returns ``{name: (unit, value)}``.

    ``_aws`` holds ``Timestamp`` (epoch ms) and ``CloudWatchMetrics``, a list of directives, each
    with ``Namespace``, ``Dimensions`` (lists of dimension names, each a string member of the
    document) and ``Metrics`` (``Name``, ``Unit``), whose values are numeric top-level members.
    """
    meta = document["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000
    directives = meta["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    found: dict[str, tuple[str, Any]] = {}
    for directive in directives:
        assert isinstance(directive["Namespace"], str) and 1 <= len(directive["Namespace"]) <= 255
        assert isinstance(directive["Dimensions"], list)
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list) and len(dimension_set) <= 30
            for name in dimension_set:
                assert isinstance(document[name], str), name
        metrics = directive["Metrics"]
        assert isinstance(metrics, list) and 1 <= len(metrics) <= 100
        for metric in metrics:
            name, unit = metric["Name"], metric.get("Unit", "None")
            assert isinstance(name, str) and 1 <= len(name) <= 255
            assert unit in UNITS, unit
            value = document[name]
            values = value if isinstance(value, list) else [value]
            assert values and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in values
            ), (name, value)
            found[name] = (unit, value)
    return found


def log_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "siblings"]


def three_decisions(env: SiblingsEnv, **custom: Any) -> Any:
    """A spawn, its retry (a duplicate) and a sibling past max_generations (a refusal)."""
    env.rule("schedule")
    manager = env.manager({"max_generations": 1, **custom.pop("config", {})}, **custom)
    context = env.context()
    manager.spawn_sibling(context, {"cursor": 1})
    manager.spawn_sibling(context, {"cursor": 1})
    deep = {METADATA_KEY: {"chain_id": "c", "generation": 1}}
    manager.spawn_sibling(env.context(), {"cursor": 1}, event=deep)
    return manager


@pytest.fixture
def off_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_EXECUTION_ENV", raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)  # not enough to count as Lambda


@pytest.fixture
def on_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EXECUTION_ENV", "AWS_Lambda_python3.12")  # what Lambda's runtime sets
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)


def test_the_log_line_is_an_emf_document(
    env: SiblingsEnv, caplog: pytest.LogCaptureFixture, off_lambda: None
) -> None:
    with caplog.at_level(logging.INFO, logger="siblings"):
        three_decisions(env, config={"metrics_namespace": "Team/Workers"})
    spawned, duplicate, refused = (assert_emf(line) for line in log_lines(caplog))
    lines = log_lines(caplog)
    assert {line["_aws"]["CloudWatchMetrics"][0]["Namespace"] for line in lines} == {"Team/Workers"}
    assert {line["function_name"] for line in lines} == {FUNCTION}
    assert spawned["spawned"] == ("Count", 1) and spawned["generation"] == ("None", 1)
    assert spawned["guard_latency"][0] == "Milliseconds" and spawned["guard_latency"][1] >= 0
    assert duplicate["duplicate"] == ("Count", 1)
    assert refused["refused"] == ("Count", 1)
    assert refused["refused_max_generations"] == ("Count", 1)
    assert set(refused) == {"refused", "refused_max_generations", "generation", "guard_latency"}
    # Still the decision's log line: every field it had is there.
    assert [line["decision"] for line in lines] == ["spawned", "duplicate", "refused"]
    assert lines[2]["reason"] == "max_generations" and lines[0]["guards"]["eventbridge"]["enabled"]


def test_powertools_prints_one_document_per_decision_on_lambda(
    env: SiblingsEnv,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    on_lambda: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "checkout")  # must not add a dimension
    capsys.readouterr()
    with caplog.at_level(logging.INFO, logger="siblings"):
        three_decisions(env)
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert len(printed) == 3
    metrics = [assert_emf(document) for document in printed]
    assert [sorted(m) for m in metrics][2] == [
        "generation", "guard_latency", "refused", "refused_max_generations"
    ]
    for document in printed:
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "LambdaSiblings"
        assert directive["Dimensions"] == [["function_name"]]
        assert document["function_name"] == FUNCTION
    # The log line stays a plain log line: the metrics went out once, through Powertools.
    assert all("_aws" not in line for line in log_lines(caplog))


def test_the_callers_powertools_metrics_receive_the_values(env: SiblingsEnv, off_lambda: None) -> None:
    from aws_lambda_powertools import Metrics

    metrics = Metrics(namespace="Orders", service="checkout")
    metrics.clear_metrics()  # Metrics share one metric set per process
    try:
        three_decisions(env, metrics=metrics)
        document = metrics.serialize_metric_set()
    finally:
        metrics.clear_metrics()
    values = assert_emf(dict(document))
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Orders"  # the caller's
    assert values["spawned"] == ("Count", [1.0]) and values["refused_max_generations"] == ("Count", [1.0])
    assert values["generation"][1] == [1.0, 1.0, 2.0]  # one value per decision


def test_without_powertools_on_lambda_documents_go_to_stdout_once(
    env: SiblingsEnv,
    capsys: pytest.CaptureFixture[str],
    on_lambda: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(siblings.emf, "powertools_provider", lambda: None)
    handlers, level, propagate = list(decisions_log.handlers), decisions_log.level, decisions_log.propagate
    try:
        # stdout_handler() is no longer needed; a handler that still calls it gets its bare
        # decision lines on stdout too, and no metric is counted twice.
        assert stdout_handler() is stdout_handler()  # idempotent
        capsys.readouterr()
        three_decisions(env)
        printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    finally:
        decisions_log.handlers[:] = handlers
        decisions_log.setLevel(level)
        decisions_log.propagate = propagate
    documents = [line for line in printed if "_aws" in line]
    assert [line["decision"] for line in printed if "decision" in line] == ["spawned", "duplicate", "refused"]
    assert len(documents) == 3 and all("decision" not in d for d in documents)
    assert "refused_max_generations" in assert_emf(documents[2])


def test_a_failed_spawn_is_counted(env: SiblingsEnv, caplog: pytest.LogCaptureFixture) -> None:
    from siblings import SpawnFailed
    from tests.integration.test_template import ThrottledLambda

    env.rule("schedule")
    manager = env.manager({"invoke_max_attempts": 1}, lambda_client=ThrottledLambda())
    with caplog.at_level(logging.INFO, logger="siblings"), pytest.raises(SpawnFailed):
        manager.spawn_sibling(env.context())
    (line,) = log_lines(caplog)
    assert assert_emf(line)["failed"] == ("Count", 1)


def test_metrics_can_be_switched_off(
    env: SiblingsEnv,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    on_lambda: None,
) -> None:
    capsys.readouterr()
    with caplog.at_level(logging.INFO, logger="siblings"):
        three_decisions(env, config={"metrics_enabled": False})
    assert capsys.readouterr().out == ""
    assert [("_aws" in line) for line in log_lines(caplog)] == [False, False, False]


@pytest.fixture(autouse=True)
def _no_leaked_handlers() -> Iterator[None]:
    before = list(decisions_log.handlers)
    yield
    assert decisions_log.handlers == before
