"""The shared table's one circuit breaker: what trips it, how long it stays open."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from pynamodb.exceptions import GetError, PutError

from estimator.breaker import Breaker, error_code, trips
from estimator.clock import ManualClock
from estimator.exceptions import StoreUnavailable


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
