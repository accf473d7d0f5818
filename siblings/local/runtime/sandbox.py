"""Where a handler runs: registered functions, their containers, and one attempt's execution.

Each concurrent execution runs in its own container: a handler built by the registration's
``factory`` on a cold start (as Lambda runs a module's top level once per sandbox), reused by
later executions once idle.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from siblings.local.context import LambdaContext
from siblings.local.runtime.lineage import running
from siblings.local.runtime.logs import LogFormat
from siblings.local.runtime.records import Attempt, Handler, InvocationRecord

logger = logging.getLogger(__name__)

INIT_LIMIT_SECONDS = 10.0
"""Lambda gives a sandbox's init phase its own limit, outside the function's timeout."""


@dataclass
class Container:
    """A warm sandbox: the handler its cold start built."""

    handler: Handler


@dataclass
class Registration:
    """A function the runtime runs: how to build its handler, its overrides, its idle containers."""

    name: str
    factory: Callable[[], Handler]
    timeout_seconds: float | None
    memory_mb: int | None
    reserved_concurrency: int | None
    moto_reserved: int | None = None
    idle: list[Container] = field(default_factory=list)
    log_format: LogFormat | None = None
    """``LoggingConfig.LogFormat``: the handler's output goes to its log stream, written as
    Lambda's runtime writes it (``None``: left where Python sends it)."""

    @property
    def cap(self) -> int | None:
        """The reserved concurrency in force, if any."""
        # What the server says (PutFunctionConcurrency) wins over the registration default.
        return self.moto_reserved if self.moto_reserved is not None else self.reserved_concurrency


@dataclass
class Run:
    """An attempt in progress: its deadline moves once a cold start's init is over."""

    invocation: InvocationRecord
    attempt: Attempt
    deadline: float
    container: Container | None


def cold_start(registration: Registration) -> tuple[Container | None, str | None]:
    """A new container for ``registration``, or ``None`` and the init error."""
    try:
        return Container(registration.factory()), None
    except Exception as exc:  # an init error fails the attempt, as in Lambda
        return None, "init: " + describe_error(exc)


def call_handler(run: Run, container: Container, clock: Callable[[], float]) -> tuple[Any, str | None]:
    """Run ``container``'s handler on ``run``'s event; return its result, or ``None`` and the error."""
    invocation = run.invocation
    context = LambdaContext(
        function_name=invocation.function_name,
        function_version=invocation.function_version,
        invoked_function_arn=invocation.invoked_function_arn,
        memory_limit_in_mb=invocation.memory_mb,
        aws_request_id=invocation.request_id,
        deadline=run.deadline,
        clock=clock,
    )
    try:
        with running(invocation.trace):  # what _X_AMZN_TRACE_ID is to botocore on Lambda
            return container.handler(invocation.event, context), None
    except Exception as exc:  # the handler's failure is the invocation's outcome
        error = describe_error(exc)
        logger.info("%s attempt %d failed: %s", invocation.request_id, run.attempt.number, error)
        return None, error


def describe_error(exc: BaseException) -> str:
    """``Type: message at file:line`` of the innermost frame, as an attempt's error."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
