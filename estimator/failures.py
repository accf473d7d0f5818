"""The one translation of an AWS SDK failure: what kind it is, its AWS error code, who sent it.

botocore raises a ``ClientError`` carrying AWS's error code and HTTP status, or one of its own
exceptions (no Region, no credentials, a connection that failed); pynamodb wraps either once in
its own exception, the original in ``cause``. :func:`classify` reads that, once, where the
library first catches the error; every library error caused by AWS carries the result as its
``failure`` (:class:`AwsFailure`), so that the breaker, the store, the Invoker and the CLI each
ask one attribute instead of walking an error chain.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    SSOError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from pynamodb.exceptions import PynamoDBException, TableDoesNotExist


class FailureKind(Enum):
    """What an AWS call's failure says about the environment or the service."""

    NO_REGION = "no_region"
    NO_CREDENTIALS = "no_credentials"
    CREDENTIALS_REJECTED = "credentials_rejected"
    """Credentials AWS does not know, a wrong secret, an expired session or SSO token."""
    ACCESS_DENIED = "access_denied"
    NOT_FOUND = "not_found"
    """The resource asked for does not exist (for DynamoDB: the table)."""
    UNREACHABLE = "unreachable"
    """No connection, or no answer in time: an outage (the table's breaker trips on it)."""
    CONNECTION_FAILED = "connection_failed"
    """A connection that could not be set up for a reason of its own (TLS, a proxy): a
    configuration problem, not an outage."""
    THROTTLED = "throttled"
    SERVER_ERROR = "server_error"
    """A 5xx: the service failed, not the request."""
    OTHER = "other"
    """Anything else: the request's own problem (a validation error, a failed condition...),
    or an error that is not the SDK's."""


THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "LimitExceededException",
    }
)
_ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
_REJECTED = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)
NETWORK_ERRORS = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)
"""botocore's errors of an endpoint that cannot be reached or did not answer in time."""
SDK_ERRORS = (BotoCoreError, ClientError, PynamoDBException)
"""What the SDKs raise; an error of these (or of the library, carrying one) has a failure."""


@dataclass(frozen=True)
class AwsFailure:
    """A classified failure: its :class:`FailureKind`, and the SDK error that shows it."""

    kind: FailureKind
    error: BaseException
    """The error that shows it, for messages: the SDK's own (botocore's, or pynamodb's when it
    wrapped none), or the library's when the library itself found the failure (batch items
    left unprocessed)."""
    code: str | None = None
    """AWS's error code (``ThrottlingException``...), when AWS sent one."""
    status: int = 0
    """The reply's HTTP status, 0 when there was no reply."""
    service: str | None = None
    """The SigV4 name of the service that failed (``dynamodb``, ``monitoring``), when known."""

    def of(self, service: str | None) -> AwsFailure:
        """This failure, attributed to ``service`` unless it already names one."""
        if self.service is not None or service is None:
            return self
        return replace(self, service=service)


def classify(error: BaseException, service: str | None = None) -> AwsFailure:
    """The one classification of ``error``: a library error's own ``failure``, else what the SDK
    error (or the botocore error pynamodb wrapped) says; ``service`` names who was called
    (pynamodb's errors are DynamoDB's whatever the caller says). Never raises."""
    known = getattr(error, "failure", None)
    if isinstance(known, AwsFailure):
        return known.of(service)
    sdk = error
    if isinstance(error, PynamoDBException):
        service = "dynamodb"
        inner = getattr(error, "cause", None)
        if isinstance(inner, BaseException):
            sdk = inner
    code, status = _reply_of(sdk)
    if code is None and sdk is error:
        fallback = getattr(error, "cause_response_code", None)
        code = fallback if isinstance(fallback, str) else None
    return AwsFailure(_kind(sdk, code, status), sdk, code, status, service)


def failure_of(cause: BaseException | None, service: str | None = None) -> AwsFailure | None:
    """The failure an error caused by ``cause`` carries: ``cause``'s classification when it is
    the SDK's error or carries a failure itself, else ``None`` (no AWS failure behind it)."""
    if cause is None:
        return None
    if isinstance(cause, SDK_ERRORS) or isinstance(getattr(cause, "failure", None), AwsFailure):
        return classify(cause, service)
    return None


def _reply_of(error: BaseException) -> tuple[str | None, int]:
    response = getattr(error, "response", None) if isinstance(error, ClientError) else None
    if not isinstance(response, dict):
        return None, 0
    details, meta = response.get("Error"), response.get("ResponseMetadata")
    code = details.get("Code") if isinstance(details, dict) else None
    status = meta.get("HTTPStatusCode") if isinstance(meta, dict) else None
    return (str(code) if code else None), (status if isinstance(status, int) else 0)


def _kind(error: BaseException, code: str | None, status: int) -> FailureKind:
    if isinstance(error, NoRegionError):
        return FailureKind.NO_REGION
    if isinstance(
        error, NoCredentialsError | PartialCredentialsError | ProfileNotFound | CredentialRetrievalError
    ):
        return FailureKind.NO_CREDENTIALS
    if isinstance(error, TokenRetrievalError | SSOError) or code in _REJECTED:
        return FailureKind.CREDENTIALS_REJECTED
    if isinstance(error, NETWORK_ERRORS):
        return FailureKind.UNREACHABLE
    if isinstance(error, BotoConnectionError):
        return FailureKind.CONNECTION_FAILED
    if isinstance(error, TableDoesNotExist) or code == "ResourceNotFoundException":
        return FailureKind.NOT_FOUND
    if code in _ACCESS_DENIED:
        return FailureKind.ACCESS_DENIED
    if code in THROTTLING_CODES:
        return FailureKind.THROTTLED
    if status >= 500:
        return FailureKind.SERVER_ERROR
    return FailureKind.OTHER
