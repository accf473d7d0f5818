"""Lambda's ``GetAccountSettings`` for the embedded server, which moto (5.2.5) does not answer.

:class:`AccountSettings` is WSGI middleware answering ``GET /2016-08-19/account-settings/`` with
AWS's response shape: ``AccountLimit`` (code size limits, ``ConcurrentExecutions``,
``UnreservedConcurrentExecutions``) and ``AccountUsage`` (``TotalCodeSize``, ``FunctionCount``).
The concurrency limit is configurable (AWS's default quota, 1,000, unless set); the unreserved
part and the usage are asked of moto itself (in-process ``ListFunctions`` and ``GetFunction``
requests to the wrapped app), so reserved concurrency put on the server
(``PutFunctionConcurrency``) is subtracted as AWS does.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from siblings.local.calls import credential_scope, identify, read_body
from siblings.local.server import WsgiApp

DEFAULT_CONCURRENCY_LIMIT = 1000
"""AWS's default concurrency quota per account and Region."""
# AWS's documented code size quotas (bytes): 75 GB total, 250 MB unzipped, 50 MB zipped upload.
_TOTAL_CODE_SIZE = 80_530_636_800
_CODE_SIZE_UNZIPPED = 262_144_000
_CODE_SIZE_ZIPPED = 52_428_800
_PATH = re.compile(r"^/2016-08-19/account-settings/?$")
# moto routes by the SigV4 scope's service and accepts any signature.
_AUTH = (
    "AWS4-HMAC-SHA256 Credential=testing/20240101/{region}/lambda/aws4_request, "
    "SignedHeaders=host, Signature=0"
)


class AccountSettings:
    """Answers ``GetAccountSettings``; set :attr:`concurrency_limit` to model another quota.

    Use ``LocalAwsServer`` (which wraps moto with one of these as ``server.account_settings``),
    or ``wrap`` any moto WSGI app. Thread-safe; :attr:`calls` counts the answers given.
    """

    def __init__(self, concurrency_limit: int = DEFAULT_CONCURRENCY_LIMIT) -> None:
        self.default_limit = _check_limit(concurrency_limit)
        self._limit = self.default_limit
        self._lock = threading.Lock()
        self.calls = 0

    @property
    def concurrency_limit(self) -> int:
        """The account's ``ConcurrentExecutions`` limit the server reports."""
        return self._limit

    @concurrency_limit.setter
    def concurrency_limit(self, value: int) -> None:
        self._limit = _check_limit(value)

    def reset(self) -> None:
        """Back to the limit given at construction, calls zeroed (with the server's reset)."""
        with self._lock:
            self._limit = self.default_limit
            self.calls = 0

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """``app`` with ``GetAccountSettings`` answered here; every other request passes on."""

        def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("REQUEST_METHOD") != "GET" or not _PATH.match(environ.get("PATH_INFO", "")):
                return app(environ, start_response)
            if identify(environ, read_body(environ))[0] != "lambda":
                return app(environ, start_response)
            with self._lock:
                self.calls += 1
            _, region = credential_scope(environ)
            body = json.dumps(self.settings(MotoLambda(app, region or "us-east-1"))).encode()
            start_response(
                "200 OK",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("x-amzn-RequestId", str(uuid.uuid4())),
                ],
            )
            return [body]

        return middleware

    def settings(self, moto: MotoLambda) -> dict[str, Any]:
        """The response document, with the functions ``moto`` holds."""
        functions = moto.functions()
        reserved = sum(moto.reserved_concurrency(fn["FunctionName"]) for fn in functions)
        limit = self._limit
        return {
            "AccountLimit": {
                "TotalCodeSize": _TOTAL_CODE_SIZE,
                "CodeSizeUnzipped": _CODE_SIZE_UNZIPPED,
                "CodeSizeZipped": _CODE_SIZE_ZIPPED,
                "ConcurrentExecutions": limit,
                "UnreservedConcurrentExecutions": max(0, limit - reserved),
            },
            "AccountUsage": {
                "TotalCodeSize": sum(int(fn.get("CodeSize") or 0) for fn in functions),
                "FunctionCount": len(functions),
            },
        }


def _check_limit(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"concurrency_limit must be an int >= 0, got {value!r}")
    return value


class MotoLambda:
    """In-process Lambda requests to the wrapped moto app (not seen by outer middleware)."""

    def __init__(self, app: WsgiApp, region: str) -> None:
        from werkzeug.test import Client

        self._client = Client(app)
        self._headers = {"Authorization": _AUTH.format(region=region)}

    def _get(self, path: str) -> dict[str, Any]:
        response = self._client.get(path, headers=self._headers)
        answer: dict[str, Any] = json.loads(response.get_data() or b"{}")
        return answer

    def functions(self) -> list[dict[str, Any]]:
        """Every function's configuration (moto's ``ListFunctions`` in one page)."""
        listed: list[dict[str, Any]] = self._get("/2015-03-31/functions/").get("Functions", [])
        return listed

    def exists(self, name: str) -> bool:
        """Whether moto holds the function ``name``."""
        return "Configuration" in self._get(f"/2015-03-31/functions/{quote(name)}")

    def reserved_concurrency(self, name: str) -> int:
        """The function's reserved concurrency, 0 when not set."""
        concurrency = self._get(f"/2015-03-31/functions/{quote(name)}").get("Concurrency") or {}
        return int(concurrency.get("ReservedConcurrentExecutions") or 0)
