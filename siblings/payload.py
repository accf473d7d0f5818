"""Serialise a sibling's payload, offload it to S3 when too large, and read it back.

An event over ``max_payload_bytes`` is written to ``s3://<payload_bucket>/<payload_prefix>
<function>/<chain id>/<generation>/<sha256>.json`` and the sibling receives only the reserved key with a
pointer::

    {"__siblings__": {..., "payload": {"s3": {"bucket": "b", "key": "k", "bytes": 2000000,
                                              "sha256": "..."}}}}

The key is deterministic per chain step and content, so a retried spawn of the same payload
overwrites rather than piles up, a different payload never replaces the one a running sibling
reads, and the reader accepts a pointer only to that key (:mod:`siblings.pointer`).
Objects are not deleted after reading (Lambda may deliver the sibling's event again); give the
bucket a lifecycle rule on the prefix. The sibling's side (reading the event back, resolving
a pointer) is :mod:`siblings.inbound`'s.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from estimator.aws import make_client
from siblings.config import SiblingsConfig
from siblings.errors import PayloadTooLarge, SpawnFailed
from siblings.metadata import METADATA_KEY, ChainMetadata
from siblings.pointer import payload_key

log = logging.getLogger(__name__)

_default_s3_lock = threading.Lock()
_default_s3: Any = None


def normalize_payload(payload: Any) -> tuple[dict[str, Any], Any]:
    """Return ``(payload as a dict, reserved key found in it or None)``.

    Accepts ``None`` (empty), a dict, or a string holding a JSON object. Raises ``TypeError``
    for other types, content that cannot be JSON-serialised or a key that is not a string at
    any depth (the message names its path), ``ValueError`` for a string that is not a JSON
    object, for non-finite floats or for nesting too deep to encode (either form).
    """
    if payload is None:
        data: dict[str, Any] = {}
    elif isinstance(payload, Mapping):
        data = dict(payload)
    elif isinstance(payload, str):
        try:
            decoded = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise ValueError(f"payload string is not valid JSON: {exc}") from None
        except RecursionError:
            raise ValueError("payload nests too deeply to be sent as JSON") from None
        if not isinstance(decoded, dict):
            raise ValueError(
                f"payload must be a JSON object, the string decodes to {type(decoded).__name__}"
            )
        data = decoded
    else:
        raise TypeError(
            f"payload must be a dict, a JSON string or None, got {type(payload).__name__}"
        )
    if not isinstance(payload, str):  # decoded JSON has only string keys
        _check_keys(data)
    embedded = data.pop(METADATA_KEY, None)
    _dumps(data)  # fail here, before any guard or AWS call
    return data, embedded


def _check_keys(data: Mapping[Any, Any]) -> None:
    """Refuse a key that is not a string at any depth, naming where it is.

    ``json.dumps`` would turn ``1``, ``True`` and ``None`` into ``"1"``, ``"true"`` and
    ``"null"`` and silently keep only one of two keys that collide. The walk uses its own stack
    (a payload may nest deeper than Python recurses) and builds the path only on failure.
    """
    # Each entry: (value, parent entry, step from the parent); the root has no parent.
    stack: list[tuple[Any, Any, Any]] = [(data, None, None)]
    while stack:
        entry = stack.pop()
        value = entry[0]
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise TypeError(
                        f"payload keys must be strings, got {type(key).__name__} {key!r:.40} "
                        f"in {_path(entry)}"
                    )
                if isinstance(item, Mapping | list | tuple):
                    stack.append((item, entry, key))
        elif isinstance(value, list | tuple):
            stack.extend(
                (item, entry, index)
                for index, item in enumerate(value)
                if isinstance(item, Mapping | list | tuple)
            )


def _path(entry: tuple[Any, Any, Any]) -> str:
    """``payload['a'][0]`` for a stack entry of :func:`_check_keys`."""
    steps: list[str] = []
    while entry[1] is not None:
        steps.append(f"[{entry[2]!r}]")
        entry = entry[1]
    return "payload" + "".join(reversed(steps))


def _dumps(value: Any) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except RecursionError:
        raise ValueError("payload nests too deeply to be sent as JSON") from None
    except TypeError as exc:
        raise TypeError(f"payload is not JSON-serialisable: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"payload is not valid JSON: {exc}") from None


@dataclass(frozen=True)
class EncodedEvent:
    """The bytes to send as the sibling's event, and the S3 object to write first, if any."""

    body: bytes
    """The event, JSON-encoded (the pointer event when offloaded)."""
    payload_bytes: int
    """Size of the payload with its metadata, inline (before any offload)."""
    offload_data: bytes | None = None
    """The payload to write to S3 before invoking (``None``: sent inline)."""
    bucket: str | None = None
    """Bucket of the offloaded payload."""
    key: str | None = None
    """Key of the offloaded payload."""

    @property
    def offloaded(self) -> bool:
        """The payload goes to S3 and the sibling receives a pointer."""
        return self.offload_data is not None


EMPTY_EVENT = EncodedEvent(body=b"{}", payload_bytes=2)
"""An event with nothing in it (for results of calls that send nothing)."""


def build_event(
    payload: dict[str, Any],
    metadata: ChainMetadata,
    *,
    function_name: str,
    config: SiblingsConfig,
) -> EncodedEvent:
    """Build the sibling's event without any I/O, deciding whether it must be offloaded.

    Raises :class:`PayloadTooLarge` when it is over ``max_payload_bytes`` and no
    ``payload_bucket`` is configured, so nothing is written or invoked.
    """
    meta = metadata.to_dict()
    inline = _dumps({**payload, METADATA_KEY: meta})
    if len(inline) <= config.max_payload_bytes:
        return EncodedEvent(body=inline, payload_bytes=len(inline))
    if not config.payload_bucket:
        raise PayloadTooLarge(len(inline), config.max_payload_bytes)
    data = _dumps(payload)
    digest = hashlib.sha256(data).hexdigest()
    key = payload_key(config.payload_prefix, function_name, metadata, digest)
    pointer = {
        "s3": {
            "bucket": config.payload_bucket,
            "key": key,
            "bytes": len(data),
            "sha256": digest,
        }
    }
    body = _dumps({METADATA_KEY: {**meta, "payload": pointer}})
    if len(body) > config.max_payload_bytes:
        raise PayloadTooLarge(len(body), config.max_payload_bytes)
    return EncodedEvent(
        body=body,
        payload_bytes=len(inline),
        offload_data=data,
        bucket=config.payload_bucket,
        key=key,
    )


def upload(encoded: EncodedEvent, s3_client: Any, function_name: str) -> None:
    """Write an offloaded payload to S3 (no-op when inline).

    Raises :class:`SpawnFailed` when S3 refuses it, so the caller keeps its work.
    """
    if encoded.offload_data is None:
        return
    try:
        s3_client.put_object(
            Bucket=encoded.bucket,
            Key=encoded.key,
            Body=encoded.offload_data,
            ContentType="application/json",
        )
    except (BotoCoreError, ClientError) as exc:
        raise SpawnFailed(function_name, exc, attempts=1, service="s3") from exc


def has_pointer(event: Any) -> bool:
    """Whether ``event`` is a sibling event whose payload was offloaded to S3."""
    if not isinstance(event, Mapping):
        return False
    meta = event.get(METADATA_KEY)
    return isinstance(meta, Mapping) and meta.get("payload") is not None


def default_s3_client(session: Any, config: SiblingsConfig) -> Any:
    """An S3 client from ``session`` (new each call) or a shared one from the environment."""
    if session is not None:
        return make_client("s3", config, session)
    global _default_s3
    with _default_s3_lock:
        if _default_s3 is None:
            _default_s3 = make_client("s3", config)
        return _default_s3
