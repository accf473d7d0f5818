"""A forged S3 pointer in an event reads nothing: the config, not the event, says where payloads are."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from siblings import METADATA_KEY, PayloadUnavailable, load_payload
from siblings.metadata import ChainMetadata
from tests.integration.siblings.support import SiblingsEnv

SECRET = b'{"secret": "from another bucket"}'
DIGEST = hashlib.sha256(SECRET).hexdigest()
P = "lambda-siblings/payloads/"


def forged_event(bucket: str, key: str, body: bytes = SECRET, **pointer: Any) -> dict[str, Any]:
    """A sibling event whose pointer names ``bucket``/``key`` with a correct digest."""
    meta = ChainMetadata("chain-1", 2, "parent").to_dict()
    s3 = {"bucket": bucket, "key": key, "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    s3.update(pointer)
    return {METADATA_KEY: {**meta, "payload": {"s3": s3}}}


@pytest.fixture
def s3(env: SiblingsEnv) -> Any:
    client = env.client("s3")
    for bucket in ("payloads", "private"):
        client.create_bucket(Bucket=bucket)
    client.put_object(Bucket="private", Key=f"{P}worker/chain-1/2/{DIGEST}.json", Body=SECRET)
    client.put_object(Bucket="payloads", Key="other/place.json", Body=SECRET)
    client.put_object(Bucket="payloads", Key=f"{P}other-fn/chain-1/2/{DIGEST}.json", Body=SECRET)
    client.put_object(Bucket="payloads", Key=f"{P}worker/chain-9/2/{DIGEST}.json", Body=SECRET)
    env.recorder.reset()
    return client


@pytest.mark.parametrize(
    ("bucket", "key", "why"),
    [
        ("private", f"{P}worker/chain-1/2/{DIGEST}.json", "another bucket"),
        ("payloads", "other/place.json", "outside the prefix"),
        ("payloads", f"{P}other-fn/chain-1/2/{DIGEST}.json", "another function's"),
        ("payloads", f"{P}worker/chain-9/2/{DIGEST}.json", "another chain step's"),
    ],
)
def test_a_pointer_anywhere_else_is_refused_and_nothing_is_read(
    env: SiblingsEnv, s3: Any, bucket: str, key: str, why: str
) -> None:
    manager = env.manager({"payload_bucket": "payloads"})
    sibling = env.context()  # one execution, reading its event twice (a retry passes its claim)
    with pytest.raises(PayloadUnavailable, match="refusing"):
        manager.load_payload(forged_event(bucket, key), sibling)
    with pytest.raises(PayloadUnavailable, match="refusing"):
        load_payload(forged_event(bucket, key), sibling, s3_client=s3, config=manager.config)
    assert env.recorder.count("s3", "GetObject") == 0, why


def test_a_pointer_without_a_digest_is_refused(env: SiblingsEnv, s3: Any) -> None:
    key = f"{P}worker/chain-1/2/{DIGEST}.json"
    s3.put_object(Bucket="payloads", Key=key, Body=SECRET)
    env.recorder.reset()
    manager = env.manager({"payload_bucket": "payloads"})
    event = forged_event("payloads", key)
    del event[METADATA_KEY]["payload"]["s3"]["sha256"]
    sibling = env.context()
    with pytest.raises(PayloadUnavailable, match="digest"):
        manager.load_payload(event, sibling)
    assert env.recorder.count("s3", "GetObject") == 0
    # The same pointer with its digest is this function's own payload, and is read.
    assert manager.load_payload(forged_event("payloads", key), sibling) == json.loads(SECRET)


def test_with_no_bucket_configured_no_pointer_is_trusted(env: SiblingsEnv, s3: Any) -> None:
    event = forged_event("payloads", f"{P}worker/chain-1/2/{DIGEST}.json")
    with pytest.raises(PayloadUnavailable, match="no payload_bucket"):
        env.manager().load_payload(event, env.context())
    assert env.recorder.count("s3", "GetObject") == 0
