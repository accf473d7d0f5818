"""Faults in the two windows in which Lambda can start one chain step twice.

The library closes both (:mod:`siblings.runs`): each sibling claims its chain step when it
starts, and a second execution of the step gets :class:`~siblings.DuplicateSibling`. This
WSGI middleware opens them, at the server, with the library's code running unmodified:

* **a crash after the Invoke** (:attr:`FaultKind.CRASH_AFTER_INVOKE`): the parent's Invoke
  was answered and its process dies before the spawn record reaches the table. The
  BatchWriteItem that carries the record (a ``spawn#`` item in state ``invoked``) is not
  applied, and the local runtime is told that the execution's process exited
  (:meth:`~siblings.local.runtime.scheduler.Scheduler.crash`): the attempt fails, its sandbox
  is thrown away, and the event is retried after the retry delay with the same request id, as
  Lambda does. The retry finds no record of the spawn and may invoke the step again.
* **a lost Invoke reply** (:attr:`FaultKind.LOST_INVOKE_REPLY`): a sibling's Invoke reaches the
  runtime, which queues and runs its event, but the caller is answered ``502 Bad Gateway``
  instead of ``202`` (the reply lost between Lambda and the caller). The library's Invoker
  retries: a second Invoke of the same step.

Each chain step meets each fault at most once (its first spawn record, its first Invoke),
with probability ``rate``: at ``1.0`` every step is hit exactly once, and the retries that
follow get through. Decisions depend only on the seed, the fault and the step.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from siblings.keys import SPAWN_PREFIX
from siblings.local.calls import identify, read_body
from siblings.local.server import WsgiApp
from siblings.local.settings import FaultKind, check_rate
from siblings.metadata import metadata_of

if TYPE_CHECKING:
    from siblings.local.runtime.scheduler import Scheduler

WINDOW_KINDS = (FaultKind.CRASH_AFTER_INVOKE, FaultKind.LOST_INVOKE_REPLY)
"""The faults :class:`WindowFaults` injects."""

_BAD_GATEWAY = b"Bad Gateway"
# What a dead process's handler thread (which the runtime cannot stop) gets for the write it
# was making: a 4xx, which the SDK does not retry and which trips no circuit breaker.
_DEAD_WRITER = json.dumps(
    {"__type": "SimulatedProcessExit", "message": "the process that sent this request has exited"}
).encode()


class WindowFaults:
    """WSGI middleware opening the two windows; see the module docstring.

    ``runtime`` is the local Lambda runtime that runs the function (its middleware must sit
    inside this one); ``crash_rate`` and ``lost_reply_rate`` are the chances that a chain step
    meets each fault; ``seed`` makes the decisions repeatable.
    """

    def __init__(
        self,
        runtime: Scheduler,
        *,
        crash_rate: float = 0.0,
        lost_reply_rate: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.runtime = runtime
        self.seed = seed
        self._rates = {
            FaultKind.CRASH_AFTER_INVOKE: check_rate(crash_rate, "crash_rate"),
            FaultKind.LOST_INVOKE_REPLY: check_rate(lost_reply_rate, "lost_reply_rate"),
        }
        self._lock = threading.Lock()
        self._decided: dict[FaultKind, set[str]] = {kind: set() for kind in self._rates}
        self._dead_tokens: set[str] = set()  # claim tokens of spawn records whose writer died
        self._injected: Counter[FaultKind] = Counter()

    def injected(self, kind: FaultKind | None = None) -> int:
        """Faults injected so far, optionally of one kind."""
        with self._lock:
            return self._injected[kind] if kind is not None else sum(self._injected.values())

    def counts(self) -> dict[str, int]:
        """Faults injected so far, by kind (every kind listed)."""
        with self._lock:
            return {str(kind): self._injected[kind] for kind in WINDOW_KINDS}

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """Return ``app`` with the two windows opened in front of it."""

        # The two calls that open a window: the sibling's Invoke, and the write of its record.
        routes = {("lambda", "Invoke"): self._invoke, ("dynamodb", "BatchWriteItem"): self._batch_write}
        enabled = any(self._rates.values())

        def faulty(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            body = read_body(environ) if enabled else b""
            route = routes.get(identify(environ, body)) if enabled else None
            if route is None:
                return app(environ, start_response)
            return route(app, environ, start_response, body)

        return faulty

    def _strikes(self, kind: FaultKind, step: str) -> bool:
        """Whether ``kind`` hits chain ``step``: decided once per step, the first time it is asked."""
        with self._lock:
            if step in self._decided[kind]:
                return False
            self._decided[kind].add(step)
        return random.Random(f"{self.seed}:{kind}:{step}").random() < self._rates[kind]

    def _count(self, kind: FaultKind) -> None:
        with self._lock:
            self._injected[kind] += 1

    def _invoke(
        self, app: WsgiApp, environ: dict[str, Any], start_response: Callable[..., Any], body: bytes
    ) -> Any:
        """A sibling's async Invoke: on a hit, run it and answer 502 instead of its 202."""
        step = _invoked_step(environ, body)
        if step is None or not self._strikes(FaultKind.LOST_INVOKE_REPLY, step):
            return app(environ, start_response)
        reply: dict[str, Any] = {}

        def keep(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
            reply.update(status=status, headers=headers)

        content = _drain(app(environ, keep))
        if not str(reply.get("status", "")).startswith("202"):  # nothing ran: nothing to lose
            start_response(reply["status"], reply["headers"])
            return [content]
        self._count(FaultKind.LOST_INVOKE_REPLY)
        start_response(
            "502 Bad Gateway",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(_BAD_GATEWAY)))],
        )
        return [_BAD_GATEWAY]

    def _batch_write(
        self, app: WsgiApp, environ: dict[str, Any], start_response: Callable[..., Any], body: bytes
    ) -> Any:
        """A write carrying spawn records: on a hit, its writer dies before it lands."""
        for key, record in _spawn_records(body):
            token, owner = record.get("token"), record.get("owner")
            with self._lock:
                dead = token in self._dead_tokens
            if dead:  # the dead process's thread, or its SDK's retry of the same write
                return _answer_dead_writer(start_response)
            if not isinstance(owner, str) or not self._strikes(FaultKind.CRASH_AFTER_INVOKE, key):
                continue
            if not self.runtime.crash(owner, "injected crash between the Invoke and the spawn record"):
                continue  # not one of the runtime's running executions: leave it alone
            with self._lock:
                if isinstance(token, str):
                    self._dead_tokens.add(token)
                self._injected[FaultKind.CRASH_AFTER_INVOKE] += 1
            return _answer_dead_writer(start_response)
        return app(environ, start_response)


def _invoked_step(environ: dict[str, Any], body: bytes) -> str | None:
    """``<chain id>#<generation>`` of an async Invoke's sibling event; ``None`` for others."""
    if environ.get("HTTP_X_AMZ_INVOCATION_TYPE") != "Event":
        return None
    try:
        metadata = metadata_of(json.loads(body))
    except (ValueError, TypeError):  # not a sibling event: not this injector's business
        return None
    return None if metadata is None else f"{metadata.chain_id}#{metadata.generation}"


def _spawn_records(body: bytes) -> Iterable[tuple[str, dict[str, Any]]]:
    """``(step, record)`` of each spawn record in state ``invoked`` that a BatchWriteItem puts."""
    try:
        tables = json.loads(body).get("RequestItems") or {}
        requests = [request for writes in tables.values() for request in writes]
    except (ValueError, AttributeError, TypeError):
        return
    for request in requests:
        item = (request.get("PutRequest") or {}).get("Item") or {}
        key = (item.get("pk") or {}).get("S", "")
        if not key.startswith(SPAWN_PREFIX):
            continue
        try:
            record = json.loads((item.get("value") or {}).get("S", ""))
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("state") == "invoked":
            yield key.removeprefix(SPAWN_PREFIX), record


def _answer_dead_writer(start_response: Callable[..., Any]) -> list[bytes]:
    start_response(
        "400 Bad Request",
        [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(_DEAD_WRITER)))],
    )
    return [_DEAD_WRITER]


def _drain(chunks: Iterable[bytes]) -> bytes:
    """The whole body of a WSGI answer, with the iterable closed as WSGI requires."""
    try:
        return b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
