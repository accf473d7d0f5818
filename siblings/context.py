"""Read what the manager needs from a Lambda context object, refusing anything malformed."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from estimator.clock import Clock
from estimator.validation import FunctionRef, parse_function
from siblings.metadata import check_id


@dataclass(frozen=True)
class InvocationInfo:
    """The parts of a Lambda context the siblings manager uses."""

    function_arn: str
    """``invoked_function_arn`` exactly as given: a sibling is invoked through the same alias or
    version as the current execution."""
    unqualified_arn: str
    """The function's ARN without alias or version."""
    function_name: str
    """The bare function name."""
    qualifier: str | None
    """Alias or version from the ARN, ``None`` when invoked unqualified."""
    region: str
    """Region from the ARN."""
    account: str
    """Account id from the ARN."""
    request_id: str | None
    """``aws_request_id`` (``None`` when the object has none, e.g. a hand-made test context)."""
    remaining_ms: Callable[[], int] | None
    """``get_remaining_time_in_millis`` when the context has it."""
    ref: FunctionRef
    """The function as parsed from the ARN (name, qualifier, region, account)."""


def read_context(lambda_context: Any) -> InvocationInfo:
    """Validate ``lambda_context`` and return its :class:`InvocationInfo`.

    Raises ``TypeError`` when the object is missing or has no string ``invoked_function_arn``,
    ``ValueError`` when that ARN is not a Lambda function ARN.
    """
    if lambda_context is None:
        raise TypeError("lambda_context is required (the context object of your handler)")
    arn = context_attribute(lambda_context, "invoked_function_arn")
    if arn is None:
        raise TypeError(
            "lambda_context has no invoked_function_arn: pass the context object your "
            f"handler received (a test double must set it to the function's ARN), "
            f"got {type(lambda_context).__name__}"
        )
    if not isinstance(arn, str):
        raise TypeError(
            f"lambda_context.invoked_function_arn must be a str, got {type(arn).__name__}"
        )
    try:
        ref = parse_function(arn)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"lambda_context.invoked_function_arn {arn!r} is invalid, not a Lambda function ARN: {exc}"
        ) from None
    if not ref.region or not ref.account:
        raise ValueError(
            f"lambda_context.invoked_function_arn is not a Lambda function ARN: {arn!r} "
            "(a full ARN with region and account is needed)"
        )

    request_id = context_attribute(lambda_context, "aws_request_id")
    if request_id is not None and (not isinstance(request_id, str) or not request_id):
        raise TypeError(
            "lambda_context.aws_request_id must be a non-empty str, "
            f"got {type(request_id).__name__}"
        )
    if request_id is not None:
        check_id("lambda_context.aws_request_id", request_id)
    remaining = context_attribute(lambda_context, "get_remaining_time_in_millis")
    return InvocationInfo(
        function_arn=arn,
        unqualified_arn=ref.unqualified().arn(),
        function_name=ref.name,
        qualifier=ref.qualifier,
        region=ref.region,
        account=ref.account,
        request_id=request_id,
        remaining_ms=remaining if callable(remaining) else None,
        ref=ref,
    )


def context_attribute(lambda_context: Any, name: str) -> Any:
    """``getattr`` that counts what a ``unittest.mock`` object made up as absent.

    Handlers written for sosw are often tested with ``MagicMock()`` contexts, on which every
    attribute nobody set exists and is another mock. Such a value says nothing about the
    execution: a made-up request id means a new chain, a made-up remaining-time method no
    deadline. The module is looked up, not imported: when it is not loaded nothing is a mock.
    """
    value = getattr(lambda_context, name, None)
    mock = sys.modules.get("unittest.mock")
    if mock is not None and isinstance(value, mock.NonCallableMock):
        return None
    return value


DEADLINE_MARGIN_S = 1.0
"""Kept back from the execution's remaining time, so the last call of a spawn (a retried
Invoke, the record after it) cannot outlive the execution."""


def spawn_deadline(info: InvocationInfo, clock: Clock) -> float | None:
    """The ``clock.monotonic()`` value by which a spawn's calls must be done: the remaining
    time less :data:`DEADLINE_MARGIN_S` (a quarter of it when that is less); ``None`` when the
    context cannot tell."""
    remaining = remaining_seconds(info)
    if remaining is None:
        return None
    margin = min(DEADLINE_MARGIN_S, remaining / 4)
    return clock.monotonic() + max(remaining - margin, 0.0)


def remaining_seconds(info: InvocationInfo) -> float | None:
    """Seconds left in the execution, ``None`` when the context cannot tell."""
    if info.remaining_ms is None:
        return None
    try:
        return float(info.remaining_ms()) / 1000.0
    except Exception:  # a broken test double must not block spawning
        return None
