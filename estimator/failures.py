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
    ClientError,
    ConnectionClosedError,
    CredentialRetrievalError,
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
    """No connection, or no answer in time."""
    THROTTLED = "throttled"
    SERVER_ERROR = "server_error"
    """A 5xx: the service failed, not the request."""
    OTHER = "other"
    """The request's own problem (a validation error, a failed condition...)."""


THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
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
NETWORK_ERRORS = (BotoConnectionError, ConnectionClosedError, ReadTimeoutError)
"""botocore's errors of a connection that failed or a reply that did not come in time."""


@dataclass(frozen=True)
class AwsFailure:
    """A classified failure: its :class:`FailureKind`, and the SDK error that shows it."""

    kind: FailureKind
    error: BaseException
    """The SDK's own error (botocore's, or pynamodb's when it wrapped none), for messages."""
    code: str | None = None
    """AWS's error code (``ThrottlingException``...), when AWS sent one."""
    status: int = 0
    """The reply's HTTP status, 0 when there was no reply."""
    service: str | None = None
    """The SigV4 name of the service that failed (``dynamodb``, ``monitoring``), when known."""

    @property
    def operation(self) -> str | None:
        """The API operation that failed (``GetMetricData``), when the error names it."""
        name = getattr(self.error, "operation_name", None)
        return name if isinstance(name, str) else None

    def of(self, service: str | None) -> AwsFailure:
        """This failure, attributed to ``service`` unless it already names one."""
        if self.service is not None or service is None:
            return self
        return replace(self, service=service)


def classify(error: BaseException, service: str | None = None) -> AwsFailure:
    """The one classification of ``error``: a library error's own ``failure``, else what the SDK
    error (or the botocore error pynamodb wrapped) says; ``service`` names who was called."""
    known = getattr(error, "failure", None)
    if isinstance(known, AwsFailure):
        return known.of(service)
    sdk = error
    inner = getattr(error, "cause", None)
    if isinstance(error, PynamoDBException) and isinstance(inner, BaseException):
        sdk = inner
    if isinstance(error, TableDoesNotExist):
        service = service or "dynamodb"
    if isinstance(error, PynamoDBException):
        service = service or "dynamodb"
    code, status = _reply_of(sdk)
    if code is None:
        code = getattr(error, "cause_response_code", None) if sdk is error else None
    return AwsFailure(_kind(sdk, code, status), sdk, code, status, service)


def _reply_of(error: BaseException) -> tuple[str | None, int]:
    if not isinstance(error, ClientError):
        return None, 0
    code = error.response.get("Error", {}).get("Code")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
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
    if isinstance(error, TableDoesNotExist) or code == "ResourceNotFoundException":
        return FailureKind.NOT_FOUND
    if code in _ACCESS_DENIED:
        return FailureKind.ACCESS_DENIED
    if code in THROTTLING_CODES or status == 429:
        return FailureKind.THROTTLED
    if status >= 500:
        return FailureKind.SERVER_ERROR
    return FailureKind.OTHER
