"""Defects found in review: each test failed before its fix."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import pytest
from botocore.exceptions import ReadTimeoutError

from estimator import Config
from estimator.clock import ManualClock
from estimator.shared_cache import TwoTierCache
from siblings import METADATA_KEY, SiblingsManager, SpawnFailed, load_payload
from siblings.config import SiblingsConfig
from siblings.invoke import Invoker
from siblings.killswitch import KillSwitch
from siblings.metadata import ChainMetadata
from siblings.payload import build_event
from siblings.runs import RunClaims

ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"


def test_two_payloads_of_one_step_never_share_an_s3_key() -> None:
    """A retried parent offloading another payload must not overwrite the first child's."""
    config = SiblingsConfig(max_payload_bytes=400, payload_bucket="b")
    step = ChainMetadata("chain", 2, "parent")
    first = build_event({"cursor": 100, "pad": "x" * 500}, step, function_name="fn", config=config)
    second = build_event({"cursor": 130, "pad": "x" * 500}, step, function_name="fn", config=config)
    assert first.key != second.key
    assert first.offload_data is not None
    assert first.key.endswith(hashlib.sha256(first.offload_data).hexdigest() + ".json")  # type: ignore[union-attr]


@pytest.mark.parametrize("force", ["false", "yes", 2, None, [True]])
def test_force_must_be_a_bool(force: Any) -> None:
    manager = SiblingsManager({"use_dynamodb": False})
    with pytest.raises(TypeError, match="force"):
        manager.spawn_sibling(SimpleNamespace(invoked_function_arn=ARN), {}, force)


def test_load_payload_takes_a_magicmock_context() -> None:
    """sosw users test with MagicMock contexts: made-up attributes count as absent."""
    claims = RunClaims(None, SiblingsConfig())
    meta = ChainMetadata("chain", 1, "p").to_dict()
    assert load_payload({"cursor": 1}, MagicMock(), claims=claims) == {"cursor": 1}
    assert load_payload({"cursor": 1, METADATA_KEY: meta}, MagicMock(), claims=claims) == {"cursor": 1}


class LostReplies:
    """An Invoke that reaches Lambda, and whose reply is lost every time."""

    def invoke(self, **_: Any) -> dict[str, Any]:
        raise ReadTimeoutError(endpoint_url="http://127.0.0.1:1")


def test_an_invoke_whose_reply_was_lost_may_have_spawned() -> None:
    with pytest.raises(SpawnFailed) as caught:
        Invoker(LostReplies(), max_attempts=2, clock=ManualClock()).invoke(ARN, b"{}")
    assert caught.value.maybe_spawned is True


def test_a_stale_value_past_its_grace_is_not_served() -> None:
    clock = ManualClock(1000.0)
    cache = TwoTierCache(Config(stale_grace_seconds=100, error_backoff_seconds=0), None, clock)
    cache.get("k", lambda: {"v": 1}, ttl=10, origin="test")
    clock.advance(50)  # stale, within its grace
    served = cache.get("k", lambda: (_ for _ in ()).throw(RuntimeError("down")), ttl=10, origin="test")
    assert served.stale and served.value == {"v": 1}
    clock.advance(10_000)  # far past the grace: no longer a stand-in
    with pytest.raises(Exception, match="down"):
        cache.get("k", lambda: (_ for _ in ()).throw(RuntimeError("down")), ttl=10, origin="test")


class Table:
    """What the kill switch reads: one item, or a failure."""

    def __init__(self) -> None:
        self.item: Any = None
        self.fail = False

    def get(self, key: str, *, consistent: bool = True) -> Any:
        if self.fail:
            from estimator.exceptions import StoreUnavailable

            raise StoreUnavailable("GetItem", ConnectionError("down"))
        return self.item


def test_an_old_enabled_kill_switch_is_no_stand_in_but_a_disabled_one_is() -> None:
    from estimator.validation import parse_function
    from siblings.keys import kill_key

    FN = parse_function("arn:aws:lambda:us-east-1:123456789012:function:fn")  # noqa: N806
    clock = ManualClock(0.0)
    table = Table()
    switch = KillSwitch(table, clock=clock)  # type: ignore[arg-type]
    assert switch.state(FN).disabled is False
    assert switch.last_known(FN, max_age=5) is not None  # just read
    clock.advance(60.0)
    assert switch.last_known(FN, max_age=5) is None  # an operator may have disabled it since
    from estimator.items import StoredItem

    table.item = StoredItem(kill_key(FN), {"disabled": True, "reason": "x"}, 9e9, 9e9)
    switch.state(FN)
    clock.advance(10_000.0 - 60.0)
    found = switch.last_known(FN, max_age=5)
    assert found is not None and found.disabled  # a disabled switch stands in at any age


class _RacedModel:
    """A table model whose CreateTable loses the race (or whose first, successful, attempt timed
    out and was retried): DynamoDB answers ResourceInUseException."""

    ttl_updates = 0

    @classmethod
    def exists(cls) -> bool:
        return False

    @classmethod
    def create_table(cls, **_: Any) -> None:
        from botocore.exceptions import ClientError
        from pynamodb.exceptions import TableError

        error = {"Error": {"Code": "ResourceInUseException", "Message": "Table already exists"}}
        raise TableError("Failed to create table", ClientError(error, "CreateTable"))  # type: ignore[arg-type]


class _TtlOn:
    """The low-level calls of a table whose TTL is on."""

    def ttl_enabled(self) -> bool:
        return True


def test_ensure_table_is_idempotent_when_its_create_finds_the_table_made_meanwhile() -> None:
    from estimator.store import DynamoStore

    store = DynamoStore(Config(), model=_RacedModel, low=_TtlOn())  # type: ignore[arg-type]
    assert store.ensure_table() is False  # another creator (or our own retried call) made it
