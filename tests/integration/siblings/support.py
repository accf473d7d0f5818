"""Builders for the siblings tests: a function, rules, contexts and managers on a moto server."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import boto3

from estimator.clock import ManualClock
from estimator.store import DynamoStore
from siblings import SiblingsManager
from siblings.config import SiblingsConfig
from siblings.local.calls import Call, CallRecorder
from siblings.local.provision import create_function
from siblings.local.server import LOCAL_CREDENTIALS
from tests.helpers import minute_clock

FUNCTION = "worker"
REGION = "us-east-1"


@dataclass
class FakeContext:
    """The attributes of a Lambda context object the manager reads."""

    invoked_function_arn: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    remaining_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        """Fixed remaining time."""
        return self.remaining_ms


class InvokeLog:
    """Server-side capture of every Invoke: the function path and the event body."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def listener(self, call: Call, environ: dict[str, Any], body: bytes) -> None:
        """A ``CallRecorder`` listener."""
        if call != ("lambda", "Invoke"):
            return
        target = unquote(environ.get("PATH_INFO", "").split("/")[3])
        kind = environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse")
        with self._lock:
            self.calls.append((target, kind, json.loads(body) if body else {}))

    @property
    def events(self) -> list[dict[str, Any]]:
        """The event of each Invoke, in arrival order."""
        with self._lock:
            return [event for _, _, event in self.calls]


@dataclass
class SiblingsEnv:
    """A moto server with the shared table and a function, and helpers around them."""

    endpoint_url: str
    session: boto3.Session
    recorder: CallRecorder
    invokes: InvokeLog
    function_arn: str
    clock: ManualClock = field(default_factory=minute_clock)
    """The time of every manager made here (a test moves it): waits cost nothing, TTLs expire
    when the test says, and the metric window stays put (see :func:`minute_clock`)."""

    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        """A boto3 client on the server (one per service)."""
        if service not in self._clients:
            self._clients[service] = self.session.client(  # type: ignore[call-overload]
                service, endpoint_url=self.endpoint_url
            )
        return self._clients[service]

    def config(self, **overrides: Any) -> SiblingsConfig:
        """A config on the server with fast Invoke retries."""
        values: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": REGION,
            # As template.yaml sets it: no STS call (tests of that path unset it).
            "account_id": "123456789012",
            "invoke_backoff_seconds": 0.01,
            "invoke_backoff_max_seconds": 0.05,
            "lease_wait_seconds": 2.0,
        }
        values.update(overrides)
        return SiblingsConfig(**values)

    def manager(
        self, custom_config: dict[str, Any] | None = None, **kwargs: Any
    ) -> SiblingsManager:
        """A manager with its own caches (a fresh "container") on the server, on :attr:`clock`."""
        kwargs.setdefault("config", self.config())
        kwargs.setdefault("session", self.session)
        kwargs.setdefault("clock", self.clock)
        return SiblingsManager(custom_config, **kwargs)

    def context(self, qualifier: str | None = None, **kwargs: Any) -> FakeContext:
        """A context of one execution of the function (a new request id each time)."""
        arn = f"{self.function_arn}:{qualifier}" if qualifier else self.function_arn
        return FakeContext(invoked_function_arn=arn, **kwargs)

    def rule(self, name: str, state: str = "ENABLED", target: str | None = None) -> None:
        """An EventBridge rule on the default bus targeting the function (or ``target``)."""
        events = self.client("events")
        events.put_rule(Name=name, ScheduleExpression="rate(1 minute)", State=state)
        events.put_targets(Rule=name, Targets=[{"Id": "t", "Arn": target or self.function_arn}])

    def alias(self, name: str) -> None:
        """Publish a version and point alias ``name`` at it."""
        lam = self.client("lambda")
        version = lam.publish_version(FunctionName=FUNCTION)["Version"]
        lam.create_alias(FunctionName=FUNCTION, Name=name, FunctionVersion=version)

    def bucket(self, name: str = "payloads") -> str:
        """An S3 bucket."""
        self.client("s3").create_bucket(Bucket=name)
        return name

    def invoke_count(self) -> int:
        """Invokes seen by the server."""
        return self.recorder.count("lambda", "Invoke")


_session_lock = threading.Lock()
_sessions: list[boto3.Session] = []


def shared_session() -> boto3.Session:
    """One session for every siblings test: clients are much cheaper to make from a warm one."""
    with _session_lock:
        if not _sessions:
            _sessions.append(boto3.Session(region_name=REGION, **LOCAL_CREDENTIALS))
        return _sessions[0]


def build_env(endpoint_url: str, recorder: CallRecorder) -> SiblingsEnv:
    """Create the table and the function, zero the counts, start capturing Invokes."""
    session = shared_session()
    config = SiblingsConfig(endpoint_url=endpoint_url, region_name=REGION)
    DynamoStore(config, session=session).ensure_table()
    invokes = InvokeLog()
    env = SiblingsEnv(endpoint_url, session, recorder, invokes, "")
    env.function_arn = create_function(env.client("lambda"), env.client("iam"), FUNCTION)
    recorder.listeners.append(invokes.listener)
    recorder.reset()
    return env
