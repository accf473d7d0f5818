"""The one classification of AWS errors (estimator.failures), and the ``failure`` every library
error caused by AWS carries."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ProxyConnectionError,
    SSLError,
)
from pynamodb.exceptions import GetError, TableDoesNotExist

from estimator import exceptions as errors
from estimator.breaker import trips
from estimator.exceptions import EstimateUnavailable, LookupFailed, StoreUnavailable
from estimator.failures import FailureKind, classify
from estimator.store import translate
from siblings.errors import PayloadUnavailable, SpawnFailed


def client_error(code: str, operation: str = "GetItem", status: int = 400) -> ClientError:
    reply: dict[str, Any] = {"Error": {"Code": code, "Message": "m"},
                             "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(reply, operation)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "kind", "store_class"),
    [
        (client_error("ProvisionedThroughputExceededException"), FailureKind.THROTTLED,
         errors.StoreThrottled),
        (client_error("AccessDeniedException"), FailureKind.ACCESS_DENIED, errors.StoreAccessDenied),
        (client_error("UnrecognizedClientException"), FailureKind.CREDENTIALS_REJECTED,
         errors.StoreAccessDenied),
        (client_error("ResourceNotFoundException"), FailureKind.NOT_FOUND, errors.TableMissing),
        (TableDoesNotExist("t"), FailureKind.NOT_FOUND, errors.TableMissing),
        (EndpointConnectionError(endpoint_url="http://x"), FailureKind.UNREACHABLE, errors.StoreUnreachable),
        (ConnectTimeoutError(endpoint_url="http://x"), FailureKind.UNREACHABLE, errors.StoreUnreachable),
        (client_error("InternalServerError", status=500), FailureKind.SERVER_ERROR, StoreUnavailable),
        (client_error("ValidationException"), FailureKind.OTHER, StoreUnavailable),
        # A TLS or proxy failure is the setup's, not an outage (as before the classification).
        (SSLError(endpoint_url="https://x", error=OSError("bad cert")), FailureKind.CONNECTION_FAILED,
         StoreUnavailable),
        (ProxyConnectionError(proxy_url="http://p", error=OSError("no")), FailureKind.CONNECTION_FAILED,
         StoreUnavailable),
        # Credentials the SDK could not find are retried, not blocked as denied.
        (NoCredentialsError(), FailureKind.NO_CREDENTIALS, StoreUnavailable),
    ],
)
def test_the_store_translates_by_the_one_classification(
    error: Exception, kind: FailureKind, store_class: type[StoreUnavailable]
) -> None:
    wrapped = GetError("Failed to get item", error)
    assert classify(wrapped).kind is kind and classify(wrapped).service == "dynamodb"
    translated = translate("GetItem", wrapped)
    assert type(translated) is store_class
    assert translated.failure is not None and translated.failure.kind is kind


def test_only_outages_trip_the_breaker() -> None:
    assert trips(translate("GetItem", client_error("InternalServerError", status=503)))
    assert trips(translate("GetItem", EndpointConnectionError(endpoint_url="http://x")))
    assert not trips(translate("GetItem", SSLError(endpoint_url="https://x", error=OSError("bad cert"))))
    assert not trips(translate("GetItem", client_error("ValidationException")))


def test_pynamodb_errors_stay_dynamodb_whoever_wraps_them() -> None:
    assert classify(TableDoesNotExist("t"), "monitoring").service == "dynamodb"
    outer = EstimateUnavailable("worker", TableDoesNotExist("t"))
    assert outer.failure is not None and outer.failure.service == "dynamodb"


def test_a_failure_the_library_found_itself_has_its_class_kind() -> None:
    unprocessed = errors.UnprocessedKeys({}, ["k"], 5)
    assert unprocessed.failure is not None and unprocessed.failure.kind is FailureKind.THROTTLED
    assert unprocessed.failure.error is unprocessed


def test_no_failure_without_an_aws_error_behind() -> None:
    assert LookupFailed("k", ValueError("bad value")).failure is None
    assert LookupFailed("k", None, "timed out").failure is None
    assert EstimateUnavailable("f", LookupFailed("k", RuntimeError("x"))).failure is None


def test_s3_failures_name_s3() -> None:
    denied = client_error("AccessDenied", "GetObject", 403)
    payload = PayloadUnavailable("cannot read", denied)
    assert payload.failure is not None and payload.cause is denied
    assert (payload.failure.kind, payload.failure.service) == (FailureKind.ACCESS_DENIED, "s3")
    upload = SpawnFailed("fn", client_error("AccessDenied", "PutObject", 403), attempts=1, service="s3")
    assert upload.failure is not None and upload.failure.service == "s3"


def test_a_malformed_reply_does_not_break_the_error_built_on_it() -> None:
    odd = client_error("Throttling")
    odd.response["Error"] = None  # type: ignore[typeddict-item]
    odd.response["ResponseMetadata"] = "?"  # type: ignore[typeddict-item]
    failure = EstimateUnavailable("f", odd).failure
    assert failure is not None and failure.kind is FailureKind.OTHER and failure.code is None
