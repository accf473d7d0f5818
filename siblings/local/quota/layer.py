"""The quota layer: WSGI middleware in front of moto that throttles over-quota calls."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from siblings.local.calls import Call, attempt, identify, read_body
from siblings.local.quota.batches import BATCH_ACTIONS, batch_entries, forward_partial, regroup
from siblings.local.quota.buckets import TokenBuckets
from siblings.local.quota.costs import charges
from siblings.local.quota.request import QuotaRequest
from siblings.local.quota.stats import RESERVED_PREFIX, CallStats
from siblings.local.quota.table import DEFAULT_QUOTAS, Quota, check_scale
from siblings.local.quota.throttle_errors import throttle_answer
from siblings.local.server import WsgiApp


class QuotaLayer:
    """WSGI middleware enforcing :data:`DEFAULT_QUOTAS` (or ``quotas``); thread-safe.

    Use as ``LocalAwsServer(middleware=layer.wrap)``. ``quota_scale`` multiplies every rate;
    a bucket holds ``burst_seconds`` of its rate (at least one call) and starts full.
    ``clock`` is injectable for tests. Calls that are not SigV4-signed (moto's own API) pass
    through uncounted.
    """

    def __init__(
        self,
        quota_scale: float = 1.0,
        *,
        quotas: Mapping[str, Quota] | None = None,
        burst_seconds: float = 1.0,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_scale(quota_scale)
        if burst_seconds <= 0:
            raise ValueError(f"burst_seconds must be positive, got {burst_seconds!r}")
        self._quotas = dict(DEFAULT_QUOTAS if quotas is None else quotas)
        self._scale = float(quota_scale)
        self._burst = float(burst_seconds)
        self._enabled = enabled
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets = TokenBuckets()
        self._stats: dict[Call, CallStats] = {}
        # DynamoDB hash key attribute per table, learnt from CreateTable calls passing through.
        self._hash_keys: dict[str, str] = {}

    # --- settings ---
    @property
    def quota_scale(self) -> float:
        """The factor applied to every quota."""
        return self._scale

    @quota_scale.setter
    def quota_scale(self, value: float) -> None:
        check_scale(value)
        with self._lock:
            self._scale = float(value)
            self._buckets.clear()

    @property
    def enabled(self) -> bool:
        """``False`` counts calls but throttles none (e.g. while a benchmark sets up)."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)

    def quotas(self) -> dict[str, Quota]:
        """The quota table in use."""
        return dict(self._quotas)

    def rate(self, name: str) -> float:
        """The effective (scaled) rate of quota ``name``."""
        return self._quotas[name].tps * self._scale

    # --- counts ---
    def stats(self) -> dict[Call, CallStats]:
        """A snapshot of the counts by ``(service, action)``."""
        with self._lock:
            return {call: CallStats(**asdict(s)) for call, s in self._stats.items()}

    def count(self, service: str | None = None, action: str | None = None) -> int:
        """Calls received, optionally of one service and/or action."""
        return self._total("calls", service, action)

    def throttled(self, service: str | None = None, action: str | None = None) -> int:
        """Calls answered with a throttling error."""
        return self._total("throttled", service, action)

    def unprocessed(self, service: str | None = None, action: str | None = None) -> int:
        """Batch items answered as unprocessed (``UnprocessedItems``/``UnprocessedKeys``)."""
        return self._total("unprocessed", service, action)

    def retries(self, service: str | None = None, action: str | None = None) -> int:
        """Calls that were SDK retries."""
        return self._total("retries", service, action)

    def reset(self) -> None:
        """Zero the counts and refill every bucket."""
        with self._lock:
            self._stats.clear()
            self._buckets.clear()

    def snapshot(self) -> dict[str, Any]:
        """Settings and counts as the JSON document served on ``GET /_quota/stats``."""
        stats = self.stats()
        return {
            "quota_scale": self._scale,
            "enabled": self._enabled,
            "burst_seconds": self._burst,
            "calls": [
                {"service": svc, "action": act, **asdict(s)}
                for (svc, act), s in sorted(stats.items())
            ],
        }

    def _total(self, field: str, service: str | None, action: str | None) -> int:
        with self._lock:
            return sum(
                getattr(s, field)
                for (svc, act), s in self._stats.items()
                if (service is None or svc == service) and (action is None or act == action)
            )

    # --- WSGI ---
    def wrap(self, app: WsgiApp) -> WsgiApp:
        """Return ``app`` behind the quota layer."""

        def quota_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            path = environ.get("PATH_INFO", "")
            if path.startswith(RESERVED_PREFIX):
                return self._serve_own_api(environ, start_response)
            body = read_body(environ)
            call = identify(environ, body)
            if not call[0]:
                return app(environ, start_response)
            request = QuotaRequest(environ, body, call)
            if call[0] == "dynamodb" and call[1] in BATCH_ACTIONS and self._enabled:
                return self._serve_batch(app, request, start_response)
            denied = self._admit(request)
            if denied is None:
                if call == ("dynamodb", "CreateTable"):
                    self._learn_hash_key(request)
                return app(environ, start_response)
            status, headers, payload = throttle_answer(request, *denied)
            start_response(status, headers)
            return [payload]

        return quota_app

    def _admit(self, request: QuotaRequest) -> tuple[Quota, str] | None:
        """Count the call and take its tokens; return the quota it broke (with R/W) if any."""
        owed = list(charges(self._quotas, request, self._hash_keys)) if self._enabled else []
        retry = attempt(request.environ) > 1
        now = self._clock()
        with self._lock:
            stats = self._stats.setdefault(request.call, CallStats())
            stats.calls += 1
            stats.retries += retry
            denied = self._buckets.take(owed, now, self._scale, self._burst)
            if denied is not None:
                stats.throttled += 1
        return denied

    def _serve_batch(
        self, app: WsgiApp, request: QuotaRequest, start_response: Callable[..., Any]
    ) -> Any:
        """A batch is admitted item by item, as DynamoDB serves each item from its partition:
        items over their partition's rate come back unprocessed (see :mod:`.batches`), and
        only a batch of which nothing could be served is a throttling error."""
        verdicts, denied = self._admit_items(request)
        if denied is not None and not any(verdicts):
            status, headers, payload = throttle_answer(request, *denied)
            start_response(status, headers)
            return [payload]
        partial = forward_partial(
            app, request.environ, start_response, request.action, request.json(), verdicts
        )
        return app(request.environ, start_response) if partial is None else partial

    def _admit_items(self, request: QuotaRequest) -> tuple[list[bool], tuple[Quota, str] | None]:
        """Count the call, take each item's tokens on its own; one flag per item, and the
        first quota an item broke."""
        body = request.json()
        items = batch_entries(request.action, body)
        retry = attempt(request.environ) > 1
        now = self._clock()
        verdicts: list[bool] = []
        first: tuple[Quota, str] | None = None
        with self._lock:
            stats = self._stats.setdefault(request.call, CallStats())
            stats.calls += 1
            stats.retries += retry
            for item in items:
                single = json.dumps({**body, "RequestItems": regroup(request.action, body, [item])})
                one = QuotaRequest(request.environ, single.encode(), request.call)
                owed = list(charges(self._quotas, one, self._hash_keys))
                denied = self._buckets.take(owed, now, self._scale, self._burst)
                verdicts.append(denied is None)
                first = first or denied
            if items and not any(verdicts):
                stats.throttled += 1
            else:
                stats.unprocessed += verdicts.count(False)
        return verdicts, first

    def _learn_hash_key(self, request: QuotaRequest) -> None:
        body = request.json()
        for element in body.get("KeySchema") or []:
            if isinstance(element, dict) and element.get("KeyType") == "HASH":
                with self._lock:
                    self._hash_keys[str(body.get("TableName"))] = str(element.get("AttributeName"))

    def _serve_own_api(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        status = "200 OK"
        if path == "/_quota/stats" and method == "GET":
            document: dict[str, Any] = self.snapshot()
        elif path == "/_quota/reset" and method == "POST":
            self.reset()
            document = self.snapshot()
        elif path == "/_quota/config" and method == "POST":
            try:
                self._configure(json.loads(read_body(environ) or b"{}"))
                document = self.snapshot()
            except (ValueError, TypeError) as exc:
                status, document = "400 Bad Request", {"error": str(exc)}
        else:
            status, document = "404 Not Found", {"error": f"no {method} {path}"}
        payload = json.dumps(document).encode()
        start_response(
            status,
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    def _configure(self, settings: dict[str, Any]) -> None:
        if "quota_scale" in settings:
            self.quota_scale = float(settings["quota_scale"])
        if "enabled" in settings:
            self.enabled = bool(settings["enabled"])
