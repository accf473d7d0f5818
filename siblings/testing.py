"""Test your own handler: a realistic Lambda context and a pytest fixture (the ``local`` extra).

Installed with ``lambda-siblings[local]``, this module is a pytest plugin (entry point
``pytest11``): the ``local_aws`` fixture is there in every test, no import needed. Elsewhere,
``pytest -p siblings.testing`` or ``pytest_plugins = ["siblings.testing"]`` in a conftest.

``local_aws`` is a started :class:`~siblings.local.account.LocalAccount`: the embedded AWS on
127.0.0.1 behind AWS's quotas, the shared table, a function and its ENABLED EventBridge rule,
with the process environment pointing boto3 and the library at it for the test's duration::

    from siblings.testing import run_handler

    def test_my_handler_chains(local_aws):
        check = run_handler(local_aws, "my_app.handler:lambda_handler", {"cursor": 0})
        assert check.passed and check.max_generation >= 1

Nothing here imports moto until the fixture is used, so loading the plugin costs nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from estimator.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from siblings.local.account import LocalAccount
    from siblings.local.context import LambdaContext
    from siblings.local.handler_run import ChainCheck

__all__ = ["lambda_context", "local_aws", "run_handler"]

_ACCOUNT = "123456789012"
_REGION = "us-east-1"


def lambda_context(
    function_name: str = "my-function",
    *,
    remaining_ms: int = 60_000,
    request_id: str | None = None,
    qualifier: str | None = None,
    memory_mb: int = 128,
    clock: Clock = SYSTEM_CLOCK,
) -> LambdaContext:
    """A context shaped like Lambda's Python runtime's, whose remaining time really runs down.

    ``invoked_function_arn`` is a well-formed ARN (with ``qualifier``, an alias or version),
    ``aws_request_id`` a fresh UUID unless given, ``get_remaining_time_in_millis()`` counts
    down from ``remaining_ms`` on ``clock`` (a :class:`~estimator.clock.ManualClock` in a test
    makes time move only when the test says so).
    """
    from siblings.local.context import LambdaContext

    arn = f"arn:aws:lambda:{_REGION}:{_ACCOUNT}:function:{function_name}"
    return LambdaContext(
        function_name=function_name,
        function_version=qualifier if qualifier and qualifier[0].isdigit() else "$LATEST",
        invoked_function_arn=f"{arn}:{qualifier}" if qualifier else arn,
        memory_limit_in_mb=memory_mb,
        aws_request_id=request_id or str(uuid.uuid4()),
        deadline=clock.monotonic() + remaining_ms / 1000.0,
        clock=clock.monotonic,
    )


@pytest.fixture
def local_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalAccount]:
    """A started local account (server, table, function ``my-function`` and its rule), the
    environment pointing at it; stopped after the test."""
    import estimator.estimator as estimator_module
    import siblings.handler as handler_module
    from siblings.local.account import AccountSettings, LocalAccount

    account = LocalAccount(AccountSettings(timeout_seconds=2.0))
    with account:
        for name, value in account.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        # The library's per-process defaults read the environment once: start from none.
        monkeypatch.setattr(estimator_module, "_default_estimators", {})
        monkeypatch.setattr(handler_module, "_default", None)
        yield account


def run_handler(
    account: LocalAccount,
    handler: str,
    event: Mapping[str, Any] | None = None,
    *,
    timeout: float = 60.0,
    max_generations: int | None = None,
) -> ChainCheck:
    """Run ``handler`` (``package.module:function``) on ``account`` from ``event``; the check.

    The chain runs to its end (or ``timeout``); :class:`~siblings.local.handler_run.ChainCheck`
    says whether each step worked once, no chain ran away and no spawn was lost.
    """
    from siblings.config import SiblingsConfig
    from siblings.local.handler_run import run_handler as run

    limit = max_generations if max_generations is not None else SiblingsConfig.from_env().max_generations
    return run(account, handler, dict(event or {}), timeout=timeout, max_generations=limit)
