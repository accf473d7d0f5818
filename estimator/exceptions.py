"""The estimator's errors, and the root class every error of the distribution derives from."""

from __future__ import annotations

from typing import Any

from estimator.failures import AwsFailure, FailureKind, failure_of


class LambdaSiblingsError(Exception):
    """Root of every error the ``lambda-siblings`` distribution raises; packages built on the
    estimator derive their errors from it. Errors caused by AWS carry the original in ``cause``
    and its classification in ``failure``."""

    failure: AwsFailure | None = None
    """What kind of AWS failure is behind this error (:func:`estimator.failures.classify`, done
    once where the library caught it, and handed on by every error wrapping this one), or
    ``None`` when no AWS failure is."""


class EstimateUnavailable(LambdaSiblingsError):
    """No concurrency estimate could be produced: CloudWatch failed and nothing was cached.

    The underlying error is in ``cause`` (and ``__cause__``).
    """

    def __init__(self, function_name: str, cause: BaseException | None, detail: str = "") -> None:
        self.function_name = function_name
        self.cause = cause
        self.failure = failure_of(cause, "monitoring")
        reason = detail or (f"{type(cause).__name__}: {cause}" if cause else "unknown")
        super().__init__(f"no concurrency estimate for {function_name!r}: {reason}")


class IncompleteMetrics(LambdaSiblingsError):
    """CloudWatch answered, but not with complete, plausible data for every query.

    A query whose final ``StatusCode`` is not ``Complete`` (``PartialData``, ``InternalError``,
    ``Forbidden``...), or that carries non-finite values, makes the whole refresh fail: the
    cache then serves the stale value or reports no estimate, never a made-up 0.
    ``messages`` holds what CloudWatch said (the response's ``Messages``).
    """

    def __init__(self, detail: str, messages: list[str] | None = None) -> None:
        self.messages = list(messages or [])
        said = f" (CloudWatch: {'; '.join(self.messages)})" if self.messages else ""
        super().__init__(f"incomplete metric data: {detail}{said}")


class StoreUnavailable(LambdaSiblingsError):
    """The shared DynamoDB tier failed; the store raises the subclass of the failure's kind
    (:class:`StoreThrottled`, :class:`StoreUnreachable`, :class:`StoreAccessDenied`,
    :class:`TableMissing`), this class itself for any other."""

    kind: FailureKind | None = None
    """The failure kind of this class, for an error the library found itself (no SDK cause)."""

    def __init__(
        self, operation: str, cause: BaseException | None, code: str | None = None
    ) -> None:
        self.operation = operation
        self.cause = cause
        self.failure = failure_of(cause, "dynamodb")
        if self.failure is None and self.kind is not None:
            self.failure = AwsFailure(self.kind, self, code, service="dynamodb")
        self.code = code
        """The AWS error code (``ProvisionedThroughputExceededException``...), if AWS sent one."""
        super().__init__(
            f"DynamoDB {operation} failed: {type(cause).__name__ if cause else 'error'}: {cause}"
        )


class LookupFailed(LambdaSiblingsError):
    """A cached value's loader failed and no stale value exists to serve instead."""

    def __init__(self, key: str, cause: BaseException | None, detail: str = "") -> None:
        self.key = key
        self.cause = cause
        self.failure = failure_of(cause)
        reason = detail or (f"{type(cause).__name__}: {cause}" if cause else "unknown")
        super().__init__(f"no value for {key!r}: {reason}")



class StoreThrottled(StoreUnavailable):
    """The table throttled the request (its ``code`` names which limit), or left batch items
    unprocessed after every resend the store makes."""

    kind = FailureKind.THROTTLED


class UnprocessedKeys(StoreThrottled):
    """A BatchGetItem of which DynamoDB still left keys unprocessed after the store's resends.

    ``found`` maps each key that *was* read to its item (``None``: absent), so a caller uses
    what it got; ``unread`` lists the others. A batch that read some keys says the table
    answers: it does not open the breaker (one that read none does).
    """

    def __init__(self, found: dict[str, Any], unread: list[str], requests: int) -> None:
        self.found = found
        self.unread = list(unread)
        super().__init__(
            "BatchGetItem",
            RuntimeError(
                f"{len(self.unread)} key(s) unprocessed after {requests} request(s): {self.unread[:5]}"
            ),
        )


class StoreUnreachable(StoreUnavailable):
    """The table's endpoint could not be reached or did not answer in time."""

    kind = FailureKind.UNREACHABLE


class StoreAccessDenied(StoreUnavailable):
    """The credentials may not make this request, or were rejected."""

    kind = FailureKind.ACCESS_DENIED


class TableMissing(StoreUnavailable):
    """The shared table does not exist (in this Region, at this endpoint)."""

    kind = FailureKind.NOT_FOUND


class AccountUnknown(LambdaSiblingsError):
    """STS could not say which account the clients act in (``cause`` holds why), and no
    ``account_id`` is configured: table keys and the check of a function's ARN need it."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause
        self.failure = failure_of(cause, "sts")
        super().__init__(
            f"the account of the credentials is unknown (STS GetCallerIdentity: "
            f"{type(cause).__name__}: {cause}); set SIBLINGS_ACCOUNT_ID to need no call"
        )


class NoRegion(LambdaSiblingsError):
    """No AWS Region is configured; raised by the first call that needs one, never at import."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.cause = None
        self.failure = AwsFailure(FailureKind.NO_REGION, self)
        super().__init__(
            f"no AWS Region for {service}: set SIBLINGS_REGION_NAME (or AWS_REGION / "
            "AWS_DEFAULT_REGION), or pass region_name in the config"
        )
