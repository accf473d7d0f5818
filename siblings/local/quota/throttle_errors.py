"""AWS's throttling answers, each in the wire protocol of the request it refuses.

botocore reads the error code from a different place per protocol (an XML body, the
``x-amzn-ErrorType`` header, a JSON ``__type``, CBOR with ``x-amzn-query-error``), so the
answer has to be exact for its retry logic to treat it as a throttle.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from siblings.local.calls import Call
from siblings.local.quota.cbor import cbor_encode
from siblings.local.quota.request import QuotaRequest
from siblings.local.quota.table import Quota

Response = tuple[str, list[tuple[str, str]], bytes]
"""Status line, headers and body."""
Headers = list[tuple[str, str]]

# moto's default account; only used to build ARNs in DynamoDB's ThrottlingReasons.
_ACCOUNT_ID = "123456789012"
_MESSAGE = "Rate exceeded"
_REASON_PHRASES = {400: "Bad Request", 429: "Too Many Requests", 503: "Slow Down"}
_DYNAMODB_MESSAGES = {
    "ProvisionedThroughputExceededException": "The level of configured provisioned throughput "
    "for the table was exceeded. Consider increasing your provisioning level with the "
    "UpdateTable API.",
    "RequestLimitExceeded": "Throughput exceeds the current throughput quota for your account.",
}
_THROTTLING_SHAPE = "com.amazon.coral.availability#ThrottlingException"


def throttle_response(environ: dict[str, Any], body: bytes, call: Call, quota: Quota) -> Response:
    """Status line, headers and body with which AWS throttles ``call`` under ``quota``, in the
    request's own wire protocol (for fault injectors that throttle on purpose)."""
    return throttle_answer(QuotaRequest(environ, body, call), quota, "")


def throttle_answer(request: QuotaRequest, quota: Quota, rw: str) -> Response:
    """The throttling error for ``request``'s protocol; ``rw`` fills DynamoDB's ``{rw}`` reason."""
    environ = request.environ
    request_id = str(uuid.uuid4())
    status = f"{quota.status} {_REASON_PHRASES.get(quota.status, 'Error')}"
    if request.service == "s3":
        headers, body = _rest_xml(request_id, environ.get("REQUEST_METHOD") == "HEAD")
    elif request.service in ("lambda", "scheduler"):  # both REST-JSON
        headers, body = _rest_json(request_id, quota)
    elif environ.get("HTTP_SMITHY_PROTOCOL") == "rpc-v2-cbor":
        headers, body = _rpc_v2_cbor(request_id, quota)
    elif environ.get("HTTP_X_AMZ_TARGET"):
        headers, body = _aws_json(request_id, request, quota, rw)
    else:
        headers, body = _aws_query(request_id, quota)
    headers.append(("Content-Length", str(len(body))))
    return status, headers, body


def _rest_xml(request_id: str, head: bool) -> tuple[Headers, bytes]:
    # S3: the code is in the body; HEAD responses have none (botocore then uses 503).
    headers = [("x-amz-request-id", request_id), ("Content-Type", "application/xml")]
    if head:
        return headers, b""
    body = (
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
        "<Message>Please reduce your request rate.</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
    ).encode()
    return headers, body


def _rest_json(request_id: str, quota: Quota) -> tuple[Headers, bytes]:
    # Lambda: botocore reads the code from x-amzn-ErrorType; Lambda throttles with 429.
    headers = [
        ("x-amzn-RequestId", request_id),
        ("x-amzn-ErrorType", quota.error),
        ("Content-Type", "application/json"),
        ("Retry-After", "1"),
    ]
    body = json.dumps({"Type": "User", "message": _MESSAGE, "Reason": quota.reason}).encode()
    return headers, body


def _rpc_v2_cbor(request_id: str, quota: Quota) -> tuple[Headers, bytes]:
    # CloudWatch: ``__type`` names the error shape; CloudWatch is awsQueryCompatible, so
    # x-amzn-query-error carries the query-protocol code ("Throttling") botocore reports.
    headers = [
        ("x-amzn-RequestId", request_id),
        ("smithy-protocol", "rpc-v2-cbor"),
        ("Content-Type", "application/cbor"),
        ("x-amzn-query-error", f"{quota.error};Sender"),
    ]
    return headers, cbor_encode({"__type": _THROTTLING_SHAPE, "message": _MESSAGE})


def _aws_json(
    request_id: str, request: QuotaRequest, quota: Quota, rw: str
) -> tuple[Headers, bytes]:
    content_type = request.environ.get("CONTENT_TYPE") or "application/x-amz-json-1.1"
    headers = [("x-amzn-RequestId", request_id), ("Content-Type", content_type)]
    document: dict[str, Any]
    if request.service == "monitoring":
        headers.append(("x-amzn-query-error", f"{quota.error};Sender"))
        document = {"__type": _THROTTLING_SHAPE, "message": _MESSAGE}
    elif request.service == "dynamodb":
        document = _dynamodb_document(request, quota, rw)
    else:
        document = {"__type": quota.error, "message": _MESSAGE}
    return headers, json.dumps(document).encode()


def _dynamodb_document(request: QuotaRequest, quota: Quota, rw: str) -> dict[str, Any]:
    document: dict[str, Any] = {
        "__type": f"com.amazonaws.dynamodb.v20120810#{quota.error}",
        "message": _DYNAMODB_MESSAGES.get(quota.error, _MESSAGE),
    }
    if quota.reason:
        table = str(request.json().get("TableName", ""))
        arn = f"arn:aws:dynamodb:{request.account[1]}:{_ACCOUNT_ID}:table/{table}"
        document["ThrottlingReasons"] = [
            {"reason": quota.reason.format(rw=rw or "Read"), "resource": arn}
        ]
    return document


def _aws_query(request_id: str, quota: Quota) -> tuple[Headers, bytes]:
    headers = [("x-amzn-RequestId", request_id), ("Content-Type", "text/xml")]
    body = (
        "<ErrorResponse><Error><Type>Sender</Type>"
        f"<Code>{quota.error}</Code><Message>{_MESSAGE}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()
    return headers, body
