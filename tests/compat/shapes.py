"""The context shapes sosw's tests use, and a look at what a sibling received."""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock

from siblings import METADATA_KEY
from tests.integration.siblings.support import SiblingsEnv


def sosw_context(arn: str) -> type:
    """A context the way sosw's tests make one: a class (not an instance) whose only
    attribute is ``invoked_function_arn``; no request id, no remaining-time method."""
    return type("lambda_context", (object,), {"invoked_function_arn": arn})


def mock_context(arn: str) -> MagicMock:
    """sosw's ``MagicMock()`` context with the one attribute ours reads set; every other
    attribute stays whatever the mock makes up."""
    context = MagicMock()
    context.invoked_function_arn = arn
    return context


def without_metadata(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` without our reserved chain key: what sosw would have sent."""
    return {k: v for k, v in event.items() if k != METADATA_KEY}


def only_payload(env: SiblingsEnv) -> dict[str, Any]:
    """The event of the only Invoke the server saw, without the reserved key."""
    assert len(env.invokes.events) == 1, env.invokes.calls
    return without_metadata(env.invokes.events[0])
