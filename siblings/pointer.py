"""Reading an offloaded payload back, trusting the configuration and never the event.

A sibling event's S3 pointer is input: anyone who can invoke the function can forge one. So
the pointer is only accepted when it names exactly the object this function would have written
for this chain step (the configured ``payload_bucket``, under ``payload_prefix`` and the
function's own name, keyed by chain id and generation), with a SHA-256 digest that the object's
bytes must match. Anything else raises :class:`~siblings.PayloadUnavailable` before anything is
read. IAM should still limit the role to ``s3:GetObject`` on that prefix.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from siblings.config import SiblingsConfig
from siblings.errors import PayloadUnavailable
from siblings.metadata import METADATA_KEY, ChainMetadata

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def payload_key(prefix: str, function_name: str, metadata: ChainMetadata, sha256: str) -> str:
    """S3 key of one offloaded payload of a chain step. The digest is part of it, so a retried
    parent offloading a different payload for the same step never overwrites the one a running
    sibling is about to read."""
    return f"{prefix}{function_name}/{metadata.chain_id}/{metadata.generation}/{sha256}.json"


@dataclass(frozen=True)
class Pointer:
    """A checked pointer: where the payload is, and what its bytes must hash to."""

    bucket: str
    key: str
    sha256: str
    size: int | None

    @property
    def url(self) -> str:
        """``s3://bucket/key``, for messages."""
        return f"s3://{self.bucket}/{self.key}"


def check_pointer(
    raw: Any, *, config: SiblingsConfig, function_name: str | None, metadata: ChainMetadata
) -> Pointer:
    """Accept ``raw`` (the event's ``payload`` entry) only if it points where this function
    writes this chain step's payload, with a digest.

    Raises ``ValueError`` when it is not shaped like a pointer, :class:`PayloadUnavailable`
    when it points anywhere else or has no digest.
    """
    s3 = raw.get("s3") if isinstance(raw, Mapping) else None
    if not isinstance(s3, Mapping) or not isinstance(s3.get("bucket"), str) or not isinstance(
        s3.get("key"), str
    ):
        raise ValueError(f"event[{METADATA_KEY!r}]['payload'] is not an S3 pointer: {raw!r:.200}")
    bucket, key = s3["bucket"], s3["key"]
    if not config.payload_bucket:
        raise PayloadUnavailable(
            f"refusing s3://{bucket}/{key}: no payload_bucket is configured, so no offloaded "
            "payload can be trusted"
        )
    if function_name is None:
        raise PayloadUnavailable(
            f"refusing s3://{bucket}/{key}: cannot tell which function is reading it; pass the "
            "handler's context (or run inside Lambda, where AWS_LAMBDA_FUNCTION_NAME is set)"
        )
    digest = s3.get("sha256")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise PayloadUnavailable(f"refusing s3://{bucket}/{key}: the pointer has no SHA-256 digest")
    expected = payload_key(config.payload_prefix, function_name, metadata, digest)
    if bucket != config.payload_bucket or key != expected:
        raise PayloadUnavailable(
            f"refusing s3://{bucket}/{key}: this function's payloads for this chain step are "
            f"only read from s3://{config.payload_bucket}/{expected}"
        )
    size = s3.get("bytes")
    valid_size = isinstance(size, int) and not isinstance(size, bool) and size >= 0
    return Pointer(bucket, key, digest, size if valid_size else None)


def read_pointer(client: Any, pointer: Pointer) -> dict[str, Any]:
    """Read the object, check its size and digest, decode it. Raises :class:`PayloadUnavailable`."""
    try:
        body = client.get_object(Bucket=pointer.bucket, Key=pointer.key)["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        raise PayloadUnavailable(f"cannot read offloaded payload {pointer.url}: {exc}", exc) from exc
    if (pointer.size is not None and len(body) != pointer.size) or (
        hashlib.sha256(body).hexdigest() != pointer.sha256
    ):
        raise PayloadUnavailable(f"offloaded payload {pointer.url} does not match its checksum")
    try:
        loaded = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise PayloadUnavailable(f"offloaded payload {pointer.url} is not JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise PayloadUnavailable(f"offloaded payload {pointer.url} is not a JSON object")
    return loaded
