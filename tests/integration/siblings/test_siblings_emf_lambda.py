"""EMF that CloudWatch extracts on Lambda: the handler's output is written the way Lambda's
Python runtime writes it (``siblings.local.runtime.logs``), in both log formats, with and
without Powertools, and the handler calls nothing to set it up.

CloudWatch's rule (EMF specification): a log event is a metrics document only when the whole
event is the JSON document with ``_aws``; a prefixed line or a JSON wrapper holding the
document as a string is not extracted.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from typing import Any

import pytest

import siblings.emf
from siblings import METADATA_KEY
from siblings.local.runtime.logs import LogCapture, LogFormat
from tests.integration.siblings.support import FUNCTION, SiblingsEnv
from tests.integration.siblings.test_siblings_metrics import assert_emf


def extracted(events: list[str]) -> Counter[str]:
    """The metric values CloudWatch would extract from ``events``, summed by name."""
    totals: Counter[str] = Counter()
    for event in events:
        try:
            document = json.loads(event)
        except ValueError:
            continue  # a text line: no metrics
        if not isinstance(document, dict) or "_aws" not in document:
            continue  # JSON, but not an EMF document (e.g. the runtime's wrapper)
        for name, (_unit, value) in assert_emf(document).items():
            totals[name] += sum(value) if isinstance(value, list) else value
    return totals


def run_on_lambda(capture: LogCapture, log_format: LogFormat, handler: Any) -> list[str]:
    """Run ``handler`` on a thread as the local runtime does for a function with ``log_format``."""
    worker = threading.Thread(target=capture.bound(handler, FUNCTION, "req-1", log_format))
    worker.start()
    worker.join(30)
    return capture.events(FUNCTION)


@pytest.mark.parametrize("powertools", [True, False], ids=["powertools", "no-powertools"])
@pytest.mark.parametrize("log_format", list(LogFormat))
def test_decision_metrics_are_extracted_in_both_log_formats(
    env: SiblingsEnv, monkeypatch: pytest.MonkeyPatch, log_format: LogFormat, powertools: bool
) -> None:
    monkeypatch.setenv("AWS_EXECUTION_ENV", "AWS_Lambda_python3.12")  # what Lambda sets
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
    if not powertools:
        monkeypatch.setattr(siblings.emf, "powertools_provider", lambda: None)
    env.rule("schedule")
    manager = env.manager({"max_generations": 1})
    capture = LogCapture()

    def handler() -> None:
        # What a plain handler does: nothing about logging or metrics.
        context = env.context()
        manager.spawn_sibling(context, {"cursor": 1})
        manager.spawn_sibling(context, {"cursor": 1})
        deep = {METADATA_KEY: {"chain_id": "c", "generation": 1}}
        manager.spawn_sibling(env.context(), {"cursor": 1}, event=deep)

    siblings_logger = logging.getLogger("siblings")
    level = siblings_logger.level
    siblings_logger.setLevel(logging.INFO)  # the decision lines go through logging as well
    try:
        events = run_on_lambda(capture, log_format, handler)
    finally:
        siblings_logger.setLevel(level)
    totals = extracted(events)
    assert (totals["spawned"], totals["duplicate"], totals["refused"]) == (1, 1, 1), events
    assert totals["refused_max_generations"] == 1
    # The decision lines are there too, as the runtime writes log records, never counted twice.
    decision_lines = [e for e in events if "siblings.spawn" in e]
    assert len(decision_lines) == 3
    if log_format is LogFormat.TEXT:
        assert all(e.startswith("[INFO]\t") and "\treq-1\t" in e for e in decision_lines)
    else:
        assert all(json.loads(e)["requestId"] == "req-1" for e in decision_lines)


def test_the_capture_writes_records_and_prints_as_lambda_does() -> None:
    capture = LogCapture()
    log = logging.getLogger("tests.emf")

    def handler() -> None:
        print('{"_aws": 1}')
        log.warning("hello %s", "world")

    text = run_on_lambda(capture, LogFormat.TEXT, handler)
    assert text[0] == '{"_aws": 1}'
    assert text[1].startswith("[WARNING]\t") and text[1].endswith("\treq-1\thello world")
    wrapped = json.loads(run_on_lambda(LogCapture(), LogFormat.JSON, handler)[1])
    assert (wrapped["level"], wrapped["message"], wrapped["logger"]) == (
        "WARNING", "hello world", "tests.emf"
    )
