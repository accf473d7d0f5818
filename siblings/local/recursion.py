"""Lambda's ``Get/PutFunctionRecursionConfig`` for the embedded server, which moto (5.2.5) lacks.

:class:`RecursionConfigs` is WSGI middleware answering
``GET``/``PUT /2024-08-31/functions/{FunctionName}/recursion-config`` with AWS's response shape
(``{"RecursiveLoop": "Allow" | "Terminate"}``). As on AWS, a function's setting is
``Terminate`` until someone puts ``Allow``; an unknown function gets moto's own
``404 ResourceNotFoundException`` (asked with an in-process ``GetFunction``), an invalid value
``400 InvalidParameterValueException``. The local runtime reads the setting (:meth:`get`) to
apply Lambda's rule: at ``Terminate``, a chain of invocations carrying one lineage is dropped
after 16 (:mod:`siblings.local.runtime.lineage`).

AWS: https://docs.aws.amazon.com/lambda/latest/api/API_GetFunctionRecursionConfig.html,
https://docs.aws.amazon.com/lambda/latest/api/API_PutFunctionRecursionConfig.html.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

from estimator.validation import parse_function
from siblings.local.account_settings import MotoLambda
from siblings.local.calls import credential_scope, identify, read_body
from siblings.local.server import WsgiApp

DEFAULT_RECURSIVE_LOOP = "Terminate"
"""Lambda's default for every function."""
VALUES = frozenset({"Allow", "Terminate"})
_PATH = re.compile(r"^/2024-08-31/functions/(?P<name>[^/]+)/recursion-config/?$")


class RecursionConfigs:
    """Every function's ``RecursiveLoop`` on the server; thread-safe, cleared with the server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings: dict[str, str] = {}
        self.calls = 0

    def get(self, function_name: str) -> str:
        """The function's setting (``Terminate`` unless ``Allow`` was put)."""
        with self._lock:
            return self._settings.get(function_name, DEFAULT_RECURSIVE_LOOP)

    def put(self, function_name: str, value: str) -> None:
        """Set the function's setting, as ``PutFunctionRecursionConfig`` does."""
        if value not in VALUES:
            raise ValueError(f"RecursiveLoop must be Allow or Terminate, got {value!r}")
        with self._lock:
            self._settings[function_name] = value

    def reset(self) -> None:
        """Forget every setting (with the server's reset)."""
        with self._lock:
            self._settings.clear()
            self.calls = 0

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """``app`` with the two operations answered here; every other request passes on."""

        def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            match = _PATH.match(environ.get("PATH_INFO", ""))
            method = environ.get("REQUEST_METHOD")
            if not match or method not in {"GET", "PUT"}:
                return app(environ, start_response)
            body = read_body(environ)
            if identify(environ, body)[0] != "lambda":
                return app(environ, start_response)
            with self._lock:
                self.calls += 1
            _, region = credential_scope(environ)
            status, document = self._answer(app, region or "us-east-1", method, match, body)
            return _respond(start_response, status, document)

        return middleware

    def _answer(
        self, app: WsgiApp, region: str, method: str, match: re.Match[str], body: bytes
    ) -> tuple[str, dict[str, Any]]:
        try:
            name = parse_function(unquote(match.group("name"))).name
        except ValueError as exc:
            return "400 Bad Request", _error("InvalidParameterValueException", str(exc))
        if not MotoLambda(app, region).exists(name):
            arn = f"arn:aws:lambda:{region}:123456789012:function:{name}"
            return "404 Not Found", _error("ResourceNotFoundException", f"Function not found: {arn}")
        if method == "PUT":
            try:
                value = json.loads(body or b"{}").get("RecursiveLoop")
                self.put(name, value)
            except (ValueError, AttributeError):
                message = "RecursiveLoop must be one of Allow, Terminate"
                return "400 Bad Request", _error("InvalidParameterValueException", message)
        return "200 OK", {"RecursiveLoop": self.get(name)}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"__type": code, "Type": "User", "message": message}


def _respond(start_response: Callable[..., Any], status: str, document: dict[str, Any]) -> list[bytes]:
    body = json.dumps(document).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    ]
    if not status.startswith("200"):
        headers.append(("x-amzn-ErrorType", document["__type"]))
    start_response(status, headers)
    return [body]
