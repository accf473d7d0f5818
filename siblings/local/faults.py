"""Inject AWS's own failures at random: throttled calls at the server, crashes in handlers.

The two windows in which one chain step can be invoked twice have their own injector,
:class:`siblings.local.windows.WindowFaults`.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from siblings.local.calls import Call, identify, read_body
from siblings.local.quota.table import DEFAULT_QUOTAS, Quota
from siblings.local.quota.throttle_errors import throttle_response
from siblings.local.server import WsgiApp
from siblings.local.settings import check_rate

DEFAULT_TARGETS: Mapping[Call, Quota] = {
    ("lambda", "Invoke"): DEFAULT_QUOTAS["lambda.Invoke"],
    ("monitoring", "GetMetricData"): DEFAULT_QUOTAS["cloudwatch.GetMetricData"],
}
"""Calls throttled by default, each answered like its quota: Invoke ``429
TooManyRequestsException``, GetMetricData ``400 Throttling`` on its own wire protocol."""


class InjectedCrash(RuntimeError):
    """Raised inside a handler by :class:`CrashInjector` (a simulated process crash)."""


class CrashPoint(StrEnum):
    """Where in a handler attempt :class:`CrashInjector` strikes."""

    MID_WORK = "mid_work"
    """At one of its first work steps, after some records were committed."""
    AFTER_RETURN = "after_return"
    """After the handler returned, so after it spawned its sibling."""


class ThrottleInjector:
    """WSGI middleware answering a fraction ``rate`` of the target calls with a throttle.

    The answer is the quota layer's (same status, error code and protocol as AWS), so SDK
    retries and the library's own backoff run as they would against a throttled account.
    ``seed`` makes the sequence of decisions repeatable (their order still follows threads).
    ``rates`` gives single target calls a rate of their own instead of ``rate``.
    """

    def __init__(
        self,
        rate: float,
        *,
        seed: int | None = None,
        targets: Mapping[Call, Quota] | None = None,
        rates: Mapping[Call, float] | None = None,
    ) -> None:
        self.rate = check_rate(rate)
        self._targets = dict(DEFAULT_TARGETS if targets is None else targets)
        self._rates = {call: check_rate((rates or {}).get(call, rate)) for call in self._targets}
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._injected: Counter[Call] = Counter()

    def injected(self, service: str | None = None, action: str | None = None) -> int:
        """Throttles injected so far, optionally of one service and/or action."""
        with self._lock:
            return sum(
                n
                for (svc, act), n in self._injected.items()
                if (service is None or svc == service) and (action is None or act == action)
            )

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """Return ``app`` with a fraction of the target calls throttled before reaching it."""

        def faulty(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if not any(self._rates.values()):
                return app(environ, start_response)
            body = read_body(environ)
            call = identify(environ, body)
            quota = self._targets.get(call)
            if quota is None:
                return app(environ, start_response)
            with self._lock:
                hit = self._random.random() < self._rates[call]
                if hit:
                    self._injected[call] += 1
            if not hit:
                return app(environ, start_response)
            status, headers, payload = throttle_response(environ, body, call, quota)
            start_response(status, headers)
            return [payload]

        return faulty


class CrashInjector:
    """Decides, per handler attempt, whether and where that attempt crashes.

    With probability ``rate`` an attempt is doomed: it raises :class:`InjectedCrash` either
    at one of its first ``max_steps`` work steps (mid-work, after some records were committed)
    or after the handler returned (after it spawned its sibling: the retry must not spawn a
    second one). Decisions depend only on ``seed``, the request id and the attempt number.
    """

    def __init__(self, rate: float, *, seed: int | None = None, max_steps: int = 20) -> None:
        self.rate = check_rate(rate)
        self.seed = seed
        self.max_steps = max_steps
        self._lock = threading.Lock()
        self._attempts: Counter[str] = Counter()
        self._local = threading.local()
        self.crashes: Counter[CrashPoint] = Counter()

    def wrap(self, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """``handler`` with crashes injected; call :meth:`step` from its work loop."""

        def crashing(event: Any, context: Any) -> Any:
            request_id = str(getattr(context, "aws_request_id", ""))
            with self._lock:
                self._attempts[request_id] += 1
                number = self._attempts[request_id]
            plan = self._plan(request_id, number)
            self._local.crash_at = plan
            self._local.steps = 0
            try:
                result = handler(event, context)
            finally:
                self._local.crash_at = None
            if plan == -1:
                self._count(CrashPoint.AFTER_RETURN)
                raise InjectedCrash("injected crash after the handler's work")
            return result

        return crashing

    def step(self) -> None:
        """Called once per unit of work by the handler; raises when this attempt is doomed."""
        crash_at = getattr(self._local, "crash_at", None)
        if crash_at is None or crash_at < 0:
            return
        self._local.steps += 1
        if self._local.steps > crash_at:
            self._local.crash_at = None
            self._count(CrashPoint.MID_WORK)
            raise InjectedCrash(f"injected crash before work step {self._local.steps}")

    def _plan(self, request_id: str, attempt: int) -> int | None:
        """``None``: no crash; ``-1``: after return; ``n``: before step ``n + 1``."""
        rng = random.Random(f"{self.seed}:{request_id}:{attempt}")
        if rng.random() >= self.rate:
            return None
        return -1 if rng.random() < 0.5 else rng.randrange(self.max_steps)

    def _count(self, where: CrashPoint) -> None:
        with self._lock:
            self.crashes[where] += 1
