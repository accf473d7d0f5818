"""DynamoDB's partial batches: BatchGetItem and BatchWriteItem that leave some items unprocessed.

moto processes every item of a batch. DynamoDB does not when a partition is over its rate: it
processes what it can and returns the rest, which the caller must send again (AWS's API
reference, docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html:
"If any requested operations fail because the table's provisioned throughput is exceeded or
an internal processing failure occurs, the failed operations are returned in the
UnprocessedItems response parameter ... If none of the items can be processed due to
insufficient provisioned throughput on all of the tables in the request, then BatchWriteItem
returns a ProvisionedThroughputExceededException"; API_BatchGetItem.html says the same of
``UnprocessedKeys``, and both pages ask for exponential backoff between the retries).

:func:`batch_entries` lists a batch's items, :func:`forward_partial` sends the kept ones to
the wrapped app and answers with the others as ``UnprocessedItems``/``UnprocessedKeys`` in
DynamoDB's own response shape. The quota layer uses them per partition; fault injectors use
them to leave chosen keys unprocessed.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from siblings.local.server import WsgiApp

BATCH_ACTIONS = frozenset({"BatchGetItem", "BatchWriteItem"})
"""The DynamoDB actions that can answer with part of their items unprocessed."""


class BatchEntry(NamedTuple):
    """One item of a batch: its table and the entry itself (a key
    of BatchGetItem, a ``PutRequest``/``DeleteRequest`` of BatchWriteItem)."""

    table: str
    entry: dict[str, Any]

    def key(self, attribute: str = "pk") -> str | None:
        """The string value of ``attribute`` in the entry's key or item, if any."""
        spec = self.entry
        for wrapper in ("PutRequest", "DeleteRequest"):
            if isinstance(spec.get(wrapper), dict):
                inner = spec[wrapper]
                spec = inner.get("Item") or inner.get("Key") or {}
        value = spec.get(attribute) if isinstance(spec, dict) else None
        return value.get("S") if isinstance(value, dict) else None


def batch_entries(action: str, body: dict[str, Any]) -> list[BatchEntry]:
    """Every item of a BatchGetItem or BatchWriteItem request body, in request order."""
    found: list[BatchEntry] = []
    for table, spec in (body.get("RequestItems") or {}).items():
        items = (spec or {}).get("Keys") if action == "BatchGetItem" else spec
        for entry in items or []:
            if isinstance(entry, dict):
                found.append(BatchEntry(str(table), entry))
    return found


def regroup(action: str, body: dict[str, Any], entries: Iterable[BatchEntry]) -> dict[str, Any]:
    """``RequestItems`` holding only ``entries``, with each table's other settings (a read's
    ``ConsistentRead``, projection...) as the request had them: the shape of both the
    forwarded request and DynamoDB's ``UnprocessedKeys``/``UnprocessedItems``."""
    grouped: dict[str, Any] = {}
    for item in entries:
        if action == "BatchGetItem":
            spec = dict((body.get("RequestItems") or {}).get(item.table) or {})
            table = grouped.setdefault(item.table, {**spec, "Keys": []})
            table["Keys"].append(item.entry)
        else:
            grouped.setdefault(item.table, []).append(item.entry)
    return grouped


def forward_partial(
    app: WsgiApp,
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    action: str,
    body: dict[str, Any],
    verdicts: Sequence[bool],
) -> list[bytes] | None:
    """Send the entries ``verdicts`` keeps (one flag per :func:`batch_entries` item) to
    ``app`` and answer with the rest unprocessed.

    Returns ``None`` without calling anything when every entry is kept (the caller forwards
    the request as it is) or none (the caller answers with DynamoDB's throttling error, as
    DynamoDB does when it can process nothing).
    """
    entries = batch_entries(action, body)
    if len(verdicts) != len(entries):
        raise ValueError(f"{len(verdicts)} verdicts for {len(entries)} batch entries")
    if all(verdicts) or not any(verdicts):
        return None
    kept = [entry for entry, ok in zip(entries, verdicts, strict=True) if ok]
    left = [entry for entry, ok in zip(entries, verdicts, strict=True) if not ok]
    forwarded = json.dumps({**body, "RequestItems": regroup(action, body, kept)}).encode()
    environ["wsgi.input"] = io.BytesIO(forwarded)
    environ["CONTENT_LENGTH"] = str(len(forwarded))
    captured: dict[str, Any] = {}

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, headers
        return lambda _data: None

    reply = b"".join(app(environ, capture))
    status: str = captured.get("status", "500 Internal Server Error")
    headers: list[tuple[str, str]] = list(captured.get("headers", []))
    if status.startswith("200"):
        reply = _with_unprocessed(reply, action, regroup(action, body, left))
        headers = _fixed_headers(headers, reply)
    start_response(status, headers)
    return [reply]


def _with_unprocessed(reply: bytes, action: str, unprocessed: dict[str, Any]) -> bytes:
    document = json.loads(reply or b"{}")
    field = "UnprocessedKeys" if action == "BatchGetItem" else "UnprocessedItems"
    merged = dict(document.get(field) or {})
    for table, spec in unprocessed.items():
        if action == "BatchGetItem" and table in merged:
            merged[table]["Keys"] = list(merged[table].get("Keys", [])) + spec["Keys"]
        elif table in merged:
            merged[table] = list(merged[table]) + spec
        else:
            merged[table] = spec
    document[field] = merged
    return json.dumps(document).encode()


def _fixed_headers(headers: list[tuple[str, str]], reply: bytes) -> list[tuple[str, str]]:
    # botocore checks DynamoDB's x-amz-crc32 against the body: it must describe the new one.
    fixed = [(k, v) for k, v in headers if k.lower() not in {"content-length", "x-amz-crc32"}]
    fixed.append(("Content-Length", str(len(reply))))
    if any(k.lower() == "x-amz-crc32" for k, _ in headers):
        fixed.append(("x-amz-crc32", str(zlib.crc32(reply) & 0xFFFFFFFF)))
    return fixed


def all_unprocessed(action: str, body: dict[str, Any]) -> dict[str, Any]:
    """The reply of a batch of which nothing was processed while DynamoDB still answered 200
    (an internal processing failure; over throughput it raises instead)."""
    every = regroup(action, body, batch_entries(action, body))
    if action == "BatchGetItem":
        return {"Responses": {table: [] for table in every}, "UnprocessedKeys": every}
    return {"UnprocessedItems": every}
