"""A deferral is an outcome of its own: truthy, counted, and published as EMF beside refusals."""

from __future__ import annotations

import json
import logging

import pytest

from siblings.decisions import DecisionLog
from siblings.emf import LogLine
from siblings.result import DEFERRABLE, REFUSALS, Decision, Reason, SpawnResult


def _deferred(cause: Reason = Reason.MAX_CONCURRENCY) -> SpawnResult:
    return SpawnResult(
        spawned=False,
        reason=Reason.DEFERRED,
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:worker",
        chain_id="c",
        generation=3,
        deferred=True,
        deferred_until=1_767_225_600.0,
        deferred_for=cause,
        deferrals=1,
    )


def test_a_deferred_result_is_truthy_and_not_a_refusal() -> None:
    result = _deferred()
    assert result and not result.spawned and not result.refused
    assert result.decision is Decision.DEFERRED
    assert {Reason.MAX_CONCURRENCY, Reason.ACCOUNT_HEADROOM} == DEFERRABLE and DEFERRABLE <= REFUSALS


@pytest.mark.parametrize("cause", sorted(DEFERRABLE))
def test_a_deferral_is_counted_and_its_log_line_is_an_emf_document(
    cause: Reason, caplog: pytest.LogCaptureFixture
) -> None:
    decisions = DecisionLog(LogLine("LambdaSiblings"))
    with caplog.at_level(logging.INFO, logger="siblings"):
        decisions.record(_deferred(cause), started=0.0, guard_ms=1.5)
    assert decisions.snapshot() == {"deferred": 1, f"deferred_{cause}": 1}
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "siblings"]
    names = {m["Name"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"deferred", f"deferred_{cause}", "generation"} <= names
    assert "refused" not in names and "spawned" not in names
    assert (line["deferred"], line[f"deferred_{cause}"]) == (1, 1)
    assert line["decision"] == "deferred" and line["deferred_until"] == 1_767_225_600.0
