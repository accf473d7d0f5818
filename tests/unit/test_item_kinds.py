"""One pynamodb Model per item kind: each kind's key prefix, typed fields and bounds."""

from __future__ import annotations

import math

import pytest
from pynamodb.models import Model

import siblings  # noqa: F401  (imports every kind's owner)
from estimator.binding import CacheItem
from estimator.clock import ManualClock
from estimator.estimate import EstimateItem
from estimator.identity import Home
from estimator.item_kinds import ItemKind, kinds
from estimator.items import StoredItem
from estimator.keys import account_limit_key, estimate_key, function_concurrency_key
from estimator.limits import AccountLimitsItem, FunctionLimitsItem
from estimator.memory_store import MemoryStore
from estimator.validation import parse_function
from siblings import DuplicateSibling, SiblingsConfig
from siblings.keys import (
    invocation_key,
    kill_key,
    recursion_key,
    rule_names_key,
    rules_key,
    run_key,
    schedule_key,
    spawn_key,
)
from siblings.killswitch import KillItem
from siblings.ledger import SpawnItem
from siblings.metadata import ChainMetadata
from siblings.recursion import RecursionItem
from siblings.rules import RuleNamesItem, RulesItem
from siblings.runs import ReqItem, RunClaims, RunItem
from siblings.schedules import ScheduleItem

REF = parse_function("arn:aws:lambda:eu-west-1:123456789012:function:worker")
SCOPE = REF.scope
NOW = 1_767_225_600.0


def test_every_kind_is_a_model_of_the_one_table_with_its_own_prefix() -> None:
    found = kinds()
    expected = {
        "estimate#": EstimateItem, "limits#account#": AccountLimitsItem,
        "limits#function#": FunctionLimitsItem, "rules#": RulesItem, "rulenames#": RuleNamesItem,
        "recursion#": RecursionItem, "schedule#": ScheduleItem, "kill#": KillItem,
        "spawn#": SpawnItem, "req#": ReqItem, "run#": RunItem,
    }
    assert found == expected
    for kind in found.values():
        assert issubclass(kind, CacheItem) and issubclass(kind, Model)
        assert kind.Meta.table_name == CacheItem.Meta.table_name
    prefixes = sorted(found)
    for prefix in prefixes:  # no prefix starts another's, so a key names one kind
        assert not any(other != prefix and other.startswith(prefix) for other in prefixes)


@pytest.mark.parametrize(("key", "kind"), [
    (estimate_key(REF, 5), EstimateItem),
    (account_limit_key(Home("123456789012", "eu-west-1")), AccountLimitsItem),
    (function_concurrency_key(REF), FunctionLimitsItem),
    (rules_key(REF), RulesItem),
    (rule_names_key(REF), RuleNamesItem),
    (recursion_key(REF), RecursionItem),
    (schedule_key(REF, "default/nightly"), ScheduleItem),
    (kill_key(REF), KillItem),
    (spawn_key(SCOPE, "chain-1", 3), SpawnItem),
    (invocation_key(SCOPE, "req-1"), ReqItem),
    (run_key(SCOPE, "chain-1", 3), RunItem),
])
def test_each_key_format_starts_with_its_kinds_prefix(key: str, kind: type[ItemKind]) -> None:
    assert [k for p, k in kinds().items() if key.startswith(p)] == [kind]


ESTIMATE = {"value": 3, "invocations": 2.5, "period_s": 300, "avg_duration_ms": 120.0}


@pytest.mark.parametrize(("kind", "value", "valid"), [
    (EstimateItem, ESTIMATE, True),
    (EstimateItem, {**ESTIMATE, "observed_peak": 4, "claimed_concurrency": None}, True),
    (EstimateItem, {**ESTIMATE, "value": True}, False),  # a JSON true is no count
    (EstimateItem, {**ESTIMATE, "value": 3.0}, False),
    (EstimateItem, {**ESTIMATE, "period_s": 30}, False),
    (EstimateItem, {**ESTIMATE, "avg_duration_ms": 900_001}, False),
    (EstimateItem, {**ESTIMATE, "observed_peak": -1}, False),
    (EstimateItem, {"value": 3, "invocations": 2.5}, False),
    (AccountLimitsItem, {"limit": 1000, "unreserved": None}, True),
    (AccountLimitsItem, {"limit": "1000"}, False),
    (FunctionLimitsItem, {"reserved": None}, True),
    (FunctionLimitsItem, {}, False),  # null is "none reserved", absence is damage
    (FunctionLimitsItem, {"reserved": 10_000_001}, False),
    (RulesItem, {"enabled": False}, True),
    (RulesItem, {"enabled": True, "rule": "r", "target": None, "checked": ["r"]}, True),
    (RulesItem, {"enabled": True, "checked": None}, False),  # may be absent, never null
    (RulesItem, {"enabled": True, "checked": ["r", 1]}, False),
    (RulesItem, {"enabled": "yes"}, False),
    (RuleNamesItem, {"names": []}, True),
    (RuleNamesItem, {"names": "r"}, False),
    (RecursionItem, {"recursive_loop": "Allow"}, True),
    (RecursionItem, {"recursive_loop": "allow"}, False),
    (ScheduleItem, {"state": None, "target": None}, True),
    (ScheduleItem, {"state": ["ENABLED"]}, False),
    (KillItem, {"disabled": True}, True),
    (KillItem, {"disabled": False, "reason": "", "changed_at": 1e12, "changed_by": None}, True),
    (KillItem, {"disabled": True, "reason": None}, False),
    (KillItem, {"disabled": 1}, False),
    (KillItem, {"disabled": False, "changed_at": math.inf}, False),  # JSON 1e400 decodes so
    (ReqItem, {"chain_id": "c-1", "generation": 0}, True),  # no "v": version 1
    (ReqItem, {"v": None, "chain_id": "c-1", "generation": 0}, False),
    (ReqItem, {"v": 1, "chain_id": "c-1", "generation": 2, "parent_request_id": "p",
               "spawned_at": NOW, "chain_started_at": NOW - 60}, True),
    (ReqItem, {"chain_id": "c 1", "generation": 2}, False),
    (ReqItem, {"chain_id": "c-1", "generation": "2"}, False),
    (KillItem, ["disabled"], False),
    (KillItem, None, False),
])
def test_a_value_is_believed_only_as_its_kind_writes_it(
    kind: type[ItemKind], value: object, valid: bool
) -> None:
    assert kind.valid(value) is valid


@pytest.mark.parametrize(("value", "valid"), [
    ({"state": "pending", "owner": None, "token": "t", "claimed_at": NOW}, True),
    ({"state": "pending", "owner": "r", "token": "t", "claimed_at": NOW + 3600}, False),
    ({"state": "pending", "owner": 5, "token": "t", "claimed_at": NOW}, False),
    ({"state": "invoked", "invoked_at": NOW, "result": {"status_code": 202}}, True),
    ({"state": "invoked", "invoked_at": NOW}, False),
    ({"state": "invoked", "invoked_at": NOW, "result": [202]}, False),
    ({"state": "done", "claimed_at": NOW}, False),
    # A field of the other state is not this state's business (as before the kinds).
    ({"state": "pending", "claimed_at": NOW, "invoked_at": "", "result": []}, True),
    ({"state": "invoked", "claimed_at": True, "invoked_at": NOW, "result": {}}, True),
])
def test_a_spawn_record_needs_a_known_state_and_a_believable_time(value: dict, valid: bool) -> None:
    assert SpawnItem.valid(value, NOW, 5.0) is valid


def test_a_run_claim_from_the_future_is_not_believed() -> None:
    assert RunItem.valid({"runner": "r", "started_at": NOW + 4}, NOW, 5.0)
    assert not RunItem.valid({"runner": "r", "started_at": NOW + 6}, NOW, 5.0)
    assert not RunItem.valid({"runner": "r", "started_at": math.nan}, NOW, 5.0)
    assert not RunItem.valid({"started_at": NOW}, NOW, 5.0)


def test_parse_gives_the_typed_fields_and_ignores_undeclared_ones() -> None:
    fields = KillItem.parse({"disabled": True, "changed_by": "ops", "from_a_newer_writer": 1})
    assert fields is not None
    assert (fields.disabled, fields.changed_by, fields.reason, fields.changed_at) == (True, "ops", None, None)
    assert not hasattr(fields, "from_a_newer_writer")


class _ClaimedWhileWeAsked(MemoryStore):
    """Another execution's claim lands, stamped a moment later, while our create is on its way."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__()
        self.clock = clock

    def create(self, key: str, value: dict, keep_until: float, now: float) -> StoredItem | None:
        self.clock.advance(0.2)
        super().create(key, {"runner": "other", "started_at": self.clock.now()}, keep_until, now)
        return super().create(key, value, keep_until, now)


@pytest.mark.parametrize("policy", ["allow", "refuse"])
def test_a_claim_that_landed_while_ours_was_asked_is_believed_at_the_time_it_is_read(policy: str) -> None:
    clock = ManualClock(NOW)
    config = SiblingsConfig(max_clock_skew_seconds=0, on_guard_error=policy)
    claims = RunClaims(_ClaimedWhileWeAsked(clock), config, clock=clock)
    with pytest.raises(DuplicateSibling) as raised:
        claims.start(SCOPE, ChainMetadata("chain-1", 3, "parent"), "ours")
    assert raised.value.runner == "other"  # not "corrupt", and never overwritten (run twice)
