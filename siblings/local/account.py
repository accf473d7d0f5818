"""A local AWS account for *your* handler: the embedded server, the shared table, a function.

:class:`LocalAccount` is what ``siblings local``, ``siblings simulate --handler`` and the
``siblings.testing`` fixture share: a moto server on 127.0.0.1 behind AWS's default API quotas
(:mod:`siblings.local.quota`), the local Lambda runtime (:mod:`siblings.local.runtime`) in front
of it, and, provisioned on start, the shared table, one function and the ENABLED EventBridge
rule that lets it spawn. Without the rule every spawn is refused (``rules_disabled``), without
the table too (``guard_error``): a first run that should spawn needs both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3

from estimator.estimator import ensure_table
from siblings.config import SiblingsConfig
from siblings.local.calls import CallRecorder
from siblings.local.middleware import Middleware, compose
from siblings.local.provision import create_function, create_schedule_rule
from siblings.local.quota import QuotaLayer
from siblings.local.runtime import Handler, InvocationRecord, LocalLambdaRuntime
from siblings.local.server import LOCAL_CREDENTIALS, LOCAL_REGION, LocalAwsServer, local_session


@dataclass(frozen=True)
class AccountSettings:
    """What :class:`LocalAccount` creates, and how the server behaves."""

    function_name: str = "my-function"
    table_name: str = "lambda-siblings"
    timeout_seconds: float = 3.0
    """The function's deadline (the local runtime allows less than Lambda's 1 s minimum)."""
    port: int = 0
    """0: a free port."""
    quotas: bool = True
    """AWS's default API quotas in front of moto (throttling as AWS throttles)."""

    @property
    def rule_name(self) -> str:
        """The ENABLED schedule rule that targets the function (what lets it spawn)."""
        return f"{self.function_name}-schedule"[:64]


class LocalAccount:
    """The embedded AWS with a table, a function and its rule; a context manager.

    ``faults``, given the runtime, builds middleware that sits between the quota layer and the
    runtime (the simulator's fault injectors). :meth:`environment` is what points boto3 and the
    library at the server.
    """

    def __init__(
        self,
        settings: AccountSettings | None = None,
        *,
        faults: Callable[[LocalLambdaRuntime], Middleware] | None = None,
    ) -> None:
        self.settings = settings or AccountSettings()
        self.recorder = CallRecorder()
        self.quota = QuotaLayer(enabled=self.settings.quotas)
        self.runtime = LocalLambdaRuntime(default_timeout_seconds=self.settings.timeout_seconds)
        self.server = LocalAwsServer(
            port=self.settings.port,
            middleware=compose(
                self.recorder.wrap,
                self.quota.wrap,
                faults(self.runtime) if faults is not None else None,
                self.runtime.wrap,
            ),
        )
        self.session: boto3.Session = local_session()
        self.function_arn = ""

    # --- lifecycle ---
    def start(self) -> LocalAccount:
        """Start the server, create the resources, start the runtime; returns self."""
        self.server.start()
        try:
            self.server.reset()  # moto keeps its state per process: start from an empty account
            self._provision()
            self.runtime.start(self.client("cloudwatch"))
        except BaseException:
            self.server.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the runtime (queued events stay unrun) and the server."""
        self.runtime.stop()
        self.server.stop()

    def __enter__(self) -> LocalAccount:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _provision(self) -> None:
        settings = self.settings
        ensure_table(self.config(), session=self.session)
        self.function_arn = create_function(
            self.client("lambda"),
            self.client("iam"),
            settings.function_name,
            timeout_seconds=max(1, round(settings.timeout_seconds)),
            environment={"SIBLINGS_TABLE_NAME": settings.table_name},
        )
        create_schedule_rule(self.client("events"), settings.rule_name, self.function_arn)

    # --- pointing code at it ---
    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return self.server.endpoint_url

    def environment(self) -> dict[str, str]:
        """The variables that point boto3 and the library at this server.

        ``AWS_ENDPOINT_URL`` is boto3's own (botocore >= 1.31 reads it for every client), so a
        handler's *own* clients reach the server too; ``SIBLINGS_ENDPOINT_URL`` is set as well
        because the library's settings win over boto3's and an inherited value must not point
        the guards elsewhere.
        """
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "SIBLINGS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": LOCAL_REGION,
            "SIBLINGS_REGION_NAME": LOCAL_REGION,
            "SIBLINGS_TABLE_NAME": self.settings.table_name,
            "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
            "AWS_SESSION_TOKEN": LOCAL_CREDENTIALS["aws_session_token"],
        }

    def config(self, **options: Any) -> SiblingsConfig:
        """A :class:`SiblingsConfig` on this server (``options`` override fields)."""
        return SiblingsConfig(
            endpoint_url=self.endpoint_url,
            region_name=LOCAL_REGION,
            table_name=self.settings.table_name,
            **options,
        )

    def client(self, service: str) -> Any:
        """A boto3 client on this server."""
        return self.session.client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

    # --- running a handler ---
    def register(
        self, handler: Handler | None = None, *, factory: Callable[[], Handler] | None = None
    ) -> None:
        """Run ``handler`` (or one built per cold start by ``factory``) for the function."""
        self.runtime.register(
            self.settings.function_name,
            handler,
            factory=factory,
            timeout_seconds=self.settings.timeout_seconds,
        )

    def invoke(self, event: Mapping[str, Any] | None = None) -> str:
        """Start the function with ``event`` as EventBridge would (async); its request id."""
        return self.runtime.invoke_async(self.settings.function_name, dict(event or {}))

    def wait(self, timeout: float = 60.0) -> bool:
        """Wait until nothing runs or waits (a chain finished); False on ``timeout``."""
        return self.runtime.wait_idle(timeout)

    def invocations(self) -> list[InvocationRecord]:
        """Every invocation so far (the seed and each sibling), in start order."""
        return self.runtime.invocations()
