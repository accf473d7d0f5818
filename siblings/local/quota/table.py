"""AWS's default API quotas: which calls each limits, how fast, and AWS's answer over it."""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

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
_SCHEDULER = "docs.aws.amazon.com/scheduler/latest/UserGuide/scheduler-quotas.html"

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
    "scheduler.GetSchedule": Quota(
        "scheduler", _only("GetSchedule"), _NONE, 1_000, "account", "request",
        "ThrottlingException", 429, "",
        f"{_SCHEDULER}: GetSchedule request rate 1,000 TPS in us-east-1 (250 in smaller "
        "Regions; older revisions of the page said 50 in every Region)",
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


def check_scale(value: float) -> None:
    """Raise ``ValueError`` unless ``value`` is a usable ``quota_scale`` (positive, finite)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"quota_scale must be a positive number, got {value!r}")
    if math.isinf(value):
        raise ValueError("quota_scale must be finite")

