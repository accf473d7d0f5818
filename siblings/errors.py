"""Every error the siblings manager raises: its own, and the estimator's it lets through.

:class:`SiblingsError` is the root of all of them (the estimator's
:class:`~estimator.exceptions.LambdaSiblingsError` under the name sosw users look for).
"""

from __future__ import annotations

from estimator.exceptions import (
    EstimateUnavailable,
    LambdaSiblingsError,
    LookupFailed,
    NoRegion,
    StoreAccessDenied,
    StoreThrottled,
    StoreUnavailable,
    StoreUnreachable,
    TableMissing,
)
from estimator.failures import failure_of

SiblingsError = LambdaSiblingsError
"""Root of every error of the library (the estimator's errors included)."""

__all__ = [
    "DuplicateSibling",
    "EstimateUnavailable",
    "LookupFailed",
    "PayloadTooLarge",
    "PayloadUnavailable",
    "SiblingsError",
    "SpawnFailed",
    "StoreUnavailable",
    "NoRegion",
    "StoreAccessDenied",
    "StoreThrottled",
    "StoreUnreachable",
    "TableMissing",
]


class SpawnFailed(SiblingsError):
    """A sibling could not be invoked after retries; the caller still owns its work.

    The last error is in ``cause`` (and ``__cause__``); ``attempts`` counts the Invokes made.
    ``maybe_spawned`` is True when an attempt may have reached Lambda before its reply was lost
    (a read timeout, a connection closed after sending): a sibling may then run, and its claim
    on start keeps a retry's second sibling from running the step again. ``hint`` says what a
    permanent error means and how to fix it, when known (also in the message). ``request_id``
    is set when the sibling *was* invoked (that execution's id) but its spawn record and chain
    position could not be saved (``maybe_spawned`` is then True too): a sibling runs, and the
    caller keeps its work.
    """

    def __init__(
        self,
        function_name: str,
        cause: BaseException | None,
        attempts: int,
        maybe_spawned: bool = False,
        hint: str = "",
        request_id: str | None = None,
        service: str = "lambda",
    ) -> None:
        self.function_name = function_name
        self.cause = cause
        self.failure = failure_of(cause, service)
        self.attempts = attempts
        self.maybe_spawned = maybe_spawned or request_id is not None
        self.hint = hint
        self.request_id = request_id
        what = (
            f"invoked sibling {request_id} of {function_name!r}, but could not record it"
            if request_id is not None
            else f"could not invoke a sibling of {function_name!r} after {attempts} attempt(s)"
        )
        super().__init__(
            f"{what}: {type(cause).__name__ if cause else 'error'}: {cause}"
            + (f" ({hint})" if hint else "")
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
    """An offloaded payload could not be read back, or its pointer is not to be trusted.

    When S3 failed, its error is in ``cause`` (and ``__cause__``) and classified in ``failure``.
    """

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        self.cause = cause
        self.failure = failure_of(cause, "s3")
        super().__init__(message)


class DuplicateSibling(SiblingsError):
    """Another execution already runs this chain step: this one must do no work.

    Raised by ``load_payload`` when a step was invoked twice (a parent that crashed after its
    Invoke, or a lost Invoke reply that was retried) and the other execution claimed it first.
    Return from the handler without error: a failure would only make Lambda retry the duplicate.
    """

    def __init__(self, chain_id: str, generation: int, runner: str | None, detail: str = "") -> None:
        self.chain_id = chain_id
        self.generation = generation
        self.runner = runner
        super().__init__(
            f"chain {chain_id!r} step {generation} is run by another execution ({runner})"
            + (f": {detail}" if detail else "")
        )
