"""AWS's default API quotas in front of the local moto server, answered the way AWS answers.

moto never throttles. :class:`QuotaLayer` is a WSGI middleware that keeps one token bucket per
account, Region and quota (see :data:`DEFAULT_QUOTAS`) and, over quota, replies with the
service's own throttling error on its own wire protocol, so that botocore's retry logic runs
exactly as it would against AWS. It counts every signed call by ``(service, action)``: calls,
throttled responses and retries (botocore's ``amz-sdk-request: attempt=N`` header).

``quota_scale`` multiplies every quota. A benchmark run at scale ``s`` with its request rates
also multiplied by ``s`` behaves like an unscaled run whose clock is ``1/s`` times slower: one
benchmark second stands for ``s`` AWS seconds, so calls per decision and the throttled share
are unchanged while a small machine can reach saturation.

Stats and settings are also served over HTTP on reserved paths, so a server running in another
process (``python -m siblings.local.quota``, or :class:`QuotaServerProcess`) can be read:

- ``GET /_quota/stats``: counts as JSON;
- ``POST /_quota/reset``: zero the counts and refill every bucket;
- ``POST /_quota/config`` with ``{"quota_scale": 0.1, "enabled": true}``: change settings.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

from siblings.local.calls import Call, attempt, credential_scope, identify, read_body
from siblings.local.server import WsgiApp

Scope = Literal["account", "action", "table", "partition", "prefix"]
"""What one bucket covers, always within one account and Region: every matching call
(``account``), each action on its own (``action``), a DynamoDB table, a DynamoDB partition
(hash key value), or an S3 prefix."""
Unit = Literal["request", "read", "write", "capacity"]
"""What a call costs: 1 per request, DynamoDB read or write request units, or partition
capacity where one write unit costs three read units (3,000 RRU or 1,000 WRU per partition)."""


class Quota(NamedTuple):
    """One row of the quota table: which calls it limits, how fast, and AWS's answer over it."""

    service: str
    """SigV4 signing name: ``monitoring``, ``events``, ``lambda``, ``dynamodb``, ``s3``."""
    actions: frozenset[str] | None
    """Actions limited; ``None`` means every action of the service but ``excluded``."""
    excluded: frozenset[str]
    """Actions left out when ``actions`` is ``None``."""
    tps: float
    """Sustained rate (units per second) before ``quota_scale``."""
    scope: Scope
    unit: Unit
    error: str
    """The throttling error code the service returns."""
    status: int
    """Its HTTP status."""
    reason: str
    """Lambda ``Reason`` / DynamoDB ``ThrottlingReasons`` value; ``{rw}`` is Read or Write."""
    source: str
    """Where the value comes from (and what is approximated)."""


_CW = "docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html"
_EB = "docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html"
_LAMBDA = "docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html#api-requests"
_DDB = "docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html"
_DDB_PARTITION = "repost.aws/knowledge-center/on-demand-table-throttling-dynamodb"
_DDB_CONTROL = "docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-control-plane.html"
_S3 = "docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html"

_DDB_READS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"})
_DDB_WRITES = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)
_LAMBDA_OWN_QUOTA = frozenset(
    {"Invoke", "InvokeAsync", "InvokeWithResponseStream", "GetFunction", "GetPolicy"}
)
_NONE: frozenset[str] = frozenset()


def _only(*actions: str) -> frozenset[str]:
    return frozenset(actions)


# fmt: off
DEFAULT_QUOTAS: dict[str, Quota] = {
    # name: Quota(service, actions, excluded, tps, scope, unit, error, status, reason, source)
    "cloudwatch.GetMetricData": Quota(
        "monitoring", _only("GetMetricData"), _NONE, 50, "account", "request",
        "Throttling", 400, "", f"{_CW}: GetMetricData 50 TPS per account and Region",
    ),
    "cloudwatch.GetMetricStatistics": Quota(
        "monitoring", _only("GetMetricStatistics"), _NONE, 400, "account", "request",
        "Throttling", 400, "", f"{_CW}: GetMetricStatistics 400 TPS",
    ),
    "cloudwatch.ListMetrics": Quota(
        "monitoring", _only("ListMetrics"), _NONE, 25, "account", "request",
        "Throttling", 400, "", f"{_CW}: ListMetrics 25 TPS",
    ),
    "cloudwatch.PutMetricData": Quota(
        "monitoring", _only("PutMetricData"), _NONE, 500, "account", "request",
        "Throttling", 400, "", f"{_CW}: PutMetricData 500 TPS",
    ),
    "events.PutEvents": Quota(
        "events", _only("PutEvents"), _NONE, 10_000, "account", "request",
        "ThrottlingException", 400, "", f"{_EB}: PutEvents 10,000 TPS in us-east-1",
    ),
    "events.other": Quota(
        "events", None, _only("PutEvents"), 50, "action", "request",
        "ThrottlingException", 400, "",
        f"{_EB}: every API but PutEvents 50 TPS (ListRules, ListTargetsByRule, "
        "ListRuleNamesByTarget, DescribeRule...), each API on its own",
    ),
    "lambda.Invoke": Quota(
        "lambda", _only("Invoke", "InvokeAsync", "InvokeWithResponseStream"), _NONE, 10_000,
        "account", "request", "TooManyRequestsException", 429, "CallerRateLimitExceeded",
        f"{_LAMBDA}: invocation requests 10 x the concurrency quota (default 1,000)",
    ),
    "lambda.GetFunction": Quota(
        "lambda", _only("GetFunction"), _NONE, 100, "account", "request",
        "TooManyRequestsException", 429, "CallerRateLimitExceeded",
        f"{_LAMBDA}: GetFunction 100 requests per second",
    ),
    "lambda.GetPolicy": Quota(
        "lambda", _only("GetPolicy"), _NONE, 15, "account", "request",
        "TooManyRequestsException", 429, "CallerRateLimitExceeded",
        f"{_LAMBDA}: GetPolicy 15 requests per second",
    ),
    "lambda.control-plane": Quota(
        "lambda", None, _LAMBDA_OWN_QUOTA, 15, "account", "request",
        "TooManyRequestsException", 429, "CallerRateLimitExceeded",
        f"{_LAMBDA}: every other control-plane API 15 requests per second, shared",
    ),
    "dynamodb.partition": Quota(
        "dynamodb", _DDB_READS | _DDB_WRITES, _NONE, 3_000, "partition", "capacity",
        "ProvisionedThroughputExceededException", 400, "Table{rw}KeyRangeThroughputExceeded",
        f"{_DDB_PARTITION}: a partition serves 3,000 RRU or 1,000 WRU per second (on-demand "
        "too); a partition is approximated by one hash key value, item size by request size",
    ),
    "dynamodb.table-read": Quota(
        "dynamodb", _DDB_READS, _NONE, 40_000, "table", "read",
        "RequestLimitExceeded", 400, "Table{rw}AccountLimitExceeded",
        f"{_DDB}: on-demand table 40,000 read request units per second (the doubling of a "
        "new table's previous peak is not modelled)",
    ),
    "dynamodb.table-write": Quota(
        "dynamodb", _DDB_WRITES, _NONE, 40_000, "table", "write",
        "RequestLimitExceeded", 400, "Table{rw}AccountLimitExceeded",
        f"{_DDB}: on-demand table 40,000 write request units per second",
    ),
    "dynamodb.control-plane": Quota(
        "dynamodb", None, _DDB_READS | _DDB_WRITES, 2_500, "account", "request",
        "ThrottlingException", 400, "", f"{_DDB_CONTROL}: control plane 2,500 requests/s",
    ),
    "s3.prefix-write": Quota(
        "s3", _only("PutObject", "DeleteObject", "POST"), _NONE, 3_500, "prefix", "request",
        "SlowDown", 503, "", f"{_S3}: 3,500 PUT/COPY/POST/DELETE per second per prefix",
    ),
    "s3.prefix-read": Quota(
        "s3", _only("GetObject", "HeadObject"), _NONE, 5_500, "prefix", "request",
        "SlowDown", 503, "", f"{_S3}: 5,500 GET/HEAD per second per prefix",
    ),
}
# fmt: on
"""AWS's default quotas (us-east-1, checked 2026) and their sources: the one table to edit."""

RESERVED_PREFIX = "/_quota/"
"""Paths under this prefix are the layer's own API, never passed to moto."""

# moto's default account; only used to build ARNs in DynamoDB's ThrottlingReasons.
_ACCOUNT_ID = "123456789012"


@dataclass
class CallStats:
    """Server-side counts of one ``(service, action)``."""

    calls: int = 0
    """Requests received, retries and throttled ones included."""
    throttled: int = 0
    """Requests answered with a throttling error by this layer."""
    retries: int = 0
    """Requests that were SDK retries (attempt 2 or later)."""


class _Bucket:
    __slots__ = ("tokens", "stamp")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class _Request:
    """What the rules need to know about one call; DynamoDB/S3 details parsed on demand."""

    def __init__(self, environ: dict[str, Any], body: bytes, call: Call) -> None:
        self.environ = environ
        self.body = body
        self.service, self.action = call
        self.account = credential_scope(environ)
        self._json: dict[str, Any] | None = None

    def json(self) -> dict[str, Any]:
        if self._json is None:
            try:
                loaded = json.loads(self.body or b"{}")
            except ValueError:
                loaded = {}
            self._json = loaded if isinstance(loaded, dict) else {}
        return self._json


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
        _check_scale(quota_scale)
        if burst_seconds <= 0:
            raise ValueError(f"burst_seconds must be positive, got {burst_seconds!r}")
        self._quotas = dict(DEFAULT_QUOTAS if quotas is None else quotas)
        self._scale = float(quota_scale)
        self._burst = float(burst_seconds)
        self._enabled = enabled
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, tuple[str, str], Any], _Bucket] = {}
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
        _check_scale(value)
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
            request = _Request(environ, body, call)
            denied = self._admit(request)
            if denied is None:
                if call == ("dynamodb", "CreateTable"):
                    self._learn_hash_key(request)
                return app(environ, start_response)
            status, headers, payload = _throttle_response(request, *denied)
            start_response(status, headers)
            return [payload]

        return quota_app

    def _admit(self, request: _Request) -> tuple[Quota, str] | None:
        """Count the call and take its tokens; return the quota it broke (with R/W) if any."""
        charges = [] if not self._enabled else list(self._charges(request))
        retry = attempt(request.environ) > 1
        call = (request.service, request.action)
        now = self._clock()
        with self._lock:
            stats = self._stats.get(call)
            if stats is None:
                stats = self._stats[call] = CallStats()
            stats.calls += 1
            stats.retries += retry
            buckets = []
            for key, quota, cost, _rw in charges:
                rate = quota.tps * self._scale
                capacity = max(1.0, rate * self._burst)
                bucket = self._buckets.get(key)
                if bucket is None:
                    bucket = self._buckets[key] = _Bucket(capacity, now)
                else:
                    bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * rate)
                    bucket.stamp = now
                # A call costing more than a whole bucket could never pass; let a full one pay.
                if bucket.tokens < min(cost, capacity):
                    stats.throttled += 1
                    return quota, _rw
                buckets.append((bucket, cost))
            for bucket, cost in buckets:
                bucket.tokens -= cost
        return None

    def _charges(
        self, request: _Request
    ) -> Iterable[tuple[tuple[str, tuple[str, str], Any], Quota, float, str]]:
        """Yield ``(bucket key, quota, cost, "Read"|"Write")`` for each quota the call counts in."""
        for name, quota in self._quotas.items():
            if quota.service != request.service:
                continue
            if quota.actions is None:
                if request.action in quota.excluded:
                    continue
            elif request.action not in quota.actions:
                continue
            for key, cost, rw in self._scoped(quota, request):
                yield (name, request.account, key), quota, cost, rw

    def _scoped(self, quota: Quota, request: _Request) -> Iterable[tuple[Any, float, str]]:
        if quota.scope == "account":
            yield None, 1.0, ""
        elif quota.scope == "action":
            yield request.action, 1.0, ""
        elif quota.scope == "prefix":
            yield _s3_prefix(request.environ.get("PATH_INFO", "")), 1.0, ""
        else:
            for table, hash_value, read, write in _dynamodb_items(request, self._hash_keys):
                if quota.scope == "table":
                    cost = read if quota.unit == "read" else write
                    if cost:
                        yield table, cost, "Write" if write else "Read"
                elif hash_value is not None:  # partition: unknown key schema, table only
                    yield (table, hash_value), read + 3 * write, "Write" if write else "Read"

    def _learn_hash_key(self, request: _Request) -> None:
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
                settings = json.loads(read_body(environ) or b"{}")
                if "quota_scale" in settings:
                    self.quota_scale = float(settings["quota_scale"])
                if "enabled" in settings:
                    self.enabled = bool(settings["enabled"])
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


def _check_scale(value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"quota_scale must be a positive number, got {value!r}")
    if math.isinf(value):
        raise ValueError("quota_scale must be finite")


def _s3_prefix(path: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of a path-style S3 request; the prefix is the key's folder."""
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key.rpartition("/")[0]


def _read_units(consistent: bool) -> float:
    # Items are assumed to fit in one 4 KB read unit; eventually consistent reads cost half.
    return 1.0 if consistent else 0.5


def _write_units(body_size: int) -> float:
    return float(max(1, math.ceil(body_size / 1024)))


def _dynamodb_items(
    request: _Request, hash_keys: Mapping[str, str]
) -> Iterable[tuple[str, str | None, float, float]]:
    """Yield ``(table, hash key value or None, read units, write units)`` per item touched."""
    body = request.json()
    action = request.action
    table = str(body.get("TableName", ""))

    def hash_value(table_name: str, key: Any) -> str | None:
        attribute = hash_keys.get(table_name)
        if attribute is None or not isinstance(key, dict) or attribute not in key:
            return None
        return json.dumps(key[attribute], sort_keys=True)

    consistent = bool(body.get("ConsistentRead"))
    if action == "GetItem":
        yield table, hash_value(table, body.get("Key")), _read_units(consistent), 0.0
    elif action in {"Query", "Scan"}:
        yield table, None, _read_units(consistent), 0.0
    elif action in {"PutItem", "UpdateItem", "DeleteItem"}:
        key = body.get("Item") if action == "PutItem" else body.get("Key")
        yield table, hash_value(table, key), 0.0, _write_units(len(request.body))
    elif action == "BatchGetItem":
        for name, spec in (body.get("RequestItems") or {}).items():
            for key in (spec or {}).get("Keys") or []:
                units = _read_units(bool((spec or {}).get("ConsistentRead")))
                yield name, hash_value(name, key), units, 0.0
    elif action == "BatchWriteItem":
        for name, writes in (body.get("RequestItems") or {}).items():
            for write in writes or []:
                spec = (write or {}).get("PutRequest") or (write or {}).get("DeleteRequest") or {}
                key = spec.get("Item") or spec.get("Key")
                yield name, hash_value(name, key), 0.0, _write_units(len(json.dumps(key)))
    elif action in {"TransactGetItems", "TransactWriteItems"}:
        # Transactions cost two units per item.
        for entry in body.get("TransactItems") or []:
            for op, spec in (entry or {}).items():
                name = str((spec or {}).get("TableName", ""))
                key = (spec or {}).get("Key") or (spec or {}).get("Item")
                if op == "Get":
                    yield name, hash_value(name, key), 2.0, 0.0
                else:
                    yield name, hash_value(name, key), 0.0, 2 * _write_units(len(json.dumps(key)))


# --- AWS's throttling answers, one per wire protocol ---


def throttle_response(
    environ: dict[str, Any], body: bytes, call: Call, quota: Quota
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and body with which AWS throttles ``call`` under ``quota``, in the
    request's own wire protocol (for fault injectors that throttle on purpose)."""
    return _throttle_response(_Request(environ, body, call), quota, "")


def _throttle_response(
    request: _Request, quota: Quota, rw: str
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and body of the throttling error for ``request``'s protocol."""
    environ = request.environ
    request_id = str(uuid.uuid4())
    status = f"{quota.status} {_REASON_PHRASES.get(quota.status, 'Error')}"
    headers = [("x-amzn-RequestId", request_id)]
    message = "Rate exceeded"
    if request.service == "s3":
        # REST-XML: the code is in the body; HEAD responses have none (botocore then uses 503).
        headers = [("x-amz-request-id", request_id), ("Content-Type", "application/xml")]
        body = (
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
            "<Message>Please reduce your request rate.</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
        ).encode()
        if environ.get("REQUEST_METHOD") == "HEAD":
            body = b""
    elif request.service == "lambda":
        # REST-JSON: botocore reads the code from x-amzn-ErrorType; Lambda throttles with 429.
        headers += [
            ("x-amzn-ErrorType", quota.error),
            ("Content-Type", "application/json"),
            ("Retry-After", "1"),
        ]
        body = json.dumps({"Type": "User", "message": message, "Reason": quota.reason}).encode()
    elif environ.get("HTTP_SMITHY_PROTOCOL") == "rpc-v2-cbor":
        # smithy-rpc-v2-cbor (CloudWatch): ``__type`` names the error shape; CloudWatch is
        # awsQueryCompatible, so x-amzn-query-error carries the query-protocol code
        # ("Throttling") that botocore reports as Error.Code.
        headers += [
            ("smithy-protocol", "rpc-v2-cbor"),
            ("Content-Type", "application/cbor"),
            ("x-amzn-query-error", f"{quota.error};Sender"),
        ]
        body = cbor_encode(
            {"__type": "com.amazon.coral.availability#ThrottlingException", "message": message}
        )
    elif environ.get("HTTP_X_AMZ_TARGET"):
        content_type = environ.get("CONTENT_TYPE") or "application/x-amz-json-1.1"
        headers.append(("Content-Type", content_type))
        if request.service == "monitoring":
            headers.append(("x-amzn-query-error", f"{quota.error};Sender"))
            document: dict[str, Any] = {
                "__type": "com.amazon.coral.availability#ThrottlingException",
                "message": message,
            }
        elif request.service == "dynamodb":
            document = {
                "__type": f"com.amazonaws.dynamodb.v20120810#{quota.error}",
                "message": _DYNAMODB_MESSAGES.get(quota.error, message),
            }
            if quota.reason:
                table = str(request.json().get("TableName", ""))
                arn = f"arn:aws:dynamodb:{request.account[1]}:{_ACCOUNT_ID}:table/{table}"
                document["ThrottlingReasons"] = [
                    {"reason": quota.reason.format(rw=rw or "Read"), "resource": arn}
                ]
        else:
            document = {"__type": quota.error, "message": message}
        body = json.dumps(document).encode()
    else:  # AWS query protocol (XML)
        headers.append(("Content-Type", "text/xml"))
        body = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{quota.error}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
    headers.append(("Content-Length", str(len(body))))
    return status, headers, body


_REASON_PHRASES = {400: "Bad Request", 429: "Too Many Requests", 503: "Slow Down"}
_DYNAMODB_MESSAGES = {
    "ProvisionedThroughputExceededException": "The level of configured provisioned throughput "
    "for the table was exceeded. Consider increasing your provisioning level with the "
    "UpdateTable API.",
    "RequestLimitExceeded": "Throughput exceeds the current throughput quota for your account.",
}


def cbor_encode(value: Any) -> bytes:
    """Encode ``value`` (dict, list, str, bytes, int, float, bool, None) as CBOR (RFC 8949)."""
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, int):
        return _cbor_head(0, value) if value >= 0 else _cbor_head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, bytes):
        return _cbor_head(2, len(value)) + value
    if isinstance(value, str):
        encoded = value.encode()
        return _cbor_head(3, len(encoded)) + encoded
    if isinstance(value, list | tuple):
        return _cbor_head(4, len(value)) + b"".join(cbor_encode(v) for v in value)
    if isinstance(value, dict):
        return _cbor_head(5, len(value)) + b"".join(
            cbor_encode(k) + cbor_encode(v) for k, v in value.items()
        )
    raise TypeError(f"cannot CBOR-encode {type(value).__name__}")


def _cbor_head(major: int, length: int) -> bytes:
    if length < 24:
        return bytes([major << 5 | length])
    for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if length < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | info]) + struct.pack(fmt, length)
    raise ValueError("CBOR length too large")


# --- reading a layer over HTTP, and running it in its own process ---


class QuotaStatsClient:
    """Reads and drives a quota layer over HTTP (its server may live in another process)."""

    def __init__(self, endpoint_url: str, timeout: float = 10.0) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self.timeout = timeout

    def snapshot(self) -> dict[str, Any]:
        """The JSON document of ``GET /_quota/stats``."""
        return self._request("GET", "stats")

    def stats(self) -> dict[Call, CallStats]:
        """Counts by ``(service, action)``."""
        return {
            (row["service"], row["action"]): CallStats(
                calls=row["calls"], throttled=row["throttled"], retries=row["retries"]
            )
            for row in self.snapshot()["calls"]
        }

    def reset(self) -> None:
        """Zero the counts and refill every bucket."""
        self._request("POST", "reset", {})

    def configure(self, *, quota_scale: float | None = None, enabled: bool | None = None) -> None:
        """Change the scale and/or switch throttling on or off."""
        settings: dict[str, Any] = {}
        if quota_scale is not None:
            settings["quota_scale"] = quota_scale
        if enabled is not None:
            settings["enabled"] = enabled
        self._request("POST", "config", settings)

    def _request(self, method: str, name: str, body: Any = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.endpoint_url}{RESERVED_PREFIX}{name}", data=data, method=method
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            document: dict[str, Any] = json.loads(response.read())
            return document


class QuotaServerProcess:
    """The moto server behind a quota layer in a child process (``python -m`` this module).

    A fleet of hundreds of client threads and the server in one process contend for the GIL;
    a separate process keeps the server's latency honest. Loopback only. The child exits when
    :meth:`stop` closes its stdin (also if this process dies).
    """

    def __init__(
        self,
        quota_scale: float = 1.0,
        *,
        burst_seconds: float = 1.0,
        enabled: bool = True,
        python: str = sys.executable,
        startup_timeout: float = 60.0,
    ) -> None:
        _check_scale(quota_scale)
        self._args = [
            python, "-m", "siblings.local.quota", "--port", "0",
            "--quota-scale", repr(float(quota_scale)), "--burst-seconds", repr(burst_seconds),
            "--exit-on-stdin-eof",
        ]
        if not enabled:
            self._args.append("--disabled")
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[str] | None = None
        self._endpoint_url: str | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>`` once started."""
        if self._endpoint_url is None:
            raise RuntimeError("QuotaServerProcess is not started")
        return self._endpoint_url

    @property
    def pid(self) -> int:
        """The child's process id."""
        if self._process is None:
            raise RuntimeError("QuotaServerProcess is not started")
        return self._process.pid

    @property
    def client(self) -> QuotaStatsClient:
        """A stats client for the child's layer."""
        return QuotaStatsClient(self.endpoint_url)

    def start(self) -> QuotaServerProcess:
        """Spawn the child and wait until it prints its endpoint."""
        self._process = subprocess.Popen(
            self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line: list[str] = []
        reader = threading.Thread(
            target=lambda: line.append(self._process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(self._startup_timeout)
        if not line or not line[0].startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"quota server did not start: {line[0] if line else 'timeout'!r}")
        self._endpoint_url = line[0].strip()
        return self

    def stop(self) -> None:
        """Close the child's stdin and wait for it to exit (terminate it if it hangs)."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin:
                process.stdin.close()
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait(timeout=10)
        finally:
            if process.stdout:
                process.stdout.close()

    def __enter__(self) -> QuotaServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the moto server behind a quota layer; print its endpoint URL on stdout."""
    from siblings.local.server import LocalAwsServer

    parser = argparse.ArgumentParser(prog="python -m siblings.local.quota", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--quota-scale", type=float, default=1.0, help="multiplies every quota")
    parser.add_argument("--burst-seconds", type=float, default=1.0,
                        help="seconds of rate a full bucket holds (default %(default)s)")
    parser.add_argument("--disabled", action="store_true", help="count calls, throttle none")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="stop when stdin closes (used by QuotaServerProcess)")
    args = parser.parse_args(argv)

    layer = QuotaLayer(args.quota_scale, burst_seconds=args.burst_seconds, enabled=not args.disabled)
    server = LocalAwsServer(host=args.host, port=args.port, middleware=layer.wrap).start()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(server.endpoint_url, flush=True)
    if args.exit_on_stdin_eof:

        def wait_for_eof() -> None:
            sys.stdin.read()
            stop.set()

        threading.Thread(target=wait_for_eof, daemon=True).start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
