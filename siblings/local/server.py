"""An embedded moto server on 127.0.0.1: real HTTP, real boto3 wire protocol, no AWS account."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Any]
Middleware = Callable[[WsgiApp], WsgiApp]

# Fake but well-formed credentials: moto accepts any, and boto3 refuses to sign without some.
LOCAL_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}
LOCAL_REGION = "us-east-1"


def local_session() -> boto3.Session:
    """A boto3 session with the local credentials and Region (endpoints are per client); its
    clients forward the running local execution's trace header, as botocore does on Lambda."""
    from siblings.local.runtime.lineage import install

    return install(boto3.Session(
        aws_access_key_id=LOCAL_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=LOCAL_CREDENTIALS["aws_secret_access_key"],
        aws_session_token=LOCAL_CREDENTIALS["aws_session_token"],
        region_name=LOCAL_REGION,
    ))


class LocalAwsServer:
    """A moto server in a background thread, bound to loopback on a free port.

    ``middleware`` wraps moto's WSGI app (the quota layer, a call recorder, the local Lambda
    runtime's Invoke hook...). Use as a context manager or call :meth:`start` / :meth:`stop`.
    ``account_settings`` answers Lambda's ``GetAccountSettings`` (moto does not): its
    ``concurrency_limit`` (default ``concurrency_limit``, 1,000) is reset with the server.
    ``recursion`` answers ``Get/PutFunctionRecursionConfig`` (moto does not; ``Terminate``
    unless set, as on AWS).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        middleware: Middleware | None = None,
        concurrency_limit: int = 1000,
    ):
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise ValueError(f"LocalAwsServer binds loopback only, got host={host!r}")
        from siblings.local.account_settings import AccountSettings
        from siblings.local.recursion import RecursionConfigs

        self.host = host
        self.port = port
        self._middleware = middleware
        self.account_settings = AccountSettings(concurrency_limit)
        self.recursion = RecursionConfigs()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>`` once started."""
        if self._server is None:
            raise RuntimeError("LocalAwsServer is not started")
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> LocalAwsServer:
        """Start serving; returns self. Lambda runs without Docker (moto's simple backend)."""
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                """Per-request logs would drown the caller's output."""

        from siblings.local.calls import serialize_dynamodb

        app: WsgiApp = serialize_dynamodb(DomainDispatcherApplication(create_backend_app))
        app = self.account_settings.wrap(app)  # inside the middleware: recorded and quota'd
        app = self.recursion.wrap(app)
        if self._middleware is not None:
            app = self._middleware(app)
        self._server = make_server(
            self.host, self.port, app, threaded=True, request_handler=QuietHandler
        )
        # serve_forever polls for shutdown every poll_interval (0.5 s by default): each stop
        # would wait for that long.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="local-aws-server",
            daemon=True,
        )
        self._thread.start()
        self.configure({"lambda": {"use_docker": False}})
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def reset(self) -> None:
        """Forget every resource the server holds (moto's reset API)."""
        self._post("/moto-api/reset", b"")
        self.account_settings.reset()
        self.recursion.reset()
        self.configure({"lambda": {"use_docker": False}})

    def configure(self, settings: dict[str, Any]) -> None:
        """Apply moto settings (``/moto-api/config``)."""
        self._post("/moto-api/config", json.dumps(settings).encode())

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``boto3.client(...)`` that point at this server."""
        return {"endpoint_url": self.endpoint_url, "region_name": LOCAL_REGION, **LOCAL_CREDENTIALS}

    def _post(self, path: str, body: bytes) -> None:
        request = urllib.request.Request(self.endpoint_url + path, data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def __enter__(self) -> LocalAwsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
