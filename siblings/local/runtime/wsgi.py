"""WSGI from the runtime's side: answer a request as Lambda does, or call moto in process."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from typing import Any

from siblings.local.server import WsgiApp

_REASONS = {
    200: "OK",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
}


def to_json(value: Any) -> bytes:
    """``value`` as a JSON body (anything unknown as its ``str``)."""
    return json.dumps(value, default=str).encode()


def respond(
    start_response: Callable[..., Any],
    status: int,
    request_id: str,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> list[bytes]:
    """Start a Lambda-style JSON response (with ``x-amzn-RequestId``) and return its body."""
    all_headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "x-amzn-RequestId": request_id,
        **(headers or {}),
    }
    start_response(f"{status} {_REASONS.get(status, 'Error')}", list(all_headers.items()))
    return [body]


def call_wsgi(
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
