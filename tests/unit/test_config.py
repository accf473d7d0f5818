"""Config: defaults, SIBLINGS_* environment variables, validation."""

from __future__ import annotations

import logging

import pytest

from estimator.config import Config
from siblings.config import SiblingsConfig


def test_defaults() -> None:
    config = SiblingsConfig()
    assert config.cache_ttl_seconds == 60
    assert config.on_guard_error == "refuse"
    assert config.max_concurrency is None


def test_environment_is_parsed_by_type() -> None:
    config = SiblingsConfig.from_env(
        {
            "SIBLINGS_TABLE_NAME": "shared",
            "SIBLINGS_CACHE_TTL_SECONDS": "30",
            "SIBLINGS_MAX_CONCURRENCY": "50",
            "SIBLINGS_AUTO_SPAWNING": "yes",
            "SIBLINGS_PAYLOAD_BUCKET": "none",
            "SIBLINGS_ON_GUARD_ERROR": "allow",
        }
    )
    assert config.table_name == "shared"
    assert config.cache_ttl_seconds == 30.0
    assert config.max_concurrency == 50
    assert config.auto_spawning is True
    assert config.payload_bucket is None
    assert config.on_guard_error == "allow"


def test_arguments_win_and_unknown_keys_are_kept() -> None:
    config = Config.from_env({"SIBLINGS_MINUTES_BACK": "10"}, minutes_back=3, init_clients=["x"])
    assert config.minutes_back == 3
    assert config.extra == {"init_clients": ["x"]}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SIBLINGS_MINUTES_BACK": "five"}, "SIBLINGS_MINUTES_BACK"),
        ({"SIBLINGS_AUTO_SPAWNING": "maybe"}, "SIBLINGS_AUTO_SPAWNING"),
        ({"SIBLINGS_MINUTES_BACK": "0"}, "minutes_back"),
        ({"SIBLINGS_ON_GUARD_ERROR": "ignore"}, "on_guard_error"),
        ({"SIBLINGS_CACHE_TTL_SECONDS": "-1"}, "cache_ttl_seconds"),
    ],
)
def test_bad_environment_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SiblingsConfig.from_env(env)


def test_wrong_types_in_code() -> None:
    with pytest.raises(TypeError, match="max_concurrency"):
        SiblingsConfig(max_concurrency="10")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="table_name"):
        Config(table_name="x")


def test_records_shorter_than_the_longest_deferral_are_warned_of(caplog: pytest.LogCaptureFixture) -> None:
    # 20 deferrals of up to an hour keep a step waiting 20 h: records kept for 7 h would be
    # gone before its last relay, and a late retry of its parent would spawn the step again.
    deferring = {"defer_when_busy": True, "max_deferrals": 20, "defer_max_seconds": 3600}
    with caplog.at_level(logging.WARNING, logger="siblings.config"):
        SiblingsConfig(**deferring, spawn_record_ttl_seconds=7 * 3600)
    assert "max_deferrals x defer_max_seconds = 72000" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="siblings.config"):
        SiblingsConfig(**deferring, spawn_record_ttl_seconds=72_000)
        SiblingsConfig(max_deferrals=20, defer_max_seconds=3600, spawn_record_ttl_seconds=7 * 3600)
    assert caplog.text == ""  # long enough, or no deferral at all
