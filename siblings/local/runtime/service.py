""":class:`LocalLambdaRuntime`: the scheduler with functions registered and an ``Invoke`` API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from siblings.local.metrics import MetricsPublisher
from siblings.local.runtime.invoke_api import InvokeApi, InvokeError, parse_function_ref
from siblings.local.runtime.logs import LogFormat
from siblings.local.runtime.records import Handler
from siblings.local.runtime.sandbox import Registration
from siblings.local.runtime.scheduler import Scheduler
from siblings.local.server import WsgiApp

# A trigger reaches moto unsigned; moto reads the Region (and account) from this header.
_LOCAL_AUTH = (
    "AWS4-HMAC-SHA256 Credential=testing/20240101/{region}/lambda/aws4_request, "
    "SignedHeaders=host, Signature=0"
)


class LocalLambdaRuntime(Scheduler):
    """Runs registered Python handlers for the ``Invoke`` calls a moto server receives.

    Use ``runtime.wrap`` as (part of) the server's middleware, :meth:`register` a handler per
    function (the function must also exist in moto: see
    :func:`siblings.local.provision.create_function`), then :meth:`start` with a CloudWatch
    client pointed at the same server so metrics get published.

    ``account_concurrency`` is the account's concurrency quota (1000 on AWS; lower by default
    because each execution is a thread here). ``request_ids`` makes request ids repeatable.
    ``metrics_clock`` (epoch seconds) stamps published datums and ``metric_duration_scale``
    multiplies published durations: a simulation that compresses CloudWatch time passes a
    clock running ``s`` times faster and ``s``, so Little's law still holds in metric time.
    """

    def __init__(
        self,
        *,
        account_concurrency: int = 200,
        retry_delays: Iterable[float] = (0.5, 1.0),
        default_timeout_seconds: float | None = None,
        metrics_flush_seconds: float = 1.0,
        metrics_clock: Callable[[], float] = time.time,
        metric_duration_scale: float = 1.0,
        request_ids: Callable[[], str] | None = None,
        region_name: str = "us-east-1",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            account_concurrency=account_concurrency,
            retry_delays=retry_delays,
            metrics_clock=metrics_clock,
            metric_duration_scale=metric_duration_scale,
            request_ids=request_ids,
            clock=clock,
        )
        self.default_timeout_seconds = default_timeout_seconds
        self.metrics_flush_seconds = metrics_flush_seconds
        self.region_name = region_name
        self._api = InvokeApi(self)

    def register(
        self,
        function_name: str,
        handler: Handler | None = None,
        *,
        factory: Callable[[], Handler] | None = None,
        timeout_seconds: float | None = None,
        memory_mb: int | None = None,
        reserved_concurrency: int | None = None,
        log_format: LogFormat | str | None = None,
    ) -> None:
        """Run ``handler`` for Invokes of ``function_name`` (any qualifier).

        Give either ``handler`` (shared by every container) or ``factory``, called once per
        cold start to build a container's handler (its clients, caches...).
        ``timeout_seconds``/``memory_mb`` override the function's configuration in moto
        (``Timeout``, ``MemorySize``), e.g. for deadlines shorter than Lambda's 1 s minimum.
        ``reserved_concurrency`` applies unless the server has one set for the function.
        ``log_format`` (``"Text"`` or ``"JSON"``, the function's ``LoggingConfig.LogFormat``)
        writes the handler's stdout and log records to ``runtime.logs.events(function_name)``
        as Lambda's Python runtime does (see :mod:`siblings.local.runtime.logs`).
        """
        if (handler is None) == (factory is None):
            raise TypeError("register() takes exactly one of handler or factory")
        if reserved_concurrency is not None and reserved_concurrency < 0:
            raise ValueError("reserved_concurrency must be >= 0")
        build: Callable[[], Handler] = factory if factory is not None else (lambda: handler)  # type: ignore[assignment,return-value]
        with self._cond:
            self._functions[function_name] = Registration(
                function_name, build, timeout_seconds, memory_mb, reserved_concurrency,
                log_format=None if log_format is None else LogFormat(log_format),
            )

    def set_reserved_concurrency(self, function_name: str, value: int | None) -> None:
        """Change the registration's reserved concurrency (``None``: no cap)."""
        with self._cond:
            self._functions[function_name].reserved_concurrency = value
            self._cond.notify_all()

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """Return ``app`` with Invokes of registered functions handled by this runtime."""
        return self._api.wrap(app)

    def start(self, cloudwatch: Any | None = None) -> LocalLambdaRuntime:
        """Start dispatching; with ``cloudwatch`` (a client on the server), publish metrics."""
        if cloudwatch is not None and self.metrics is None:
            self.metrics = MetricsPublisher(cloudwatch, self.metrics_flush_seconds)
            self.metrics.start()
        self.start_dispatching()
        return self

    def stop(self) -> None:
        """Stop dispatching (queued events stay unrun) and flush metrics."""
        self.stop_dispatching()
        if self.metrics is not None:
            self.metrics.stop()

    def invoke_async(self, function_name: str, event: Any, qualifier: str | None = None) -> str:
        """Queue an event as a trigger inside AWS would (EventBridge, an SNS topic...).

        Not an ``Invoke`` API call: nothing is counted at the server or throttled by quotas.
        Returns the request id. Raises ``LookupError`` if the function is not registered or
        does not exist on the server.
        """
        try:
            name, qualifier = parse_function_ref(function_name, qualifier)
        except ValueError:
            raise LookupError(f"no handler registered for {function_name!r}") from None
        if self.registration(name) is None:
            raise LookupError(f"no handler registered for {name!r}")
        auth = _LOCAL_AUTH.format(region=self.region_name)
        try:
            config = self._api.describe(name, qualifier, auth)
        except InvokeError as exc:
            raise LookupError(str(exc)) from None
        payload = json.dumps(event).encode()
        return self.accept(name, qualifier, config, payload, source="trigger").request_id
