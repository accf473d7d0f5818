"""The reserved metadata key: parsing, chaining, remembering per request id."""

from __future__ import annotations

import uuid

import pytest

from siblings.metadata import (
    METADATA_KEY,
    ChainMetadata,
    metadata_of,
    parse_metadata,
    recall,
    remember,
    root_metadata,
)


def test_root_then_children_keep_the_chain() -> None:
    root = root_metadata("req-0")
    assert (root.chain_id, root.generation, root.parent_request_id) == ("req-0", 0, None)
    first = root.child("req-0", now=10.0)
    second = first.child("req-1", now=11.0)
    assert (first.chain_id, first.generation, first.parent_request_id) == ("req-0", 1, "req-0")
    assert (second.chain_id, second.generation, second.parent_request_id) == ("req-0", 2, "req-1")
    assert parse_metadata(second.to_dict()) == second


def test_events_without_the_key_are_not_sibling_events() -> None:
    assert metadata_of({"cursor": 1}) is None
    assert metadata_of(["not", "a", "dict"]) is None
    meta = ChainMetadata("c", 3, "p", 1.5)
    assert metadata_of({"cursor": 1, METADATA_KEY: meta.to_dict()}) == meta


@pytest.mark.parametrize(
    "raw",
    [
        "c",
        {},
        {"chain_id": "", "generation": 1},
        {"chain_id": "c", "generation": -1},
        {"chain_id": "c", "generation": True},
        {"chain_id": "c", "generation": "1"},
        {"chain_id": "c", "generation": 1, "parent_request_id": 5},
        {"chain_id": "c", "generation": 1, "spawned_at": "yesterday"},
        {"chain_id": "c", "generation": 1, "spawned_at": float("inf")},
    ],
)
def test_malformed_metadata_is_an_error_not_a_new_chain(raw: object) -> None:
    with pytest.raises(ValueError, match=METADATA_KEY):
        parse_metadata(raw)


def test_remembered_per_request_id() -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    meta = ChainMetadata("c", 2)
    remember(a, meta)
    remember(b, None)
    assert recall(a) == (True, meta)
    assert recall(b) == (True, None)
    assert recall(str(uuid.uuid4())) == (False, None)


def test_remembered_entries_are_bounded() -> None:
    first = str(uuid.uuid4())
    remember(first, ChainMetadata("c", 1))
    for _ in range(300):
        remember(str(uuid.uuid4()), None)
    assert recall(first) == (False, None)
