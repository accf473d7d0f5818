"""A missing table or a denied write is a configuration error, and loud (issue 18.4): said
once per process with the fix, and the table is not asked again for a back-off period."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import boto3
import pytest

from estimator import ConcurrencyEstimator, ensure_table
from estimator.clock import ManualClock
from siblings.local.calls import CallRecorder
from siblings.local.middleware import compose
from siblings.local.server import LOCAL_CREDENTIALS, LOCAL_REGION, LocalAwsServer
from tests.conftest import Aws
from tests.fault.siblings.conftest import FaultInjector
from tests.helpers import local_config, put_lambda_metrics

FUNCTIONS = ("fn-a", "fn-b", "fn-c")


def said(caplog: pytest.LogCaptureFixture, *words: str) -> list[logging.LogRecord]:
    """The warnings (or worse) whose message holds every one of ``words``."""
    return [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and all(w in r.getMessage() for w in words)
    ]


def test_a_missing_table_is_said_once_with_the_fix_and_not_asked_again(
    aws: Aws, caplog: pytest.LogCaptureFixture, clock: ManualClock
) -> None:
    table = f"missing-{uuid.uuid4().hex[:8]}"
    for name in FUNCTIONS:
        put_lambda_metrics(aws.client("cloudwatch"), name, [(600, 1000)] * 5, clock=clock)
    config = local_config(aws.endpoint_url, table_name=table)
    estimator = ConcurrencyEstimator(config, session=aws.session, clock=clock)
    with caplog.at_level(logging.WARNING):
        assert estimator.estimate("fn-a").source == "cloudwatch"
        aws.recorder.reset()
        assert [estimator.estimate(n).value for n in FUNCTIONS[1:]] == [10, 10]
    assert aws.recorder.count("dynamodb") == 0  # the store stopped asking
    assert len(said(caplog, table, "create-table")) == 1


@pytest.fixture
def denied() -> Iterator[tuple[LocalAwsServer, CallRecorder, FaultInjector]]:
    """A server of its own that denies a chosen DynamoDB action, every call counted."""
    recorder, faults = CallRecorder(), FaultInjector()
    server = LocalAwsServer(middleware=compose(recorder.wrap, faults.wrap)).start()
    server.reset()
    try:
        yield server, recorder, faults
    finally:
        server.stop()


def test_a_denied_update_item_is_said_once_per_process_with_the_fix(
    denied: tuple[LocalAwsServer, CallRecorder, FaultInjector],
    caplog: pytest.LogCaptureFixture,
    clock: ManualClock,
) -> None:
    server, recorder, faults = denied
    aws = Aws(server, recorder, boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS))
    config = local_config(server.endpoint_url, table_name=f"denied-{uuid.uuid4().hex[:8]}")
    ensure_table(config, aws.session)
    for name in FUNCTIONS:
        put_lambda_metrics(aws.client("cloudwatch"), name, [(600, 1000)] * 5, clock=clock)
    faults.fail("dynamodb", "UpdateItem", 400, "AccessDeniedException")
    with caplog.at_level(logging.WARNING):
        # Twenty containers, each losing the fleet's single flight: said, not quietly.
        fleet = [ConcurrencyEstimator(config, session=aws.session, clock=clock) for _ in range(20)]
        assert {e.estimate("fn-a").value for e in fleet} == {10}
        recorder.reset()
        one = fleet[0]
        assert [one.estimate(n).value for n in FUNCTIONS[1:]] == [10, 10]
    assert recorder.count("dynamodb", "UpdateItem") == 0  # the store stopped asking
    assert len(said(caplog, "UpdateItem", "AccessDenied", "dynamodb:UpdateItem")) == 1



def test_a_denied_read_is_no_outage_the_origin_answers_instead_of_a_stale_value(
    denied: tuple[LocalAwsServer, CallRecorder, FaultInjector], clock: ManualClock
) -> None:
    server, recorder, faults = denied
    session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
    aws = Aws(server, recorder, session)
    config = local_config(
        server.endpoint_url,
        table_name=f"denied-read-{uuid.uuid4().hex[:8]}",
        cache_ttl_seconds=60,
        outage_refresh_probability=0.0,  # in an outage, every process would serve what it holds
    )
    ensure_table(config, session)
    put_lambda_metrics(aws.client("cloudwatch"), "fn-a", [(600, 1000)] * 5, clock=clock)
    estimator = ConcurrencyEstimator(config, session=session, clock=clock)
    assert estimator.estimate("fn-a").source == "cloudwatch"
    faults.fail("dynamodb", None, 400, "AccessDeniedException")
    clock.advance(61)  # past the TTL: memory holds a stale value
    recorder.reset()
    again = estimator.estimate("fn-a")
    assert (again.source, again.stale) == ("cloudwatch", False)
    assert recorder.count("monitoring", "GetMetricData") == 1
