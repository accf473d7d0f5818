"""How a spawn answers Lambda's Invoke errors, on the moto server (the table, the function)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from siblings import SpawnFailed
from tests.integration.siblings.support import SiblingsEnv


class FailingInvoke:
    """The server's Lambda client, except that every Invoke answers ``code`` with ``status``."""

    def __init__(self, real: Any, code: str, status: int) -> None:
        self._real = real
        self.code, self.status = code, status
        self.invokes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        """Fail as Lambda would."""
        self.invokes += 1
        response: Any = {
            "Error": {"Code": self.code, "Message": self.code},
            "ResponseMetadata": {"HTTPStatusCode": self.status},
        }
        raise ClientError(response, "Invoke")


def test_recursive_invocation_exception_is_the_recursive_loop_refusal(env: SiblingsEnv) -> None:
    env.rule("schedule")
    lam = FailingInvoke(env.client("lambda"), "RecursiveInvocationException", 400)
    manager = env.manager(lambda_client=lam)
    context = env.context()
    result = manager.spawn_sibling(context, {"cursor": 1})
    assert not result and result.refused and result.reason == "recursive_loop"
    assert "RecursiveLoop: Allow" in result.detail
    assert lam.invokes == 1  # not retried
    assert manager.stats.get("refused_recursive_loop") == 1 and not manager.stats.get("failed")
    # The step's claim was given back: a later try of the same execution may spawn.
    again = env.manager().spawn_sibling(context, {"cursor": 1})
    assert again.spawned and not again.duplicate


@pytest.mark.parametrize("code", ["KMSAccessDeniedException", "InvalidZipFileException"])
def test_a_permanent_error_fails_at_once_naming_the_cause(env: SiblingsEnv, code: str) -> None:
    env.rule("schedule")
    lam = FailingInvoke(env.client("lambda"), code, 502)
    manager = env.manager(lambda_client=lam)
    with pytest.raises(SpawnFailed, match=code) as caught:
        manager.spawn_sibling(env.context(), {"cursor": 1})
    assert lam.invokes == 1 and caught.value.attempts == 1
    assert "permanent" in str(caught.value) and manager.stats["failed"] == 1
