"""The HTTP side of the local runtime: ``Invoke`` requests in, Lambda's answers out.

Requests for registered functions are served here; everything else goes on to moto. Whether
the function (and qualifier) exists, and its configuration, is asked of moto with an
in-process ``GetFunction`` (moto's ``Invoke`` does not check existence), so unknown ones get
moto's own ``404 ResourceNotFoundException``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from estimator.validation import parse_function
from siblings.local.calls import identify, read_body
from siblings.local.runtime.lineage import Trace, over_limit
from siblings.local.runtime.records import AttemptOutcome, FunctionConfig
from siblings.local.runtime.scheduler import CapacityExceeded
from siblings.local.runtime.wsgi import call_wsgi, respond, to_json
from siblings.local.server import WsgiApp

if TYPE_CHECKING:
    from siblings.local.runtime.service import LocalLambdaRuntime

ASYNC_PAYLOAD_LIMIT = 1_048_576
"""Largest asynchronous event Lambda accepts (1 MB; 256 KB before late 2025)."""
SYNC_PAYLOAD_LIMIT = 6_291_456
"""Largest synchronous request payload (6 MB)."""

_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<ref>[^/]+)/invocations/?$")


def parse_function_ref(ref: str, qualifier: str | None = None) -> tuple[str, str | None]:
    """Split what ``Invoke`` accepts as ``FunctionName`` into ``(name, qualifier)``.

    A name, ``name:qualifier``, a full ARN or a partial ARN, parsed by
    :func:`estimator.validation.parse_function`. A qualifier inside the reference wins over
    ``qualifier`` (the ``Qualifier`` parameter). Raises ``ValueError`` for anything else.
    """
    parsed = parse_function(ref)
    return parsed.name, parsed.qualifier or qualifier


class InvokeError(Exception):
    """An Invoke answered with an error document instead of running anything."""

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.extra = extra


class InvokeApi:
    """Serves ``Invoke`` for the functions registered with ``runtime``; see the module doc."""

    def __init__(self, runtime: LocalLambdaRuntime) -> None:
        self._runtime = runtime
        self._app: WsgiApp | None = None

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """Return ``app`` with Invokes of registered functions handled here."""
        self._app = app

        def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            match = _INVOKE_PATH.match(environ.get("PATH_INFO", ""))
            if not match or environ.get("REQUEST_METHOD") != "POST":
                return app(environ, start_response)
            body = read_body(environ)
            if identify(environ, body) != ("lambda", "Invoke"):
                return app(environ, start_response)
            query = parse_qs(environ.get("QUERY_STRING", ""))
            try:
                name, qualifier = parse_function_ref(
                    match.group("ref"), (query.get("Qualifier") or [None])[0]
                )
            except ValueError:  # not a function reference: moto answers as Lambda would
                return app(environ, start_response)
            if self._runtime.registration(name) is None:
                return app(environ, start_response)
            return self._serve(environ, start_response, name, qualifier, body)

        return middleware

    def describe(self, name: str, qualifier: str | None, auth: str) -> FunctionConfig:
        """Ask moto whether the function (and qualifier) exists, and for its configuration."""
        path = f"/2015-03-31/functions/{quote(name, safe='')}"
        base = self._inner_get(path, "", auth)
        configuration = base["Configuration"]
        reserved = (base.get("Concurrency") or {}).get("ReservedConcurrentExecutions")
        registration = self._runtime.note_moto_reserved(name, reserved)
        if qualifier:
            qualified = self._inner_get(path, f"Qualifier={quote(qualifier, safe='')}", auth)
            configuration = qualified["Configuration"]
        timeout = registration.timeout_seconds or self._runtime.default_timeout_seconds
        return FunctionConfig(
            unqualified_arn=_strip_qualifier(base["Configuration"]["FunctionArn"], name),
            version=str(configuration.get("Version", "$LATEST")),
            timeout_seconds=float(timeout or configuration.get("Timeout", 3)),
            memory_mb=int(registration.memory_mb or configuration.get("MemorySize", 128)),
        )

    def _serve(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        name: str,
        qualifier: str | None,
        body: bytes,
    ) -> Any:
        invocation_type = environ.get("HTTP_X_AMZ_INVOCATION_TYPE") or "RequestResponse"
        runtime = self._runtime
        try:
            config = self.describe(name, qualifier, environ.get("HTTP_AUTHORIZATION", ""))
            if invocation_type == "DryRun":
                runtime.count("dry_runs")
                return respond(start_response, 204, runtime.new_request_id(), b"")
            _check_payload(invocation_type, body)
            trace = Trace.parse(environ.get("HTTP_X_AMZN_TRACE_ID")).child(name)
            if invocation_type in {"Event", "RequestResponse"} and self._dropped(name, trace, environ):
                runtime.drop_recursive(name)
                if invocation_type == "Event":  # accepted, then dropped: the caller cannot tell
                    return respond(start_response, 202, runtime.new_request_id(), b"")
                raise InvokeError(
                    400,
                    "RecursiveInvocationException",
                    "Lambda has detected your function being invoked in a recursive loop with "
                    "other AWS resources and stopped your function's invocation.",
                )
            if invocation_type == "Event":
                invocation = runtime.accept(name, qualifier, config, body, trace=trace)
                return respond(start_response, 202, invocation.request_id, b"")
            if invocation_type == "RequestResponse":
                return self._serve_sync(start_response, name, qualifier, config, body, trace)
            raise InvokeError(
                400, "InvalidParameterValueException", f"Unsupported InvocationType {invocation_type}"
            )
        except InvokeError as exc:
            document = {"Type": "User", "message": str(exc), **exc.extra}
            return respond(
                start_response,
                exc.status,
                runtime.new_request_id(),
                json.dumps(document).encode(),
                {"x-amzn-ErrorType": exc.code},
            )

    def _serve_sync(
        self,
        start_response: Callable[..., Any],
        name: str,
        qualifier: str | None,
        config: FunctionConfig,
        body: bytes,
        trace: Trace,
    ) -> Any:
        try:
            invocation = self._runtime.run_sync(name, qualifier, config, body, trace)
        except CapacityExceeded as exc:
            raise InvokeError(
                429, "TooManyRequestsException", "Rate Exceeded.", Reason=exc.reason
            ) from None
        attempt = invocation.attempts[-1]
        headers = {"X-Amz-Executed-Version": config.version}
        if attempt.outcome is AttemptOutcome.SUCCEEDED:
            return respond(
                start_response, 200, invocation.request_id, to_json(attempt.result), headers
            )
        headers["X-Amz-Function-Error"] = "Unhandled"
        error = attempt.error or ""
        document = {
            "errorMessage": error,
            "errorType": (
                "TimeoutError" if attempt.outcome is AttemptOutcome.TIMED_OUT else error.split(":")[0]
            ),
            "requestId": invocation.request_id,
        }
        return respond(start_response, 200, invocation.request_id, to_json(document), headers)

    def _dropped(self, name: str, trace: Trace, environ: dict[str, Any]) -> bool:
        """Lambda's rule: past 16 invocations of ``name`` in one chain, at ``Terminate``."""
        if not over_limit(trace, name):
            return False
        path = f"/2024-08-31/functions/{quote(name, safe='')}/recursion-config"
        try:
            setting = self._inner_get(path, "", environ.get("HTTP_AUTHORIZATION", ""))
        except InvokeError:  # a server without the setting: Lambda's default
            return True
        return setting.get("RecursiveLoop", "Terminate") == "Terminate"

    def _inner_get(self, path: str, query: str, auth: str) -> dict[str, Any]:
        if self._app is None:
            raise RuntimeError("LocalLambdaRuntime.wrap was never applied to a server")
        status, headers, body = call_wsgi(self._app, "GET", path, query, auth)
        if status != 200:
            code = headers.get("x-amzn-errortype", "ResourceNotFoundException").split(":")[0]
            try:
                document = json.loads(body)
                message = document.get("message") or document.get("Message")
            except (ValueError, AttributeError):
                message = body.decode("utf-8", "replace")
            raise InvokeError(status, code, message or f"Function not found: {path}")
        result: dict[str, Any] = json.loads(body)
        return result


def _check_payload(invocation_type: str, body: bytes) -> None:
    """Raise the error Lambda answers for an event too large or not JSON."""
    limit = ASYNC_PAYLOAD_LIMIT if invocation_type == "Event" else SYNC_PAYLOAD_LIMIT
    if len(body) > limit:
        raise InvokeError(
            413,
            "RequestEntityTooLargeException",
            f"Request must be smaller than {limit} bytes for the Invoke operation",
        )
    if body:
        try:
            json.loads(body)
        except ValueError:
            raise InvokeError(
                400, "InvalidRequestContentException", "Could not parse request body into json"
            ) from None


def _strip_qualifier(arn: str, name: str) -> str:
    head, _, tail = arn.rpartition(":")
    return head if tail != name and head.endswith(f":function:{name}") else arn
