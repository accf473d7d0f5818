"""A local Lambda runtime: ``Invoke`` calls that reach the moto server run real Python handlers.

moto without Docker answers every ``Invoke`` with a canned string and runs nothing. This module
plugs into :class:`~siblings.local.server.LocalAwsServer` as WSGI middleware and executes the
handler registered for a function the way Lambda does:

- ``InvocationType='Event'``: answered ``202`` with an empty body and a fresh
  ``x-amzn-RequestId`` (a UUID, as Lambda sends), then queued and run on a worker thread.
  A failed attempt (the handler raised or ran past its deadline) is retried twice with the same
  request id and event, after ``retry_delays`` (Lambda waits about 1 and 2 minutes; the local
  default is scaled down to seconds).
- ``InvocationType='DryRun'``: ``204``, nothing runs.
- ``InvocationType='RequestResponse'``: run in the request thread; ``200`` with the result, or
  ``X-Amz-Function-Error: Unhandled`` with Lambda's error document.
- Unknown function or qualifier: moto's own ``404 ResourceNotFoundException`` (the runtime asks
  moto with an in-process ``GetFunction``; moto's ``Invoke`` does not check existence).

Reserved concurrency (``PutFunctionConcurrency`` on the server, or ``register(...,
reserved_concurrency=N)``) caps how many executions of a function run at once. Lambda treats the
two invocation types differently over the cap, and so does this runtime: a synchronous invoke is
refused with ``429 TooManyRequestsException`` (reason
``ReservedFunctionConcurrentInvocationLimitExceeded``); an asynchronous invoke is still accepted
(``202``) and its event waits in the function's internal queue until a slot frees, as Lambda
keeps throttled async events and retries them (for up to six hours). ``stats().throttled``
counts the events that had to wait. A 429 on an async ``Invoke`` in AWS is an API *rate* limit;
that is the quota layer's and the fault injector's job, not this module's.

Each finished attempt publishes ``Invocations``/``Duration``/``Errors`` to ``AWS/Lambda`` through
a :class:`~siblings.local.metrics.MetricsPublisher` (batched ``PutMetricData``), and the true
number of running executions is recorded over time (:meth:`LocalLambdaRuntime.timeline`).

Each concurrent execution runs in its own "container": a handler built by the registration's
``factory`` on a cold start (as Lambda runs a module's top level once per sandbox) and reused
by later executions once idle, so per-container state such as an in-process cache behaves as
it does on Lambda. The init phase does not count against the timeout or in ``Duration``.

Handlers run as threads of this process. A handler that overruns its deadline is recorded as
timed out and retried, but its thread cannot be killed and runs on unobserved (Lambda would
freeze it); handlers that honour ``get_remaining_time_in_millis`` never hit this.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, quote

from siblings.local.calls import identify, read_body
from siblings.local.context import LambdaContext
from siblings.local.metrics import MetricsPublisher
from siblings.local.server import WsgiApp

logger = logging.getLogger(__name__)

Handler = Callable[[Any, LambdaContext], Any]
"""``handler(event, context)``, as in Lambda."""

AttemptOutcome = Literal["running", "succeeded", "failed", "timed_out"]
InvocationStatus = Literal["queued", "running", "retrying", "succeeded", "failed"]

ASYNC_PAYLOAD_LIMIT = 1_048_576
"""Largest asynchronous event Lambda accepts (1 MB; 256 KB before late 2025)."""
SYNC_PAYLOAD_LIMIT = 6_291_456
"""Largest synchronous request payload (6 MB)."""

_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<ref>[^/]+)/invocations/?$")
_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:(?P<region>[^:]+):(?P<account>\d{12}):function:"
    r"(?P<name>[^:]+)(?::(?P<qualifier>[^:]+))?$"
)
# Lambda gives a sandbox's init phase its own limit, outside the function's timeout.
_INIT_LIMIT_SECONDS = 10.0
_PARTIAL_ARN = re.compile(r"^(?P<account>\d{12}):function:(?P<name>[^:]+)(?::(?P<qualifier>[^:]+))?$")
_LOCAL_AUTH = (
    "AWS4-HMAC-SHA256 Credential=testing/20240101/{region}/lambda/aws4_request, "
    "SignedHeaders=host, Signature=0"
)


def parse_function_ref(ref: str, qualifier: str | None = None) -> tuple[str, str | None]:
    """Split what ``Invoke`` accepts as ``FunctionName`` into ``(name, qualifier)``.

    Accepts a name, ``name:qualifier``, a full ARN (qualified or not) or a partial ARN
    (``123456789012:function:name``). A qualifier inside the reference wins over ``qualifier``.
    """
    for pattern in (_ARN, _PARTIAL_ARN):
        match = pattern.match(ref)
        if match:
            return match.group("name"), match.group("qualifier") or qualifier
    name, _, inline = ref.partition(":")
    return name, inline or qualifier


@dataclass
class Attempt:
    """One run of an invocation's handler (an async event gets up to three)."""

    number: int
    started_at: float
    ended_at: float | None = None
    init_ms: float = 0.0
    outcome: AttemptOutcome = "running"
    error: str | None = None
    result: Any = None

    @property
    def duration_ms(self) -> float:
        """How long the handler ran (so far, while running); a cold start's init excluded."""
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return max(0.0, (end - self.started_at) * 1000.0 - self.init_ms)


@dataclass
class InvocationRecord:
    """An invocation the runtime accepted, with every attempt made for it."""

    request_id: str
    function_name: str
    qualifier: str | None
    invoked_function_arn: str
    function_version: str
    payload: bytes
    timeout_seconds: float
    memory_mb: int
    accepted_at: float
    invocation_type: str = "Event"
    source: str = "invoke"
    """``invoke`` (an ``Invoke`` API call) or ``trigger`` (:meth:`LocalLambdaRuntime.invoke_async`)."""
    status: InvocationStatus = "queued"
    ready_at: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)
    throttled: bool = False

    @property
    def event(self) -> Any:
        """A fresh copy of the event (each attempt gets its own)."""
        return json.loads(self.payload) if self.payload else {}

    @property
    def result(self) -> Any:
        """What the last successful attempt returned, else ``None``."""
        for attempt in reversed(self.attempts):
            if attempt.outcome == "succeeded":
                return attempt.result
        return None


@dataclass(frozen=True)
class RuntimeStats:
    """Counters of a :class:`LocalLambdaRuntime` at one moment."""

    accepted: int
    queued: int
    running: int
    succeeded: int
    failed: int
    attempts: int
    errors: int
    timeouts: int
    retries: int
    throttled: int
    sync_throttled: int
    dry_runs: int
    peak_concurrency: int
    cold_starts: int
    late_finishes: int


@dataclass
class _Container:
    handler: Handler


@dataclass
class _Function:
    name: str
    factory: Callable[[], Handler]
    timeout_seconds: float | None
    memory_mb: int | None
    reserved_concurrency: int | None
    moto_reserved: int | None = None
    idle: list[_Container] = field(default_factory=list)

    @property
    def cap(self) -> int | None:
        # What the server says (PutFunctionConcurrency) wins over the registration default.
        return self.moto_reserved if self.moto_reserved is not None else self.reserved_concurrency


@dataclass
class _Run:
    """An attempt in progress: its deadline moves once a cold start's init is over."""

    invocation: InvocationRecord
    attempt: Attempt
    deadline: float
    container: _Container | None


@dataclass(frozen=True)
class _Described:
    unqualified_arn: str
    version: str
    timeout_seconds: float
    memory_mb: int


class _InvokeError(Exception):
    """An Invoke answered with an error document instead of running anything."""

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.extra = extra


class LocalLambdaRuntime:
    """Runs registered Python handlers for the ``Invoke`` calls a moto server receives.

    Use ``runtime.wrap`` as (part of) the server's middleware, :meth:`register` a handler per
    function (the function must also exist in moto: see
    :func:`siblings.local.provision.create_function`), then :meth:`start` with a CloudWatch
    client pointed at the same server so metrics get published.

    ``account_concurrency`` is the account's concurrency quota (1000 on AWS; lower by default
    because each execution is a thread here). ``request_ids`` makes request ids repeatable.
    ``metrics_clock`` (epoch seconds) stamps published datums and ``metric_duration_scale``
    multiplies published durations: a simulation that compresses CloudWatch time passes a
    clock running ``s`` times faster and ``s``, so Little's law still holds in metric time.
    """

    def __init__(
        self,
        *,
        account_concurrency: int = 200,
        retry_delays: Iterable[float] = (0.5, 1.0),
        default_timeout_seconds: float | None = None,
        metrics_flush_seconds: float = 1.0,
        metrics_clock: Callable[[], float] = time.time,
        metric_duration_scale: float = 1.0,
        request_ids: Callable[[], str] | None = None,
        region_name: str = "us-east-1",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account_concurrency = account_concurrency
        self.retry_delays = tuple(retry_delays)
        self.default_timeout_seconds = default_timeout_seconds
        self.metrics_flush_seconds = metrics_flush_seconds
        self.region_name = region_name
        self._metrics_clock = metrics_clock
        self._duration_scale = metric_duration_scale
        self._request_ids = request_ids or (lambda: str(uuid.uuid4()))
        self._clock = clock
        self._functions: dict[str, _Function] = {}
        self._app: WsgiApp | None = None
        self._cond = threading.Condition()
        self._queue: list[InvocationRecord] = []
        self._running: dict[int, _Run] = {}
        self._running_by_fn: Counter[str] = Counter()
        self._invocations: dict[str, InvocationRecord] = {}
        self._counters: Counter[str] = Counter()
        self._peak = 0
        self._started_at = clock()
        self._timeline: list[tuple[float, int]] = [(0.0, 0)]
        self._dispatcher: threading.Thread | None = None
        self._stopping = False
        self.metrics: MetricsPublisher | None = None

    # --- setup -----------------------------------------------------------------------------

    def register(
        self,
        function_name: str,
        handler: Handler | None = None,
        *,
        factory: Callable[[], Handler] | None = None,
        timeout_seconds: float | None = None,
        memory_mb: int | None = None,
        reserved_concurrency: int | None = None,
    ) -> None:
        """Run ``handler`` for Invokes of ``function_name`` (any qualifier).

        Give either ``handler`` (shared by every container) or ``factory``, called once per
        cold start to build a container's handler (its clients, caches...).
        ``timeout_seconds``/``memory_mb`` override the function's configuration in moto
        (``Timeout``, ``MemorySize``), e.g. for deadlines shorter than Lambda's 1 s minimum.
        ``reserved_concurrency`` applies unless the server has one set for the function.
        """
        if (handler is None) == (factory is None):
            raise TypeError("register() takes exactly one of handler or factory")
        if reserved_concurrency is not None and reserved_concurrency < 0:
            raise ValueError("reserved_concurrency must be >= 0")
        build: Callable[[], Handler] = factory if factory is not None else (lambda: handler)  # type: ignore[assignment,return-value]
        with self._cond:
            self._functions[function_name] = _Function(
                function_name, build, timeout_seconds, memory_mb, reserved_concurrency
            )

    def set_reserved_concurrency(self, function_name: str, value: int | None) -> None:
        """Change the registration's reserved concurrency (``None``: no cap)."""
        with self._cond:
            self._functions[function_name].reserved_concurrency = value
            self._cond.notify_all()

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """Return ``app`` with Invokes of registered functions handled by this runtime."""
        self._app = app

        def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            match = _INVOKE_PATH.match(environ.get("PATH_INFO", ""))
            if not match or environ.get("REQUEST_METHOD") != "POST":
                return app(environ, start_response)
            body = read_body(environ)
            if identify(environ, body) != ("lambda", "Invoke"):
                return app(environ, start_response)
            query = parse_qs(environ.get("QUERY_STRING", ""))
            name, qualifier = parse_function_ref(
                match.group("ref"), (query.get("Qualifier") or [None])[0]
            )
            if name not in self._functions:
                return app(environ, start_response)
            return self._serve_invoke(environ, start_response, name, qualifier, body)

        return middleware

    def start(self, cloudwatch: Any | None = None) -> LocalLambdaRuntime:
        """Start dispatching; with ``cloudwatch`` (a client on the server), publish metrics."""
        if cloudwatch is not None and self.metrics is None:
            self.metrics = MetricsPublisher(cloudwatch, self.metrics_flush_seconds)
            self.metrics.start()
        with self._cond:
            self._stopping = False
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(
                    target=self._dispatch_loop, name="lambda-dispatcher", daemon=True
                )
                self._dispatcher.start()
        return self

    def stop(self) -> None:
        """Stop dispatching (queued events stay unrun) and flush metrics."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout=10)
            self._dispatcher = None
        if self.metrics is not None:
            self.metrics.stop()

    # --- invoking without HTTP ---------------------------------------------------------------

    def invoke_async(self, function_name: str, event: Any, qualifier: str | None = None) -> str:
        """Queue an event as a trigger inside AWS would (EventBridge, an SNS topic...).

        Not an ``Invoke`` API call: nothing is counted at the server or throttled by quotas.
        Returns the request id. Raises ``LookupError`` if the function is not registered or
        does not exist on the server.
        """
        name, qualifier = parse_function_ref(function_name, qualifier)
        if name not in self._functions:
            raise LookupError(f"no handler registered for {name!r}")
        auth = _LOCAL_AUTH.format(region=self.region_name)
        try:
            described = self._describe(name, qualifier, auth)
        except _InvokeError as exc:
            raise LookupError(str(exc)) from None
        payload = json.dumps(event).encode()
        return self._accept(name, qualifier, described, payload, source="trigger").request_id

    # --- observing -------------------------------------------------------------------------

    def stats(self) -> RuntimeStats:
        """Counters now."""
        with self._cond:
            statuses = Counter(inv.status for inv in self._invocations.values())
            return RuntimeStats(
                accepted=len(self._invocations),
                queued=len(self._queue),
                running=len(self._running),
                succeeded=statuses["succeeded"],
                failed=statuses["failed"],
                attempts=self._counters["attempts"],
                errors=self._counters["errors"],
                timeouts=self._counters["timeouts"],
                retries=self._counters["retries"],
                throttled=self._counters["throttled"],
                sync_throttled=self._counters["sync_throttled"],
                dry_runs=self._counters["dry_runs"],
                peak_concurrency=self._peak,
                cold_starts=self._counters["cold_starts"],
                late_finishes=self._counters["late_finishes"],
            )

    def invocations(self) -> list[InvocationRecord]:
        """Every invocation accepted so far, oldest first."""
        with self._cond:
            return sorted(self._invocations.values(), key=lambda inv: inv.accepted_at)

    def invocation(self, request_id: str) -> InvocationRecord | None:
        """The invocation with this request id, if this runtime accepted it."""
        with self._cond:
            return self._invocations.get(request_id)

    def running(self, function_name: str | None = None) -> int:
        """Executions running now (the true ``ConcurrentExecutions``)."""
        with self._cond:
            if function_name is None:
                return len(self._running)
            return self._running_by_fn[function_name]

    def timeline(self) -> list[tuple[float, int]]:
        """``(seconds since the runtime was created, executions running)`` at every change."""
        with self._cond:
            return list(self._timeline)

    @property
    def started_at(self) -> float:
        """The runtime clock's value at creation: time zero of :meth:`timeline`."""
        return self._started_at

    def elapsed(self) -> float:
        """Seconds since the runtime was created (the time axis of :meth:`timeline`)."""
        return self._clock() - self._started_at

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running; ``False`` if ``timeout`` ran out first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._running, timeout)

    # --- HTTP side -------------------------------------------------------------------------

    def _serve_invoke(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        name: str,
        qualifier: str | None,
        body: bytes,
    ) -> Any:
        invocation_type = environ.get("HTTP_X_AMZ_INVOCATION_TYPE") or "RequestResponse"
        try:
            described = self._describe(name, qualifier, environ.get("HTTP_AUTHORIZATION", ""))
            if invocation_type == "DryRun":
                with self._cond:
                    self._counters["dry_runs"] += 1
                return _respond(start_response, 204, self._request_ids(), b"")
            limit = ASYNC_PAYLOAD_LIMIT if invocation_type == "Event" else SYNC_PAYLOAD_LIMIT
            if len(body) > limit:
                raise _InvokeError(
                    413,
                    "RequestEntityTooLargeException",
                    f"Request must be smaller than {limit} bytes for the Invoke operation",
                )
            if body:
                try:
                    json.loads(body)
                except ValueError:
                    raise _InvokeError(
                        400,
                        "InvalidRequestContentException",
                        "Could not parse request body into json",
                    ) from None
            if invocation_type == "Event":
                invocation = self._accept(name, qualifier, described, body)
                return _respond(start_response, 202, invocation.request_id, b"")
            if invocation_type == "RequestResponse":
                return self._serve_sync(start_response, name, qualifier, described, body)
            raise _InvokeError(
                400, "InvalidParameterValueException", f"Unsupported InvocationType {invocation_type}"
            )
        except _InvokeError as exc:
            document = {"Type": "User", "message": str(exc), **exc.extra}
            return _respond(
                start_response,
                exc.status,
                self._request_ids(),
                json.dumps(document).encode(),
                {"x-amzn-ErrorType": exc.code},
            )

    def _serve_sync(
        self,
        start_response: Callable[..., Any],
        name: str,
        qualifier: str | None,
        described: _Described,
        body: bytes,
    ) -> Any:
        with self._cond:
            over = self._over_capacity(name)
            if over:
                self._counters["sync_throttled"] += 1
                raise _InvokeError(429, "TooManyRequestsException", "Rate Exceeded.", Reason=over)
            invocation = self._new_invocation(name, qualifier, described, body, self._clock())
            invocation.invocation_type = "RequestResponse"
            attempt = self._launch(invocation, self._clock())
            limit = invocation.timeout_seconds + _INIT_LIMIT_SECONDS + 1.0
            if not self._cond.wait_for(lambda: attempt.outcome != "running", limit):
                self._expire(self._clock())  # the dispatcher is not running: time out here
        headers = {"X-Amz-Executed-Version": described.version}
        if attempt.outcome == "succeeded":
            return _respond(
                start_response, 200, invocation.request_id, _to_json(attempt.result), headers
            )
        headers["X-Amz-Function-Error"] = "Unhandled"
        error = attempt.error or ""
        document = {
            "errorMessage": error,
            "errorType": "TimeoutError" if attempt.outcome == "timed_out" else error.split(":")[0],
            "requestId": invocation.request_id,
        }
        return _respond(start_response, 200, invocation.request_id, _to_json(document), headers)

    def _describe(self, name: str, qualifier: str | None, auth: str) -> _Described:
        """Ask moto whether the function (and qualifier) exists, and for its configuration."""
        path = f"/2015-03-31/functions/{quote(name, safe='')}"
        base = self._inner_get(path, "", auth)
        configuration = base["Configuration"]
        function = self._functions[name]
        reserved = (base.get("Concurrency") or {}).get("ReservedConcurrentExecutions")
        with self._cond:
            function.moto_reserved = reserved
        if qualifier:
            qualified = self._inner_get(path, f"Qualifier={quote(qualifier, safe='')}", auth)
            configuration = qualified["Configuration"]
        timeout = function.timeout_seconds or self.default_timeout_seconds
        return _Described(
            unqualified_arn=_strip_qualifier(base["Configuration"]["FunctionArn"], name),
            version=str(configuration.get("Version", "$LATEST")),
            timeout_seconds=float(timeout or configuration.get("Timeout", 3)),
            memory_mb=int(function.memory_mb or configuration.get("MemorySize", 128)),
        )

    def _inner_get(self, path: str, query: str, auth: str) -> dict[str, Any]:
        if self._app is None:
            raise RuntimeError("LocalLambdaRuntime.wrap was never applied to a server")
        status, headers, body = _call_wsgi(self._app, "GET", path, query, auth)
        if status != 200:
            code = headers.get("x-amzn-errortype", "ResourceNotFoundException").split(":")[0]
            try:
                document = json.loads(body)
                message = document.get("message") or document.get("Message")
            except (ValueError, AttributeError):
                message = body.decode("utf-8", "replace")
            raise _InvokeError(status, code, message or f"Function not found: {path}")
        result: dict[str, Any] = json.loads(body)
        return result

    # --- queue and dispatch ------------------------------------------------------------------

    def _new_invocation(
        self, name: str, qualifier: str | None, described: _Described, payload: bytes, now: float
    ) -> InvocationRecord:
        arn = described.unqualified_arn + (f":{qualifier}" if qualifier else "")
        invocation = InvocationRecord(
            request_id=self._request_ids(),
            function_name=name,
            qualifier=qualifier,
            invoked_function_arn=arn,
            function_version=described.version,
            payload=payload,
            timeout_seconds=described.timeout_seconds,
            memory_mb=described.memory_mb,
            accepted_at=now,
            ready_at=now,
        )
        self._invocations[invocation.request_id] = invocation
        return invocation

    def _accept(
        self,
        name: str,
        qualifier: str | None,
        described: _Described,
        payload: bytes,
        source: str = "invoke",
    ) -> InvocationRecord:
        with self._cond:
            invocation = self._new_invocation(name, qualifier, described, payload, self._clock())
            invocation.source = source
            self._queue.append(invocation)
            self._cond.notify_all()
            return invocation

    def _over_capacity(self, name: str) -> str | None:
        """Why another execution of ``name`` may not start now, or ``None``. Lock held."""
        cap = self._functions[name].cap
        if cap is not None and self._running_by_fn[name] >= cap:
            return "ReservedFunctionConcurrentInvocationLimitExceeded"
        if len(self._running) >= self.account_concurrency:
            return "ConcurrentInvocationLimitExceeded"
        return None

    def _dispatch_loop(self) -> None:
        with self._cond:
            while not self._stopping:
                now = self._clock()
                self._expire(now)
                self._launch_ready(now)
                self._cond.wait(timeout=self._next_wake(now))

    def _launch_ready(self, now: float) -> None:
        for invocation in sorted(self._queue, key=lambda inv: inv.ready_at):
            if invocation.ready_at > now:
                continue
            if self._over_capacity(invocation.function_name):
                if not invocation.throttled:
                    invocation.throttled = True
                    self._counters["throttled"] += 1
                continue
            self._queue.remove(invocation)
            self._launch(invocation, now)

    def _next_wake(self, now: float) -> float:
        moments = [run.deadline for run in self._running.values()]
        moments += [inv.ready_at for inv in self._queue if inv.ready_at > now]
        return max(0.005, min(moments, default=now + 0.5) - now)

    def _launch(self, invocation: InvocationRecord, now: float) -> Attempt:
        """Start an attempt on a warm container, or a cold one. Lock held."""
        function = self._functions[invocation.function_name]
        container = function.idle.pop() if function.idle else None
        attempt = Attempt(number=len(invocation.attempts) + 1, started_at=now)
        invocation.attempts.append(attempt)
        invocation.status = "running"
        # A cold start's init has Lambda's own 10 s limit; the timeout starts after it.
        budget = invocation.timeout_seconds + (0.0 if container else _INIT_LIMIT_SECONDS)
        run = _Run(invocation, attempt, now + budget, container)
        self._running[id(attempt)] = run
        self._running_by_fn[invocation.function_name] += 1
        self._counters["attempts"] += 1
        self._peak = max(self._peak, len(self._running))
        self._timeline.append((now - self._started_at, len(self._running)))
        if self.metrics is not None:  # ConcurrentExecutions, as Lambda publishes it
            self.metrics.record_concurrency(
                invocation.function_name,
                self._running_by_fn[invocation.function_name],
                len(self._running),
                at=datetime.fromtimestamp(self._metrics_clock(), UTC),
            )
        threading.Thread(
            target=self._execute,
            args=(function, run),
            name=f"lambda-{invocation.function_name}-{invocation.request_id[:8]}",
            daemon=True,
        ).start()
        return attempt

    def _execute(self, function: _Function, run: _Run) -> None:
        invocation, attempt = run.invocation, run.attempt
        result: Any = None
        error: str | None = None
        if run.container is None:
            with self._cond:
                self._counters["cold_starts"] += 1
            try:
                run.container = _Container(function.factory())
            except Exception as exc:  # an init error fails the attempt, as in Lambda
                error = "init: " + _describe_error(exc)
        with self._cond:
            now = self._clock()
            attempt.init_ms = (now - attempt.started_at) * 1000.0
            run.deadline = now + invocation.timeout_seconds
            self._cond.notify_all()
        if error is None and run.container is not None:
            context = LambdaContext(
                function_name=invocation.function_name,
                function_version=invocation.function_version,
                invoked_function_arn=invocation.invoked_function_arn,
                memory_limit_in_mb=invocation.memory_mb,
                aws_request_id=invocation.request_id,
                deadline=run.deadline,
                clock=self._clock,
            )
            try:
                result = run.container.handler(invocation.event, context)
            except Exception as exc:  # the handler's failure is the invocation's outcome
                error = _describe_error(exc)
                logger.info("%s attempt %d failed: %s", invocation.request_id, attempt.number, error)
        with self._cond:
            if attempt.outcome != "running":  # already timed out; Lambda would have frozen it
                self._counters["late_finishes"] += 1
                return
            if run.container is not None:
                function.idle.append(run.container)
            self._finish(run, "failed" if error else "succeeded", result, error)

    def _expire(self, now: float) -> None:
        for run in list(self._running.values()):
            if run.deadline <= now:
                message = f"Task timed out after {run.invocation.timeout_seconds:.2f} seconds"
                # The container is not reused: Lambda restarts a sandbox after a timeout.
                self._finish(run, "timed_out", None, message)

    def _finish(self, run: _Run, outcome: AttemptOutcome, result: Any, error: str | None) -> None:
        """Record an attempt's end, publish its metrics, and queue a retry if due. Lock held."""
        invocation, attempt = run.invocation, run.attempt
        now = self._clock()
        attempt.ended_at = now
        attempt.outcome = outcome
        attempt.result = result
        attempt.error = error
        self._running.pop(id(attempt), None)
        self._running_by_fn[invocation.function_name] -= 1
        self._timeline.append((now - self._started_at, len(self._running)))
        if outcome == "timed_out":
            self._counters["timeouts"] += 1
        if outcome != "succeeded":
            self._counters["errors"] += 1
        if self.metrics is not None:
            self.metrics.record_invocation(
                invocation.function_name,
                attempt.duration_ms * self._duration_scale,
                errored=outcome != "succeeded",
                at=datetime.fromtimestamp(self._metrics_clock(), UTC),
                qualifier=invocation.qualifier,
            )
        retry = invocation.invocation_type == "Event" and attempt.number <= len(self.retry_delays)
        if outcome != "succeeded" and retry:
            invocation.status = "retrying"
            invocation.ready_at = now + self.retry_delays[attempt.number - 1]
            self._queue.append(invocation)
            self._counters["retries"] += 1
        else:
            invocation.status = "succeeded" if outcome == "succeeded" else "failed"
        self._cond.notify_all()


def _describe_error(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _to_json(value: Any) -> bytes:
    return json.dumps(value, default=str).encode()


def _strip_qualifier(arn: str, name: str) -> str:
    head, _, tail = arn.rpartition(":")
    return head if tail != name and head.endswith(f":function:{name}") else arn


def _respond(
    start_response: Callable[..., Any],
    status: int,
    request_id: str,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> list[bytes]:
    reasons = {200: "OK", 202: "Accepted", 204: "No Content", 400: "Bad Request",
               413: "Request Entity Too Large", 429: "Too Many Requests"}
    all_headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "x-amzn-RequestId": request_id,
        **(headers or {}),
    }
    start_response(f"{status} {reasons.get(status, 'Error')}", list(all_headers.items()))
    return [body]


def _call_wsgi(
    app: WsgiApp, method: str, path: str, query: str, auth: str
) -> tuple[int, dict[str, str], bytes]:
    """Call the wrapped app in process, as if a request had arrived, and collect the answer."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": auth,
        "CONTENT_LENGTH": "0",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        captured["status"] = int(status.split()[0])
        captured["headers"] = {k.lower(): v for k, v in headers}

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return captured["status"], captured["headers"], body
