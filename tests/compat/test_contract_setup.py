"""The sosw contract, rows C01-C12: names, configuration, and the contexts sosw accepted.

One test per row of the contract table in docs/reference.md; each test's
name starts with the row's id, and ``test_contract_table.py`` checks that none is missing.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest

from siblings import SiblingsManager
from siblings.iam import RUNTIME_ACTIONS
from tests.compat.shapes import mock_context, only_payload, sosw_context
from tests.integration.siblings.support import SiblingsEnv

EMPTY = inspect.Parameter.empty


def signature(function: object) -> list[tuple[str, object]]:
    """(name, default) of each parameter a caller can pass by position or by keyword."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.VAR_KEYWORD)
    parameters = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
    return [(p.name, p.default) for p in parameters if p.kind in kinds]


def test_c01_sosw_names_and_signatures() -> None:
    """C01: every public name of sosw's manager exists with sosw's parameters and defaults."""
    assert signature(SiblingsManager.__init__) == [
        ("self", EMPTY), ("custom_config", None), ("kwargs", EMPTY)
    ]
    assert signature(SiblingsManager.spawn_sibling) == [
        ("self", EMPTY), ("lambda_context", EMPTY), ("payload", None), ("force", False)
    ]
    assert signature(SiblingsManager.any_events_rules_enabled) == [
        ("self", EMPTY), ("lambda_context", EMPTY)
    ]
    assert signature(SiblingsManager.get_approximate_concurrent_executions) == [
        ("self", EMPTY), ("minutes_back", 5), ("name", None)
    ]
    for method in (SiblingsManager.get_stats, SiblingsManager.reset_stats):
        assert signature(method) == [("self", EMPTY), ("recursive", True)]


def test_c02_settings_come_from_the_environment_and_custom_config(
    env: SiblingsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C02: ``SIBLINGS_*`` gives the defaults, ``custom_config`` wins; building a manager asks
    no config store (sosw read ``<function>_config``) and makes no AWS call at all."""
    monkeypatch.setenv("SIBLINGS_AUTO_SPAWNING", "true")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "worker")
    assert SiblingsManager().config.auto_spawning is True
    assert SiblingsManager(custom_config={"auto_spawning": False}).config.auto_spawning is False
    env.manager()
    assert env.recorder.count() == 0


def test_c03_other_components_keys_are_kept_and_ignored(env: SiblingsEnv) -> None:
    """C03: keys of other sosw components in ``custom_config`` are kept in ``config.extra``."""
    others = {"test": True, "init_clients": ["lambda"], "dynamo_db_config": {"table_name": "t"}}
    manager = env.manager({**others, "auto_spawning": True})
    assert manager.config.extra == others
    assert manager.config.auto_spawning is True
    assert manager.spawn_sibling(env.context())


def test_c04_unknown_keyword_arguments_are_refused() -> None:
    """C04: sosw's Processor ignored unknown keyword arguments; ours names them."""
    with pytest.raises(TypeError, match="unexpected keyword arguments: \\['test'\\]"):
        SiblingsManager(custom_config={"test": True}, test=True)
    with pytest.raises(TypeError, match="lamda_client"):
        SiblingsManager(lamda_client=object())


def test_c05_auto_spawning(env: SiblingsEnv) -> None:
    """C05: off by default; on, a function with no enabled rule spawns, and nothing is asked of
    EventBridge; strings are parsed (sosw took ``"false"`` as a truthy value)."""
    assert env.manager().config.auto_spawning is False
    assert env.manager({"auto_spawning": "false"}).config.auto_spawning is False
    manager = env.manager({"auto_spawning": True})
    assert manager.any_events_rules_enabled(env.context()) is True
    assert manager.spawn_sibling(env.context())
    assert env.recorder.count("events") == 0


def test_c06_the_shared_table_is_needed_or_switched_off(env: SiblingsEnv) -> None:
    """C06: without the table every spawn is refused (``guard_error``: the kill switch cannot
    be read); ``use_dynamodb: false`` spawns with process-local state only."""
    env.rule("schedule")
    missing = env.manager(config=env.config(table_name="not-created"))
    refused = missing.spawn_sibling(env.context())
    assert not refused and refused.reason == "guard_error"
    assert env.invoke_count() == 0
    assert env.manager({"use_dynamodb": False}).spawn_sibling(env.context())
    assert env.invoke_count() == 1


def test_c07_clients_are_made_on_first_use_or_injected(env: SiblingsEnv) -> None:
    """C07: no ``lambda_client``/``events_client``/``cloudwatch_client`` attributes; clients
    are injected as keyword arguments instead."""
    manager = env.manager(lambda_client=env.client("lambda"), events_client=env.client("events"))
    for name in ("lambda_client", "events_client", "cloudwatch_client"):
        assert not hasattr(manager, name)
    env.rule("schedule")
    assert manager.spawn_sibling(env.context())


def test_c08_iam_actions(env: SiblingsEnv) -> None:
    """C08: the role needs the new actions and none of sosw's list/statistics calls."""
    assert {
        "cloudwatch:GetMetricData",
        "events:ListRuleNamesByTarget",
        "events:DescribeRule",
        "lambda:InvokeFunction",
    } <= RUNTIME_ACTIONS
    env.rule("schedule")
    manager = env.manager({"max_concurrency": 10})
    assert manager.spawn_sibling(env.context())
    manager.get_approximate_concurrent_executions(name="worker")
    made = {f"{service}:{action}" for service, action in env.recorder.actions()}
    assert not made & {"monitoring:GetMetricStatistics", "events:ListRules", "events:ListTargetsByRule"}


@pytest.mark.parametrize("shape", ["class", "object"])
def test_c09_a_context_with_only_the_arn(env: SiblingsEnv, shape: str) -> None:
    """C09: a class or an object with only ``invoked_function_arn`` is a context: no request
    id, so every call starts a chain of its own; no remaining-time method, so no deadline."""
    env.rule("schedule")
    arn = env.function_arn
    context = sosw_context(arn) if shape == "class" else SimpleNamespace(invoked_function_arn=arn)
    manager = env.manager()
    first, second = manager.spawn_sibling(context), manager.spawn_sibling(context)
    assert first and second and first.chain_id != second.chain_id
    assert (first.generation, second.generation, first.parent_request_id) == (1, 1, None)
    assert env.invoke_count() == 2


def test_c10_a_magicmock_with_the_arn(env: SiblingsEnv) -> None:
    """C10: a ``MagicMock`` with ``invoked_function_arn`` set; what the mock made up (request
    id, remaining time) counts as absent."""
    env.rule("schedule")
    result = env.manager().spawn_sibling(mock_context(env.function_arn), payload={"n": 1})
    assert result and result.parent_request_id is None
    assert only_payload(env) == {"n": 1}


def test_c11_a_bare_magicmock_is_refused_before_any_call(env: SiblingsEnv) -> None:
    """C11: sosw invoked ``AWS_LAMBDA_FUNCTION_NAME`` for a bare ``MagicMock()`` (forced) or
    compared the mock with the rules' targets (never equal); ours needs the ARN."""
    from unittest.mock import MagicMock

    manager = env.manager()
    for force in (False, True):
        with pytest.raises(TypeError, match="invoked_function_arn"):
            manager.spawn_sibling(MagicMock(), force=force)
    with pytest.raises(TypeError, match="invoked_function_arn"):
        manager.any_events_rules_enabled(MagicMock())
    assert env.recorder.count() == 0


@pytest.mark.parametrize(
    "arn",
    ["arn:aws:lambda:us-west-2:123:function:my-test-func1", "my-test-func1", "not an arn"],
)
def test_c12_the_arn_must_be_a_lambda_function_arn(env: SiblingsEnv, arn: str) -> None:
    """C12: sosw compared ``invoked_function_arn`` as any string (its tests use account
    ``123``); ours invokes through it, so it must be a function ARN (12-digit account)."""
    manager = env.manager({"auto_spawning": True})
    with pytest.raises(ValueError, match="invoked_function_arn"):
        manager.spawn_sibling(sosw_context(arn), force=True)
    with pytest.raises(ValueError, match="invoked_function_arn"):
        manager.any_events_rules_enabled(sosw_context(arn))
    assert env.recorder.count() == 0
