"""The shared table's one circuit breaker: what trips it, how long it stays open."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from pynamodb.exceptions import GetError, PutError

from estimator.breaker import Breaker, error_code, trips
from estimator.clock import ManualClock
from estimator.exceptions import (
    StoreAccessDenied,
    StoreThrottled,
    StoreUnavailable,
    TableMissing,
    UnprocessedKeys,
)


def client_error(code: str, status: int = 400) -> ClientError:
    """A botocore error as DynamoDB returns it."""
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetItem",
    )


class FlakyTable:
    """Counts calls; raises StoreUnavailable with ``error`` while it is set."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.error is not None:
            raise StoreUnavailable("GetItem", self.error)
        return "ok"


def test_after_a_failure_calls_are_skipped_until_the_backoff_ends() -> None:
    clock = ManualClock()
    table = FlakyTable()
    breaker = Breaker("table 't'", backoff_seconds=5.0, clock=clock)
    assert breaker.call("GetItem", table) == "ok" and not breaker.is_open
    table.error = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    with pytest.raises(StoreUnavailable):
        breaker.call("GetItem", table)
    assert breaker.is_open and table.calls == 2
    for operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
        with pytest.raises(StoreUnavailable, match="skipped") as caught:
            breaker.call(operation, table)
        assert isinstance(caught.value.cause, EndpointConnectionError)
    assert table.calls == 2  # none of them reached the table
    clock.advance(5.0)
    table.error = None
    assert breaker.call("PutItem", table) == "ok"
    assert table.calls == 3 and not breaker.is_open


@pytest.mark.parametrize(
    "cause",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        client_error("ProvisionedThroughputExceededException"),
        client_error("ThrottlingException"),
        client_error("InternalServerError", 500),
        client_error("ServiceUnavailable", 503),
        GetError("Failed to get item", cause=client_error("RequestLimitExceeded")),
    ],
)
def test_connectivity_throttling_and_5xx_trip_it(cause: BaseException) -> None:
    assert trips(StoreUnavailable("GetItem", cause))


@pytest.mark.parametrize(
    "cause",
    [
        client_error("ValidationException"),
        client_error("AccessDeniedException"),
        client_error("ItemCollectionSizeLimitExceededException"),
        PutError("Failed to put item", cause=client_error("ValidationException")),
    ],
)
def test_a_requests_own_bad_input_does_not_trip_it(cause: BaseException) -> None:
    """One bad request (a 3 kB key, a key it may not touch) must not refuse everyone else."""
    table = FlakyTable()
    table.error = cause
    breaker = Breaker("table 't'", backoff_seconds=5.0)
    with pytest.raises(StoreUnavailable):
        breaker.call("GetItem", table)
    assert not breaker.is_open
    table.error = None
    assert breaker.call("GetItem", table) == "ok"


def test_error_code_reads_through_the_wrappers() -> None:
    condition_failed = client_error("ConditionalCheckFailedException")
    wrapped = StoreUnavailable("PutItem", PutError("x", cause=condition_failed))
    assert error_code(wrapped) == "ConditionalCheckFailedException"
    assert error_code(StoreUnavailable("GetItem", ValueError("no code"))) is None


class DeniedTable(FlakyTable):
    """Raises ``kind`` (a configuration error) while ``error`` is set."""

    def __init__(self, kind: type[StoreUnavailable]) -> None:
        super().__init__()
        self.kind = kind

    def __call__(self) -> str:
        self.calls += 1
        if self.error is not None:
            raise self.kind("UpdateItem", self.error, "AccessDeniedException")
        return "ok"


def test_access_denied_skips_that_operation_only_for_the_backoff_and_is_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    table = DeniedTable(StoreAccessDenied)
    table.error = client_error("AccessDeniedException")
    breaker = Breaker("table 'denied-unit'", backoff_seconds=5.0, clock=clock)
    for _ in range(3):
        with pytest.raises(StoreAccessDenied):  # skipped calls keep the kind of what stopped them
            breaker.call("UpdateItem", table)
    assert table.calls == 1 and not breaker.is_open
    assert breaker.call("GetItem", lambda: "read") == "read"  # other operations still run
    clock.advance(5.0)
    table.error = None
    assert breaker.call("UpdateItem", table) == "ok"
    said = [r for r in caplog.records if "denied-unit" in r.getMessage()]
    assert len(said) == 1 and "dynamodb:UpdateItem" in said[0].getMessage()


def test_a_missing_table_skips_every_operation_for_the_backoff() -> None:
    clock = ManualClock()
    table = DeniedTable(TableMissing)
    table.error = client_error("ResourceNotFoundException")
    breaker = Breaker("table 'missing-unit'", backoff_seconds=5.0, clock=clock)
    with pytest.raises(TableMissing):
        breaker.call("GetItem", table)
    with pytest.raises(TableMissing):
        breaker.call("PutItem", lambda: "never")
    clock.advance(5.0)
    assert breaker.call("PutItem", lambda: "put") == "put"


def test_a_batch_that_read_some_keys_does_not_trip_one_that_read_none_does() -> None:
    partial = UnprocessedKeys({"kill#fn": None}, ["rules#fn"], requests=5)
    assert not trips(partial)
    assert trips(UnprocessedKeys({}, ["kill#fn", "rules#fn"], requests=5))
    assert trips(StoreThrottled("BatchWriteItem", RuntimeError("2 item(s) unprocessed")))
