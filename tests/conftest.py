"""Shared fixtures: one real moto server over HTTP on 127.0.0.1 for the whole session."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from estimator.clock import ManualClock
from estimator.identity import forget_homes
from siblings.local.calls import CallRecorder
from siblings.local.server import LOCAL_CREDENTIALS, LOCAL_REGION, LocalAwsServer
from tests.helpers import minute_clock

# Nothing in the suite may reach real AWS: dummy credentials and region for any client that
# slips past a fixture, and no instance-metadata lookups.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
        "AWS_SESSION_TOKEN": LOCAL_CREDENTIALS["aws_session_token"],
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
)
for _name in list(os.environ):
    if _name.startswith("SIBLINGS_") or _name.startswith("AWS_ENDPOINT_URL"):
        del os.environ[_name]
# A client made without an explicit endpoint (a test that forgot one) goes to a closed loopback
# port and fails at once, instead of trying AWS's public endpoints.
os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"


@dataclass
class Aws:
    """The running moto server, its call recorder, and a session pointed at it."""

    server: LocalAwsServer
    recorder: CallRecorder
    session: boto3.Session

    @property
    def endpoint_url(self) -> str:
        """The server's ``http://127.0.0.1:<port>``."""
        return self.server.endpoint_url

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on the server."""
        return self.session.client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]


@pytest.fixture(autouse=True)
def _accounts_asked_per_test() -> None:
    """Each test learns the clients' account itself (one STS call where no ``account_id`` is
    set), so the calls it counts do not depend on which tests ran before it in this process."""
    forget_homes()


@pytest.fixture
def clock() -> ManualClock:
    """A virtual clock for the test's estimators and managers (see :func:`minute_clock`)."""
    return minute_clock()


class _SdkTime:
    """Stands in for the ``time`` module in ``botocore.endpoint``: retry back-offs pass on
    ``clock`` instead of the wall clock."""

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock

    def sleep(self, seconds: float) -> None:
        self._clock.sleep(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def sdk_sleeps_on_clock(clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """botocore's retry sleeps pass on the test's :func:`clock` (the retries still happen)."""
    import botocore.endpoint

    monkeypatch.setattr(botocore.endpoint, "time", _SdkTime(clock))
    return clock


@pytest.fixture(scope="session")
def aws_server() -> Iterator[tuple[LocalAwsServer, CallRecorder]]:
    """Start the moto server once per test session, on a free loopback port."""
    recorder = CallRecorder()
    server = LocalAwsServer(middleware=recorder.wrap).start()
    try:
        yield server, recorder
    finally:
        server.stop()


@pytest.fixture
def aws(aws_server: tuple[LocalAwsServer, CallRecorder]) -> Iterator[Aws]:
    """A clean server for each test: state reset, counts zeroed."""
    server, recorder = aws_server
    server.reset()
    recorder.reset()
    recorder.listeners.clear()
    session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
    yield Aws(server=server, recorder=recorder, session=session)
    recorder.listeners.clear()
