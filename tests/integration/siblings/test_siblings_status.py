"""``siblings status`` reads the same keys the manager writes, aliases included."""

from __future__ import annotations

import json

import pytest

from siblings import spawning_status
from siblings.cli import main
from tests.integration.siblings.support import FUNCTION, REGION, SiblingsEnv


def status_json(env: SiblingsEnv, capsys: pytest.CaptureFixture[str], function: str) -> dict:
    code = main(["status", "--endpoint-url", env.endpoint_url, "--region", REGION, function, "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    return json.loads(out)


def test_status_of_an_alias_shows_the_rule_state_cached_for_that_alias(
    env: SiblingsEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env.alias("prod")
    env.rule("prod-schedule", target=f"{env.function_arn}:prod")
    assert env.manager().spawn_sibling(env.context(qualifier="prod"))  # caches rules#worker:prod
    shown = status_json(env, capsys, f"{FUNCTION}:prod")
    assert shown["rules"] is not None and shown["rules"]["enabled"] is True
    assert shown["rules"]["rule"] == "prod-schedule"
    assert spawning_status(f"{env.function_arn}:prod", config=env.config(), session=env.session).rules
    # The unqualified function has no cached state of its own: nothing was asked for it.
    assert status_json(env, capsys, FUNCTION)["rules"] is None
