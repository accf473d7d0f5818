"""Lambda's recursive loop detection for the local runtime: the lineage an invocation carries.

On AWS each invocation's X-Ray trace header (``_X_AMZN_TRACE_ID`` in the function's
environment, forwarded by botocore as ``X-Amzn-Trace-Id`` on every request the function makes)
carries a lineage: how many times each function has run in this chain of requests. When the
chain's next invocation of a function would be its 17th and the function's ``RecursiveLoop``
is ``Terminate`` (the default), Lambda drops it: a synchronous ``Invoke`` gets
``RecursiveInvocationException``, an asynchronous one has already answered 202 and the event is
dropped, counted in the ``RecursiveInvocationsDropped`` metric.
https://docs.aws.amazon.com/lambda/latest/dg/invocation-recursion.html;
"drops requests after exceeding 16 invocations":
https://aws.amazon.com/blogs/compute/detecting-and-stopping-recursive-loops-in-aws-lambda-functions/

Here every handler runs as a thread of one process, so an environment variable cannot tell
executions apart: the runtime keeps each execution's trace header in a thread-local
(:func:`running`) and :func:`install` registers a botocore ``before-call`` hook on a boto3
session that adds it, as botocore's own ``add_recursion_detection_header`` does from the
environment. The lineage format is this runtime's own (AWS's is opaque):
``Root=<trace id>;Lineage=<function>:<count>,...``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

TRACE_HEADER = "X-Amzn-Trace-Id"
RECURSION_LIMIT = 16
"""Invocations of one function a chain may make before Lambda drops the next (at Terminate)."""
_HOOK_ID = "siblings-local-trace-header"
_current = threading.local()


@dataclass(frozen=True)
class Trace:
    """One invocation's trace: the chain's root id and each function's count in it."""

    root: str = field(default_factory=lambda: f"1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}")
    counts: tuple[tuple[str, int], ...] = ()

    def count(self, function_name: str) -> int:
        """How many invocations of ``function_name`` the chain has made so far."""
        return dict(self.counts).get(function_name, 0)

    def child(self, function_name: str) -> Trace:
        """The trace of the next invocation of ``function_name`` in this chain."""
        counts = dict(self.counts)
        counts[function_name] = counts.get(function_name, 0) + 1
        return Trace(self.root, tuple(sorted(counts.items())))

    def header(self) -> str:
        """The ``X-Amzn-Trace-Id`` value."""
        lineage = ",".join(f"{name}:{count}" for name, count in self.counts)
        return f"Root={self.root};Lineage={lineage}" if lineage else f"Root={self.root}"

    @classmethod
    def parse(cls, header: str | None) -> Trace:
        """The trace in a request's header; a new chain when there is none (or it is unreadable)."""
        fields = dict(
            part.split("=", 1) for part in (header or "").split(";") if "=" in part
        )
        root = fields.get("Root")
        if not root:
            return cls()
        counts: dict[str, int] = {}
        for entry in filter(None, fields.get("Lineage", "").split(",")):
            name, _, count = entry.rpartition(":")
            if name and count.isdigit():
                counts[name] = int(count)
        return cls(root, tuple(sorted(counts.items())))


def over_limit(trace: Trace, function_name: str) -> bool:
    """Whether the invocation with ``trace`` would be ``function_name``'s 17th (or later)."""
    return trace.count(function_name) > RECURSION_LIMIT


@contextmanager
def running(trace: Trace) -> Iterator[None]:
    """Within the block, requests this thread makes through an installed session carry ``trace``."""
    previous = getattr(_current, "trace", None)
    _current.trace = trace
    try:
        yield
    finally:
        _current.trace = previous


def current() -> Trace | None:
    """The trace of the execution running on this thread, if any."""
    return getattr(_current, "trace", None)


def add_trace_header(params: dict[str, Any], **_: Any) -> None:
    """botocore ``before-call`` hook: the running execution's trace header, unless one is set."""
    trace = current()
    if trace is not None and TRACE_HEADER not in params["headers"]:
        params["headers"][TRACE_HEADER] = trace.header()


def install(session: Any) -> Any:
    """Make clients created from ``session`` (a boto3 session) afterwards forward the trace."""
    session.events.register("before-call", add_trace_header, unique_id=_HOOK_ID)
    return session
