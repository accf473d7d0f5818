"""Payload rules: accepted shapes, size limit, S3 pointer events, load_payload."""

from __future__ import annotations

import hashlib
import io
import json
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from siblings import METADATA_KEY, PayloadTooLarge, PayloadUnavailable, SpawnFailed, load_payload
from siblings.config import SiblingsConfig
from siblings.metadata import ChainMetadata, recall
from siblings.payload import build_event, has_pointer, normalize_payload, upload
from siblings.runs import RunClaims

META = ChainMetadata("chain", 2, "parent", 100.0)
FN_CONTEXT = SimpleNamespace(invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:fn")


class FakeS3:
    """put_object/get_object over a dict; ``fail`` makes every call raise."""

    def __init__(self, fail: bool = False) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.fail = fail

    def _maybe_fail(self, operation: str) -> None:
        if self.fail:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "slow"}}, operation)

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self._maybe_fail("PutObject")
        self.objects[(Bucket, Key)] = Body
        return {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self._maybe_fail("GetObject")
        if (Bucket, Key) not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [(None, {}), ({"a": 1}, {"a": 1}), ('{"a": [1, 2]}', {"a": [1, 2]}), ("{}", {})],
)
def test_accepted_payloads(payload: Any, expected: dict[str, Any]) -> None:
    assert normalize_payload(payload) == (expected, None)


def test_the_reserved_key_is_taken_out_of_the_payload() -> None:
    data, embedded = normalize_payload({"a": 1, METADATA_KEY: {"chain_id": "c"}})
    assert data == {"a": 1} and embedded == {"chain_id": "c"}


def test_the_callers_dict_is_not_modified() -> None:
    payload = {"a": 1, METADATA_KEY: {}}
    normalize_payload(payload)
    assert METADATA_KEY in payload


@pytest.mark.parametrize(
    ("payload", "error", "match"),
    [
        ({"a": {1, 2}}, TypeError, "not JSON-serialisable"),
        ({1: "a"}, TypeError, "keys must be strings"),
        ({"a": float("inf")}, ValueError, "not valid JSON"),
        ("{'a': 1}", ValueError, "not valid JSON"),
        ('"text"', ValueError, "JSON object"),
        (b"{}", TypeError, "dict, a JSON string"),
        (42, TypeError, "dict, a JSON string"),
    ],
)
def test_rejected_payloads(payload: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        normalize_payload(payload)


def test_small_event_is_inline_with_metadata() -> None:
    encoded = build_event({"cursor": 3}, META, function_name="fn", config=SiblingsConfig())
    assert not encoded.offloaded
    event = json.loads(encoded.body)
    assert event == {"cursor": 3, METADATA_KEY: META.to_dict()}
    assert encoded.payload_bytes == len(encoded.body)


def test_the_limit_counts_the_whole_event() -> None:
    body = build_event({"x": ""}, META, function_name="fn", config=SiblingsConfig()).body
    limit = len(body)
    config = SiblingsConfig(max_payload_bytes=limit)
    assert not build_event({"x": ""}, META, function_name="fn", config=config).offloaded
    with pytest.raises(PayloadTooLarge) as caught:
        build_event({"x": "y"}, META, function_name="fn", config=config)
    assert (caught.value.size, caught.value.limit) == (limit + 1, limit)
    assert isinstance(caught.value, ValueError)


def test_large_event_becomes_a_pointer_and_round_trips() -> None:
    config = SiblingsConfig(max_payload_bytes=1000, payload_bucket="b", payload_prefix="p/")
    payload = {"rows": ["r" * 100] * 50}
    encoded = build_event(payload, META, function_name="fn", config=config)
    digest = hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()
    assert encoded.offloaded and encoded.key == f"p/fn/chain/2/{digest}.json"
    event = json.loads(encoded.body)
    assert set(event) == {METADATA_KEY}
    assert has_pointer(event) and not has_pointer({"a": 1}) and not has_pointer([1])
    s3 = FakeS3()
    upload(encoded, s3, "fn")
    assert load_payload(event, FN_CONTEXT, s3_client=s3, config=config) == payload


def test_upload_failure_is_spawn_failed() -> None:
    config = SiblingsConfig(max_payload_bytes=400, payload_bucket="b")
    encoded = build_event({"x": "y" * 1000}, META, function_name="fn", config=config)
    with pytest.raises(SpawnFailed) as caught:
        upload(encoded, FakeS3(fail=True), "fn")
    assert isinstance(caught.value.cause, ClientError)


def test_load_payload_of_plain_and_inline_events() -> None:
    assert load_payload({"cursor": 1}) == {"cursor": 1}
    assert load_payload({"cursor": 1, METADATA_KEY: META.to_dict()}) == {"cursor": 1}
    with pytest.raises(TypeError):
        load_payload("not an event")
    with pytest.raises(ValueError):
        load_payload({METADATA_KEY: {"generation": "x"}})
    with pytest.raises(ValueError, match="S3 pointer"):
        load_payload({METADATA_KEY: {**META.to_dict(), "payload": {"s3": "nope"}}})


def test_load_payload_with_context_remembers_the_chain() -> None:
    class Context:
        aws_request_id = "load-payload-test-request"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"

    in_process = RunClaims(None, SiblingsConfig(region_name="us-east-1", account_id="123456789012"))
    load_payload({"a": 1, METADATA_KEY: META.to_dict()}, Context(), claims=in_process)
    assert recall("load-payload-test-request") == (True, META)


def test_unreadable_offloaded_payloads() -> None:
    config = SiblingsConfig(max_payload_bytes=400, payload_bucket="b")
    encoded = build_event({"x": "y" * 1000}, META, function_name="fn", config=config)
    event = json.loads(encoded.body)
    s3 = FakeS3()

    def load() -> object:
        return load_payload(event, FN_CONTEXT, s3_client=s3, config=config)

    def store(body: bytes) -> None:
        """Put ``body`` where this function would offload it, with a pointer that matches it."""
        digest = hashlib.sha256(body).hexdigest()
        key = f"lambda-siblings/payloads/fn/chain/2/{digest}.json"
        s3.objects[("b", key)] = body
        pointer = event[METADATA_KEY]["payload"]["s3"]
        pointer["key"], pointer["sha256"], pointer["bytes"] = key, digest, len(body)

    with pytest.raises(PayloadUnavailable, match="cannot read"):
        load()
    assert encoded.key is not None
    s3.objects[("b", encoded.key)] = b"[1, 2]"
    with pytest.raises(PayloadUnavailable, match="checksum"):
        load()
    store(b"[1, 2]")
    with pytest.raises(PayloadUnavailable, match="not a JSON object"):
        load()
    store(b"{not json")
    with pytest.raises(PayloadUnavailable, match="not JSON"):
        load()
    store(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(PayloadUnavailable, match="not JSON"):
        load()



@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"totals": {1: "a", "1": "b"}}, r"payload\['totals'\]"),
        ({"a": [{"b": {True: 1}}]}, r"payload\['a'\]\[0\]\['b'\]"),
        ({"a": {None: 1}}, r"payload\['a'\]"),
        ({"a": {2.5: 1}}, r"payload\['a'\]"),
    ],
)
def test_nested_non_string_keys_are_refused_with_their_path(payload: Any, path: str) -> None:
    """json.dumps would turn 1/True/None into "1"/"true"/"null" and merge colliding keys."""
    with pytest.raises(TypeError, match=rf"keys must be strings.*{path}"):
        normalize_payload(payload)


def test_a_deeply_nested_json_string_is_a_value_error_like_the_dict() -> None:
    deep = "[" * 10_000 + "]" * 10_000
    with pytest.raises(ValueError, match="nests too deeply"):
        normalize_payload('{"a": ' + deep + "}")
    nested: Any = []
    for _ in range(10_000):
        nested = [nested]
    with pytest.raises(ValueError, match="nests too deeply"):
        normalize_payload({"a": nested})


def test_a_sibling_event_with_a_context_that_names_no_function_is_refused_before_any_read() -> None:
    """The step is claimed for the function the context names (issue 18.2): a context with a
    request id and no ARN is a TypeError before the offloaded payload is read."""
    config = SiblingsConfig(max_payload_bytes=400, payload_bucket="b")
    encoded = build_event({"x": "y" * 1000}, META, function_name="fn", config=config)

    class NoArn:
        aws_request_id = "no-arn-request"

    s3 = FakeS3(fail=True)  # any read would raise ClientError instead
    with pytest.raises(TypeError, match="invoked_function_arn"):
        load_payload(json.loads(encoded.body), NoArn(), s3_client=s3, config=config)
