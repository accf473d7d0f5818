"""The asynchronous Invoke of a sibling, retried when Lambda says "wait and try again".

Each error ``Invoke`` can answer (botocore's ``lambda`` service model lists them, with their HTTP
codes) falls in one class (the README's table, "Invoke errors", is this module's):

* **retried** with full-jitter exponential backoff, up to ``invoke_max_attempts`` and within the
  execution's remaining time: throttling (429), Lambda's own 500, the "not ready yet" answers
  (``ResourceConflictException``, ``SnapStartNotReadyException``,
  ``CodeArtifactUserPendingException`` are 409; ``ResourceNotReadyException``,
  ``ENINotReadyException``, ``EC2ThrottledException``, ``EC2UnexpectedException`` are 502),
  any other 5xx not known to be permanent, and network errors;
* **permanent**, failing at once with a message naming the cause and its fix: the function's
  configuration is broken (KMS, deployment package, runtime, VPC subnets, security groups, ENI
  limit, EC2 permissions: 502s that no retry can cure), and every 4xx (a missing function, a
  denied permission, a rejected payload);
* ``RecursiveInvocationException``: Lambda stopped a recursive loop; the spawner turns it into
  the ``recursive_loop`` refusal (nothing was handed off).

Either failure is a :class:`SpawnFailed` carrying the cause, never a silent ``None``: the caller
keeps its work. https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html#API_Invoke_Errors
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
from estimator.deadline import TIMEOUT_STEPS
from estimator.failures import classify
from estimator.validation import parse_function
from siblings.errors import SpawnFailed

RECURSIVE_INVOCATION = "RecursiveInvocationException"
"""Lambda's answer to an Invoke it stopped as part of a recursive loop (400)."""

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
    # "Wait and try again": the function or its VPC connection is being set up.
    "ResourceConflictException",
    "SnapStartNotReadyException",
    "CodeArtifactUserPendingException",
    "ResourceNotReadyException",
    "ENINotReadyException",
    "EC2ThrottledException",
    "EC2UnexpectedException",
}
# 5xx answers caused by the function's configuration: every retry would fail the same way.
PERMANENT_CAUSES = {
    "KMSAccessDeniedException": "Lambda cannot decrypt the function's environment variables "
    "(KMS access denied): allow the execution role to use the function's KMS key",
    "KMSDisabledException": "the KMS key of the function's environment variables is disabled",
    "KMSInvalidStateException": "the KMS key of the function's environment variables is not "
    "in a state that allows Decrypt",
    "KMSNotFoundException": "the KMS key of the function's environment variables does not exist",
    "InvalidZipFileException": "Lambda cannot unzip the function's deployment package: deploy "
    "it again",
    "InvalidRuntimeException": "the function's runtime (or runtime version) is not supported: "
    "update the function's runtime",
    "SubnetIPAddressLimitReachedException": "a subnet of the function's VPC configuration has "
    "no free IP address: add subnets or free addresses",
    "InvalidSubnetIDException": "a subnet of the function's VPC configuration does not exist",
    "InvalidSecurityGroupIDException": "a security group of the function's VPC configuration "
    "does not exist",
    "EC2AccessDeniedException": "the execution role lacks the EC2 permissions for the "
    "function's VPC configuration (e.g. AWSLambdaVPCAccessExecutionRole)",
    "ENILimitReachedException": "the account's elastic network interface limit is reached in "
    "the function's VPC: raise the ENI quota or remove unused ENIs",
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


def error_code(exc: BaseException | None) -> str:
    """The AWS error code of ``exc`` (``""`` when AWS sent none)."""
    return "" if exc is None else classify(exc).code or ""


def is_retryable(exc: BaseException) -> bool:
    """Whether an Invoke error is worth another attempt: throttling, the "not ready yet" 409s
    and 502s, 5xx other than a broken configuration, network errors."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
        if code in PERMANENT_CAUSES:
            return False
        return code in _RETRYABLE_CODES or status == 429 or status >= 500
    return isinstance(exc, ConnectionError | HTTPClientError)


def describe_failure(exc: BaseException | None) -> str:
    """What a permanent failure means and how to fix it (``""`` when nothing is known)."""
    code = error_code(exc)
    if code in PERMANENT_CAUSES:
        return f"{code} is permanent (not retried): {PERMANENT_CAUSES[code]}"
    if code == RECURSIVE_INVOCATION:
        return (
            f"{code}: Lambda stopped this chain as a recursive loop; set RecursiveLoop: Allow "
            "on the function (the library's guards replace AWS's)"
        )
    return ""


_MIN_ATTEMPT_S = 2 * TIMEOUT_STEPS[0]
"""The time a retried attempt needs at least: the shortest timeout to connect, and to read."""


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
            if attempt and deadline is not None and deadline - self._clock.monotonic() < _MIN_ATTEMPT_S:
                break  # no time left to connect and read once more
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
        raise SpawnFailed(
            parse_function(function_arn).name, last, attempt, maybe_sent, describe_failure(last)
        ) from last
