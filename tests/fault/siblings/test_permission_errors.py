"""A permission error on a guard's item is not an outage (issue 18.3): no stand-in, a refusal
per ``on_guard_error``, said once in the log with the key."""

from __future__ import annotations

import logging

import pytest

from siblings import disable_spawning
from siblings.cli import main
from tests.fault.siblings.conftest import FaultInjector
from tests.integration.siblings.support import FUNCTION, SiblingsEnv

Faulty = tuple[SiblingsEnv, FaultInjector]


def deny_kill_switch_reads(faults: FaultInjector) -> None:
    """An IAM policy that does not let this role read ``kill#`` items (both ways they are read)."""
    for action in ("GetItem", "BatchGetItem"):
        faults.fail("dynamodb", action, 400, "AccessDeniedException", key_prefix="kill#")


def test_access_denied_on_the_kill_switch_refuses_and_is_logged_once_with_the_key(
    faulty: Faulty, caplog: pytest.LogCaptureFixture
) -> None:
    env, faults = faulty
    env.rule("schedule")
    manager = env.manager()
    assert manager.spawn_sibling(env.context(), event={}).reason == "spawned"  # switch read: on
    endpoint = ["--endpoint-url", env.endpoint_url, "--region", "us-east-1"]
    assert main(["disable", FUNCTION, "--reason", "stop", *endpoint]) == 0
    deny_kill_switch_reads(faults)
    with caplog.at_level(logging.WARNING):
        refused = [manager.spawn_sibling(env.context(), event={}) for _ in range(3)]
    # The switch read a minute ago must not stand in: the operator may just have flipped it.
    assert [r.reason for r in refused] == ["guard_error"] * 3
    assert env.invoke_count() == 1
    said = [r for r in caplog.records if "kill#" in r.getMessage() and "AccessDenied" in r.getMessage()]
    assert len(said) == 1


def test_access_denied_on_the_kill_switch_follows_on_guard_error_allow(faulty: Faulty) -> None:
    env, faults = faulty
    env.rule("schedule")
    disable_spawning(FUNCTION, reason="stop", config=env.config(), session=env.session)
    deny_kill_switch_reads(faults)
    allowed = env.manager({"on_guard_error": "allow"}).spawn_sibling(env.context(), event={})
    assert allowed.reason == "spawned" and "error" in allowed.guards["kill_switch"]
