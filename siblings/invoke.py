"""The asynchronous Invoke of a sibling, retried with backoff when Lambda throttles or fails.

Throttling (429 ``TooManyRequestsException``), Lambda's 5xx errors and network errors are
retried up to ``invoke_max_attempts`` times with full-jitter exponential backoff; anything else
(a missing function, a denied permission, a rejected payload) fails at once. Either way the
failure is a :class:`SpawnFailed` carrying the cause, never a silent ``None``: the caller keeps
its work. Retries also stop early when the execution's deadline would be passed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectionError,
    HTTPClientError,
    ReadTimeoutError,
)

from estimator.clock import SYSTEM_CLOCK, Clock
from estimator.validation import parse_function
from siblings.errors import SpawnFailed

_RETRYABLE_CODES = {
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "ServiceException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalServerError",
    "EC2ThrottledException",
    "ResourceNotReadyException",
}
_INVOCATION_TYPES = {"Event", "DryRun"}


@dataclass(frozen=True)
class InvokeOutcome:
    """A successful Invoke."""

    request_id: str | None
    """``x-amzn-RequestId`` of the Invoke."""
    status_code: int
    """202 for ``Event``, 204 for ``DryRun``."""
    attempts: int
    """Attempts made, including the successful one."""


def is_retryable(exc: BaseException) -> bool:
    """Whether an Invoke error is worth another attempt (throttling, 5xx, network)."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
        return code in _RETRYABLE_CODES or status == 429 or status >= 500
    return isinstance(exc, ConnectionError | HTTPClientError)


class Invoker:
    """Sends a sibling's event with ``lambda:Invoke``, retrying transient failures.

    ``clock`` (its ``sleep`` and ``monotonic``) and ``rng`` are injectable so tests need not wait.
    """

    def __init__(
        self,
        lambda_client: Any,
        *,
        max_attempts: int = 5,
        backoff_seconds: float = 0.2,
        max_backoff_seconds: float = 2.0,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self._client = lambda_client
        self._max_attempts = max(1, max_attempts)
        self._base = backoff_seconds
        self._cap = max_backoff_seconds
        self._clock = clock
        self._rng = rng or random.Random()

    def invoke(
        self,
        function_arn: str,
        body: bytes,
        *,
        invocation_type: str = "Event",
        deadline: float | None = None,
    ) -> InvokeOutcome:
        """Invoke ``function_arn`` (alias or version kept) with ``body``.

        ``deadline`` (a ``clock.monotonic()`` value) stops retrying when the next backoff would
        end after it. Raises :class:`SpawnFailed` with the last error as ``cause``.
        """
        if invocation_type not in _INVOCATION_TYPES:
            raise ValueError(f"invocation_type must be Event or DryRun, got {invocation_type!r}")
        last: BaseException | None = None
        maybe_sent = False
        attempt = 0
        while attempt < self._max_attempts:
            attempt += 1
            try:
                response = self._client.invoke(
                    FunctionName=function_arn, InvocationType=invocation_type, Payload=body
                )
            except (ClientError, BotoCoreError) as exc:
                last = exc
                # Sent, and the reply lost: Lambda may have queued the event.
                maybe_sent = maybe_sent or isinstance(exc, ReadTimeoutError | ConnectionClosedError)
                if not is_retryable(exc) or attempt >= self._max_attempts:
                    break
                delay = self._rng.uniform(0, min(self._cap, self._base * 2 ** (attempt - 1)))
                if deadline is not None and self._clock.monotonic() + delay >= deadline:
                    break
                self._clock.sleep(delay)
                continue
            meta = response.get("ResponseMetadata", {})
            return InvokeOutcome(
                request_id=meta.get("RequestId"),
                status_code=int(response.get("StatusCode") or meta.get("HTTPStatusCode") or 0),
                attempts=attempt,
            )
        raise SpawnFailed(parse_function(function_arn).name, last, attempt, maybe_sent) from last
