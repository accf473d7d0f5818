"""One parser for every source of settings: no value can silently switch a guard off."""

from __future__ import annotations

from typing import Any

import pytest

from siblings import SiblingsManager
from siblings.config import GuardErrorPolicy, SiblingsConfig


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("false", False), ("No", False), ("0", False), ("off", False), (0, False),
     ("true", True), ("YES", True), ("1", True), (1, True), (True, True)],
)
def test_booleans_from_custom_config_and_environment(raw: Any, expected: bool) -> None:
    assert SiblingsConfig.from_env({}, auto_spawning=raw).auto_spawning is expected
    if isinstance(raw, str):
        env = {"SIBLINGS_AUTO_SPAWNING": raw}
        assert SiblingsConfig.from_env(env).auto_spawning is expected


def test_the_sosw_string_false_keeps_the_eventbridge_guard_on() -> None:
    manager = SiblingsManager(custom_config={"auto_spawning": "false", "use_dynamodb": "no"})
    assert manager.config.auto_spawning is False and manager.config.use_dynamodb is False


def test_numeric_strings_become_numbers() -> None:
    config = SiblingsConfig.from_env({}, max_concurrency="50", cache_ttl_seconds="30.5", minutes_back="10")
    assert (config.max_concurrency, config.cache_ttl_seconds, config.minutes_back) == (50, 30.5, 10)
    assert SiblingsConfig.from_env({}, max_concurrency="none").max_concurrency is None
    assert SiblingsConfig.from_env({}, on_guard_error="ALLOW").on_guard_error is GuardErrorPolicy.ALLOW


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("spawn_record_ttl_seconds", -1, ValueError),  # would switch idempotency off
        ("spawn_record_ttl_seconds", 0, ValueError),
        ("max_generations", 0, ValueError),
        ("max_generations", "many", ValueError),
        ("max_concurrency", -3, ValueError),
        ("cache_ttl_seconds", "nan", ValueError),
        ("cache_ttl_seconds", float("inf"), ValueError),
        ("lease_seconds", -1, ValueError),
        ("max_payload_bytes", 10**9, ValueError),
        ("auto_spawning", "maybe", ValueError),
        ("auto_spawning", 2, TypeError),
        ("auto_spawning", [], TypeError),
        ("max_concurrency", [5], TypeError),
        ("max_concurrency", 5.5, TypeError),
        ("max_concurrency", True, TypeError),
        ("table_name", 123, TypeError),
        ("on_guard_error", "ignore", ValueError),
    ],
)
def test_bad_values_raise_naming_the_key(key: str, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=key):
        SiblingsConfig.from_env({}, **{key: value})
    with pytest.raises(error, match=key):
        SiblingsManager(custom_config={key: value})


def test_the_typed_constructor_takes_native_values_only() -> None:
    with pytest.raises(TypeError, match="auto_spawning"):
        SiblingsConfig(auto_spawning="false")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="spawn_record_ttl_seconds"):
        SiblingsConfig(spawn_record_ttl_seconds=-1)


def test_other_components_keys_are_kept_aside() -> None:
    config = SiblingsConfig.from_env({}, init_clients=["Siblings"], shutdown_period=10)
    assert config.extra == {"init_clients": ["Siblings"], "shutdown_period": 10}
