"""Every exception lambda-siblings raises (``siblings`` re-exports them)."""

from __future__ import annotations


class SiblingsError(Exception):
    """Base class of the library's own errors."""


class EstimateUnavailable(SiblingsError):
    """No concurrency estimate could be produced: CloudWatch failed and nothing was cached.

    The underlying error is in ``cause`` (and ``__cause__``).
    """

    def __init__(self, function_name: str, cause: BaseException | None, detail: str = "") -> None:
        self.function_name = function_name
        self.cause = cause
        reason = detail or (f"{type(cause).__name__}: {cause}" if cause else "unknown")
        super().__init__(f"no concurrency estimate for {function_name!r}: {reason}")


class SpawnFailed(SiblingsError):
    """A sibling could not be invoked after retries; the caller still owns its work."""

    def __init__(self, function_name: str, cause: BaseException | None, attempts: int) -> None:
        self.function_name = function_name
        self.cause = cause
        self.attempts = attempts
        super().__init__(
            f"could not invoke a sibling of {function_name!r} after {attempts} attempt(s): "
            f"{type(cause).__name__ if cause else 'error'}: {cause}"
        )


class PayloadTooLarge(SiblingsError, ValueError):
    """The payload exceeds ``max_payload_bytes`` and no ``payload_bucket`` is configured."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"payload is {size} bytes, over max_payload_bytes={limit}; "
            "set payload_bucket (SIBLINGS_PAYLOAD_BUCKET) to offload it to S3"
        )


class PayloadUnavailable(SiblingsError):
    """An offloaded payload could not be read back from S3."""


class StoreUnavailable(SiblingsError):
    """The shared DynamoDB tier failed (throttled, unreachable, missing table...)."""

    def __init__(self, operation: str, cause: BaseException | None) -> None:
        self.operation = operation
        self.cause = cause
        super().__init__(
            f"DynamoDB {operation} failed: {type(cause).__name__ if cause else 'error'}: {cause}"
        )


class LookupFailed(SiblingsError):
    """A cached value's loader failed and no stale value exists to serve instead."""

    def __init__(self, key: str, cause: BaseException | None, detail: str = "") -> None:
        self.key = key
        self.cause = cause
        reason = detail or (f"{type(cause).__name__}: {cause}" if cause else "unknown")
        super().__init__(f"no value for {key!r}: {reason}")

