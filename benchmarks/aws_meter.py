"""Server-side meters in AWS time, and an injected DynamoDB outage.

:class:`Meter` is WSGI middleware counting, per second of virtual AWS time, every call by
``(service, action)`` and the DynamoDB capacity each item (hash key value) receives: read
request units and write request units, with the quota layer's own accounting
(:func:`siblings.local.quota.costs.charges` over the partition quota). :class:`Outage` answers
every DynamoDB item call with DynamoDB's throttling error during a window of AWS time, before
the request reaches the quota layer (so it is counted apart from quota throttles).
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from siblings.local.calls import Call, identify, read_body
from siblings.local.quota.costs import charges
from siblings.local.quota.request import QuotaRequest
from siblings.local.quota.table import DEFAULT_QUOTAS
from siblings.local.quota.throttle_errors import throttle_answer
from siblings.local.server import WsgiApp

_PARTITION = {"partition": DEFAULT_QUOTAS["dynamodb.partition"]}
_ITEM_ACTIONS = DEFAULT_QUOTAS["dynamodb.partition"].actions or frozenset()


class Meter:
    """Counts calls per AWS second and DynamoDB units per item per AWS second; thread-safe."""

    def __init__(self, clock: Callable[[], float], hash_key: str = "pk") -> None:
        self._clock = clock
        self._hash_key = hash_key
        self._lock = threading.Lock()
        self.calls: Counter[tuple[Call, int]] = Counter()
        self.reads: dict[Any, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        self.writes: dict[Any, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        self.read_units = 0.0
        self.write_units = 0.0
        self.metrics_requested: Counter[str] = Counter()
        """CloudWatch metrics asked for, by action (what CloudWatch bills: GetMetricData per
        query in the request, GetMetricStatistics per request)."""

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self.calls.clear()
            self.reads.clear()
            self.writes.clear()
            self.read_units = self.write_units = 0.0
            self.metrics_requested.clear()

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """``app`` behind the meter."""

        def metered(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            body = read_body(environ)
            call = identify(environ, body)
            if call[0]:
                self._record(QuotaRequest(environ, body, call))
            return app(environ, start_response)

        return metered

    def _record(self, request: QuotaRequest) -> None:
        second = int(self._clock())
        units: list[tuple[Any, float, str]] = []
        if request.service == "dynamodb" and request.action in _ITEM_ACTIONS:
            table = str(request.json().get("TableName", ""))
            keys = {table: self._hash_key}
            for name in (request.json().get("RequestItems") or {}):
                keys[str(name)] = self._hash_key
            for (_q, _account, scope), _quota, cost, rw in charges(_PARTITION, request, keys):
                units.append((scope, cost, rw))
        metrics = _metrics_requested(request)
        with self._lock:
            self.calls[(request.call, second)] += 1
            if metrics:
                self.metrics_requested[request.action] += metrics
            for scope, cost, rw in units:
                if rw == "Write":  # partition capacity counts a write unit as three
                    self.writes[scope][second] += cost / 3
                    self.write_units += cost / 3
                else:
                    self.reads[scope][second] += cost
                    self.read_units += cost

    def per_second(self, action: str, between: tuple[float, float] | None = None) -> Counter[int]:
        """Calls of ``action`` per AWS second (optionally only seconds in ``[a, b)``)."""
        out: Counter[int] = Counter()
        with self._lock:
            for ((_service, name), second), n in self.calls.items():
                if name == action and (between is None or between[0] <= second < between[1]):
                    out[second] += n
        return out

    def calls_between(self, services: set[str], between: tuple[int, int], skip: str = "Invoke") -> int:
        """Calls of ``services`` (but action ``skip``) in AWS seconds ``[a, b)``."""
        with self._lock:
            return sum(n for ((service, action), second), n in self.calls.items()
                       if service in services and action != skip and between[0] <= second < between[1])

    def per_minute(self, action: str, start: float, minutes: int) -> list[int]:
        """Calls of ``action`` in each AWS minute from ``start`` (``minutes`` of them)."""
        out = [0] * minutes
        for second, n in self.per_second(action).items():
            index = int((second - start) // 60)
            if 0 <= index < minutes:
                out[index] += n
        return out

    def hottest_item(self) -> dict[str, Any]:
        """The highest read and write rate any one item received in any AWS second, and every
        item that reached it (a tie names them all)."""
        with self._lock:
            read = _hottest(self.reads)
            write = _hottest(self.writes)
        return {
            "max_item_reads_per_s": read[0], "hottest_read_item": read[1],
            "max_item_writes_per_s": write[0], "hottest_write_item": write[1],
        }


def _hottest(units: dict[Any, dict[int, float]]) -> tuple[float, str | None]:
    peaks = {scope: max(per_second.values()) for scope, per_second in units.items() if per_second}
    if not peaks:
        return 0.0, None
    top = max(peaks.values())
    names = sorted(_name(scope) for scope, peak in peaks.items() if peak == top)
    return top, ", ".join(names)


def _name(scope: Any) -> str:
    _table, value = scope
    try:  # the hash key as the request spelled it: {"S": "kill#fn"}
        decoded = json.loads(value)
    except (TypeError, ValueError):
        decoded = value
    key = decoded.get("S", value) if isinstance(decoded, dict) else value
    return str(key)


def _metrics_requested(request: QuotaRequest) -> int:
    """Metrics one CloudWatch request asks for: the queries of a GetMetricData (its body is JSON
    or smithy-rpc-v2-cbor, whichever protocol the client chose; CBOR is read with botocore's own
    reader), 1 for GetMetricStatistics."""
    if request.service != "monitoring":
        return 0
    if request.action == "GetMetricStatistics":
        return 1
    if request.action != "GetMetricData":
        return 0
    document: Any = request.json()
    if not document:
        import io

        from botocore.parsers import RpcV2CBORParser

        try:
            document = RpcV2CBORParser().parse_data_item(io.BytesIO(request.body))
        except Exception:  # the query protocol: count the form's queries
            text = request.body.decode(errors="replace")
            return len(set(re.findall(r"MetricDataQueries\.member\.(\d+)\.Id=", text)))
    return len(document.get("MetricDataQueries", [])) if isinstance(document, dict) else 0


class Outage:
    """Throttles every DynamoDB item call during ``[start, end)`` of AWS time."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.window: tuple[float, float] | None = None
        self.injected = 0
        self._lock = threading.Lock()

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """``app`` behind the outage."""

        def maybe_down(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            window = self.window
            if window is None or not window[0] <= self._clock() < window[1]:
                return app(environ, start_response)
            body = read_body(environ)
            call = identify(environ, body)
            if call[0] != "dynamodb" or call[1] not in _ITEM_ACTIONS:
                return app(environ, start_response)
            with self._lock:
                self.injected += 1
            request = QuotaRequest(environ, body, call)
            status, headers, payload = throttle_answer(request, DEFAULT_QUOTAS["dynamodb.partition"], "Read")
            start_response(status, headers)
            return [payload]

        return maybe_down
