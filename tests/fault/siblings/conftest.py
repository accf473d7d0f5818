"""A moto server of its own with a failure-injecting layer, for the siblings fault tests.

The session server's middleware is fixed, so these tests start a second server (moto's state
is per process: it is reset before each test) whose WSGI stack is
``recorder -> FaultInjector -> moto``: every attempt, failed or not, is counted at the server.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from siblings.local.calls import CallRecorder, identify, read_body
from siblings.local.middleware import compose
from siblings.local.quota import cbor_encode
from siblings.local.quota.batches import (
    BATCH_ACTIONS,
    BatchEntry,
    all_unprocessed,
    batch_entries,
    forward_partial,
)
from siblings.local.server import LocalAwsServer, WsgiApp
from tests.integration.siblings.support import SiblingsEnv, build_env


@dataclass
class Fault:
    """Let ``after`` matching calls through, then answer ``times`` of them (``None``: all)
    with ``status`` and error ``code``."""

    service: str
    action: str | None
    status: int
    code: str
    times: int | None
    after: int = 0
    lose_reply: bool = False
    """Let the call reach the server, then answer the error instead of its reply (a reply
    lost on the way back, as after a timeout)."""
    key_prefix: str | None = None
    """Only DynamoDB calls touching a key (``pk``) that starts with this."""
    unprocessed: bool = False
    """A DynamoDB batch: answer 200 with the matching entries unprocessed (the others served)
    instead of an error, as DynamoDB does for an internal processing failure."""
    stall: threading.Event | None = None
    """Hold the call until this is set (10 s at most), then serve it: a service that stalls."""


class FaultInjector:
    """WSGI middleware that answers chosen calls with an AWS error in the service's protocol."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def fail(
        self,
        service: str,
        action: str | None,
        status: int,
        code: str,
        times: int | None = None,
        after: int = 0,
        lose_reply: bool = False,
        key_prefix: str | None = None,
    ) -> None:
        """Make matching calls fail (``action=None`` matches every action of ``service``;
        ``key_prefix`` narrows DynamoDB calls to those touching such a key)."""
        fault = Fault(service, action, status, code, times, after, lose_reply, key_prefix)
        with self._lock:
            self._faults.append(fault)

    def unprocess(self, action: str, key_prefix: str | None = None, times: int | None = None) -> None:
        """Answer ``times`` DynamoDB ``action`` batches (BatchGetItem / BatchWriteItem) that
        touch a key starting with ``key_prefix`` (any key: ``None``) with those entries
        unprocessed and the rest served."""
        fault = Fault("dynamodb", action, 200, "", times, key_prefix=key_prefix, unprocessed=True)
        with self._lock:
            self._faults.append(fault)

    def stall(self, service: str, action: str, release: threading.Event, times: int | None = None) -> None:
        """Hold ``times`` matching calls (``None``: all) until ``release`` is set, then serve
        them: the client sees no reply for as long as the test keeps ``release`` clear."""
        fault = Fault(service, action, 200, "", times, stall=release)
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Stop injecting."""
        with self._lock:
            self._faults.clear()

    def _match(self, call: tuple[str, str], keys: list[str]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.key_prefix is not None and not any(
                    key.startswith(fault.key_prefix) for key in keys
                ):
                    continue
                if fault.service == call[0] and fault.action in (None, call[1]):
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    if fault.times is None:
                        return fault
                    if fault.times > 0:
                        fault.times -= 1
                        return fault
        return None

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """The middleware."""

        def inject(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            body = read_body(environ)
            call = identify(environ, body)
            fault = self._match(call, _dynamodb_keys(call, body))
            if fault is None:
                return app(environ, start_response)
            if fault.stall is not None:
                fault.stall.wait(10)
                return app(environ, start_response)
            if fault.unprocessed:
                return _unprocessed(app, environ, start_response, call[1], body, fault)
            if fault.lose_reply:
                b"".join(app(environ, lambda *_: None))  # served, and the reply dropped
            headers, payload = _error(environ, fault)
            headers.append(("Content-Length", str(len(payload))))
            start_response(f"{fault.status} Error", headers)
            return [payload]

        return inject


def _dynamodb_keys(call: tuple[str, str], body: bytes) -> list[str]:
    """The ``pk`` values a DynamoDB call touches (none for other services)."""
    if call[0] != "dynamodb":
        return []
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        return []
    if call[1] in BATCH_ACTIONS:
        return [k for k in (e.key() for e in batch_entries(call[1], document)) if k is not None]
    key = BatchEntry("", document.get("Key") or document.get("Item") or {}).key()
    return [key] if key is not None else []


def _unprocessed(
    app: WsgiApp,
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    action: str,
    body: bytes,
    fault: Fault,
) -> Any:
    document = json.loads(body)
    prefix = fault.key_prefix or ""
    verdicts = [not (e.key() or "").startswith(prefix) for e in batch_entries(action, document)]
    if any(verdicts):
        partial = forward_partial(app, environ, start_response, action, document, verdicts)
        return app(environ, start_response) if partial is None else partial
    payload = json.dumps(all_unprocessed(action, document)).encode()
    start_response(
        "200 OK",
        [
            ("x-amzn-RequestId", str(uuid.uuid4())),
            ("Content-Type", "application/x-amz-json-1.0"),
            ("Content-Length", str(len(payload))),
        ],
    )
    return [payload]


def _error(environ: dict[str, Any], fault: Fault) -> tuple[list[tuple[str, str]], bytes]:
    request_id = str(uuid.uuid4())
    headers = [("x-amzn-RequestId", request_id)]
    message = f"injected {fault.code}"
    if fault.service == "s3":
        headers.append(("Content-Type", "application/xml"))
        body = (
            f'<?xml version="1.0"?><Error><Code>{fault.code}</Code><Message>{message}'
            f"</Message><RequestId>{request_id}</RequestId></Error>"
        ).encode()
        return headers, body
    if fault.service == "lambda":
        headers += [("x-amzn-ErrorType", fault.code), ("Content-Type", "application/json")]
        return headers, json.dumps({"Type": "Service", "message": message}).encode()
    if environ.get("HTTP_SMITHY_PROTOCOL") == "rpc-v2-cbor":
        headers += [
            ("smithy-protocol", "rpc-v2-cbor"),
            ("Content-Type", "application/cbor"),
            ("x-amzn-query-error", f"{fault.code};Receiver"),
        ]
        return headers, cbor_encode({"__type": fault.code, "message": message})
    headers.append(("Content-Type", environ.get("CONTENT_TYPE") or "application/x-amz-json-1.1"))
    return headers, json.dumps({"__type": fault.code, "message": message}).encode()


@dataclass
class FaultyAws:
    """The fault server, its recorder and injector."""

    server: LocalAwsServer
    recorder: CallRecorder
    faults: FaultInjector


@pytest.fixture(scope="module")
def faulty_server() -> Iterator[FaultyAws]:
    """One failure-injecting server per test module."""
    recorder = CallRecorder()
    faults = FaultInjector()
    server = LocalAwsServer(middleware=compose(recorder.wrap, faults.wrap)).start()
    try:
        yield FaultyAws(server, recorder, faults)
    finally:
        server.stop()


@pytest.fixture
def faulty(faulty_server: FaultyAws) -> Iterator[tuple[SiblingsEnv, FaultInjector]]:
    """A clean fault server with the siblings resources; no fault injected yet."""
    faulty_server.faults.clear()
    faulty_server.server.reset()
    faulty_server.recorder.listeners.clear()
    env = build_env(faulty_server.server.endpoint_url, faulty_server.recorder)
    yield env, faulty_server.faults
    faulty_server.faults.clear()
    faulty_server.recorder.listeners.clear()
