"""What one call costs: the buckets it draws from and how many tokens from each.

A bucket is one quota within one account and Region, narrowed by the quota's scope: each
action, a DynamoDB table, a DynamoDB partition (one hash key value) or an S3 prefix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

from siblings.local.quota.request import QuotaRequest
from siblings.local.quota.table import Quota

BucketKey = tuple[str, tuple[str, str], Any]
"""``(quota name, (access key, region), scope key)``."""
Charge = tuple[BucketKey, Quota, float, str]
"""``(bucket, its quota, tokens, "Read" | "Write" | "")``."""


def charges(
    quotas: Mapping[str, Quota], request: QuotaRequest, hash_keys: Mapping[str, str]
) -> Iterator[Charge]:
    """Yield a :data:`Charge` for each bucket of ``quotas`` that ``request`` draws from.

    ``hash_keys`` names each known DynamoDB table's hash key attribute (for partitions).
    """
    for name, quota in quotas.items():
        if quota.service != request.service:
            continue
        if quota.actions is None:
            if request.action in quota.excluded:
                continue
        elif request.action not in quota.actions:
            continue
        for key, cost, rw in _scoped(quota, request, hash_keys):
            yield (name, request.account, key), quota, cost, rw


def _scoped(
    quota: Quota, request: QuotaRequest, hash_keys: Mapping[str, str]
) -> Iterator[tuple[Any, float, str]]:
    if quota.scope == "account":
        yield None, 1.0, ""
    elif quota.scope == "action":
        yield request.action, 1.0, ""
    elif quota.scope == "prefix":
        yield _s3_prefix(request.environ.get("PATH_INFO", "")), 1.0, ""
    else:
        for table, hash_value, read, write in _dynamodb_items(request, hash_keys):
            if quota.scope == "table":
                cost = read if quota.unit == "read" else write
                if cost:
                    yield table, cost, "Write" if write else "Read"
            elif hash_value is not None:  # partition: unknown key schema, table only
                yield (table, hash_value), read + 3 * write, "Write" if write else "Read"


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
    request: QuotaRequest, hash_keys: Mapping[str, str]
) -> Iterator[tuple[str, str | None, float, float]]:
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
