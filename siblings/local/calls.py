"""Name the AWS call behind a raw HTTP request, and count calls at the server side."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from siblings.local.server import WsgiApp

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_CREDENTIAL_KEY_REGION = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/")
_SDK_ATTEMPT = re.compile(r"attempt=(\d+)")
_CBOR_OPERATION = re.compile(r"^/service/[^/]+/operation/([A-Za-z0-9]+)$")
# Lambda's REST paths we care about; anything else is reported by method and path shape.
_LAMBDA_ROUTES = [
    (re.compile(r"^/2015-03-31/functions/[^/]+/invocations$"), "POST", "Invoke"),
    (re.compile(r"^/2015-03-31/functions/?$"), "POST", "CreateFunction"),
    (re.compile(r"^/2015-03-31/functions/?$"), "GET", "ListFunctions"),
    (re.compile(r"^/2015-03-31/functions/[^/]+/?$"), "GET", "GetFunction"),
    (re.compile(r"^/2015-03-31/functions/[^/]+/?$"), "DELETE", "DeleteFunction"),
    (re.compile(r"^/2016-08-19/account-settings/?$"), "GET", "GetAccountSettings"),
    (re.compile(r"^/2019-09-30/functions/[^/]+/concurrency/?$"), "GET", "GetFunctionConcurrency"),
    (re.compile(r"^/2017-10-31/functions/[^/]+/concurrency/?$"), "PUT", "PutFunctionConcurrency"),
    (re.compile(r"^/2024-08-31/functions/[^/]+/recursion-config/?$"), "GET", "GetFunctionRecursionConfig"),
    (re.compile(r"^/2024-08-31/functions/[^/]+/recursion-config/?$"), "PUT", "PutFunctionRecursionConfig"),
]
# EventBridge Scheduler (REST-JSON): the operation is in the method and path.
_SCHEDULER_ROUTES = [
    (re.compile(r"^/schedules/[^/]+/?$"), "GET", "GetSchedule"),
    (re.compile(r"^/schedules/[^/]+/?$"), "POST", "CreateSchedule"),
    (re.compile(r"^/schedules/[^/]+/?$"), "PUT", "UpdateSchedule"),
    (re.compile(r"^/schedules/[^/]+/?$"), "DELETE", "DeleteSchedule"),
    (re.compile(r"^/schedules/?$"), "GET", "ListSchedules"),
    (re.compile(r"^/schedule-groups/[^/]+/?$"), "POST", "CreateScheduleGroup"),
]
_S3_ACTIONS = {"GET": "GetObject", "PUT": "PutObject", "DELETE": "DeleteObject", "HEAD": "HeadObject"}

Call = tuple[str, str]
"""``(service, action)``, e.g. ``("monitoring", "GetMetricData")``."""


def identify(environ: dict[str, Any], body: bytes) -> Call:
    """Return ``(service, action)`` for a WSGI request; service is the SigV4 signing name.

    Services: ``monitoring`` (CloudWatch), ``events``, ``lambda``, ``dynamodb``, ``s3``...
    Requests that are not signed AWS calls (moto's own API) give ``("", path)``.
    """
    auth = environ.get("HTTP_AUTHORIZATION", "")
    match = _CREDENTIAL_SCOPE.search(auth)
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    if not match:
        return "", path
    service = match.group(1)
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:  # JSON protocols: "DynamoDB_20120810.GetItem", "AWSEvents.DescribeRule"
        return service, target.rsplit(".", 1)[-1]
    cbor = _CBOR_OPERATION.match(path)
    if cbor:  # smithy-rpc-v2-cbor (CloudWatch in current botocore)
        return service, cbor.group(1)
    if service in ("lambda", "scheduler"):
        routes = _LAMBDA_ROUTES if service == "lambda" else _SCHEDULER_ROUTES
        for pattern, verb, action in routes:
            if verb == method and pattern.match(path):
                return service, action
        return service, f"{method} {path}"
    if service == "s3":
        return service, _S3_ACTIONS.get(method, method)
    form = parse_qs(body.decode("utf-8", "replace")) if body else {}
    query = parse_qs(environ.get("QUERY_STRING", ""))
    action = (form.get("Action") or query.get("Action") or [f"{method} {path}"])[0]
    return service, action


def credential_scope(environ: dict[str, Any]) -> tuple[str, str]:
    """Return ``(access key id, region)`` of a SigV4-signed request; ``("", "")`` if unsigned.

    Quotas are per account and Region; the access key stands for the account here.
    """
    match = _CREDENTIAL_KEY_REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
    return (match.group(1), match.group(2)) if match else ("", "")


def attempt(environ: dict[str, Any]) -> int:
    """The SDK's attempt number of a request: 1 for a first try, 2 for the first retry...

    botocore sends ``amz-sdk-request: attempt=N; max=M`` on every request, so the server can
    tell retries from fresh calls. Requests without the header count as first tries.
    """
    match = _SDK_ATTEMPT.search(environ.get("HTTP_AMZ_SDK_REQUEST", ""))
    return int(match.group(1)) if match else 1


def serialize_dynamodb(app: WsgiApp) -> WsgiApp:
    """Run DynamoDB requests one at a time, as DynamoDB applies each item write atomically.

    moto checks a ConditionExpression and writes the item in two steps without a lock, so
    two concurrent conditional writes can both succeed; real DynamoDB never lets them.
    """
    lock = threading.Lock()

    def serialized(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB_"):
            return app(environ, start_response)
        with lock:
            # Materialise the body inside the lock: the write happens while it is produced.
            return list(app(environ, start_response))

    return serialized


def read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back so the wrapped app can read it too."""
    import io

    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


class CallRecorder:
    """WSGI middleware counting every AWS call by ``(service, action)``; thread-safe.

    Use as ``LocalAwsServer(middleware=recorder.wrap)``. ``listeners`` get each call as it
    arrives (used to hook Invoke in the local Lambda runtime).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[Call] = Counter()
        self.listeners: list[Callable[[Call, dict[str, Any], bytes], None]] = []

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """Return ``app`` wrapped so that every request is counted."""

        def recorded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            body = read_body(environ)
            call = identify(environ, body)
            if call[0]:
                with self._lock:
                    self._counts[call] += 1
                for listener in self.listeners:
                    listener(call, environ, body)
            return app(environ, start_response)

        return recorded

    def count(self, service: str | None = None, action: str | None = None) -> int:
        """Calls recorded, optionally only of one service and/or action."""
        with self._lock:
            return sum(
                n
                for (svc, act), n in self._counts.items()
                if (service is None or svc == service) and (action is None or act == action)
            )

    def counts(self) -> dict[Call, int]:
        """A snapshot of all counts."""
        with self._lock:
            return dict(self._counts)

    def actions(self) -> set[Call]:
        """Every ``(service, action)`` seen."""
        with self._lock:
            return set(self._counts)

    def reset(self) -> None:
        """Zero the counts."""
        with self._lock:
            self._counts.clear()
