"""The one place boto3 clients are made: endpoint, Region and retries from the config.

Clients are built on first use, never at import, and can be injected (tests, or a caller that
already holds clients). :class:`Clients` is shared by the estimator and by packages built on
it, so each service has one client per owner.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from botocore.config import Config as BotoConfig

from estimator.config import Config
from estimator.deadline import call_timeout
from estimator.exceptions import NoRegion

STANDARD_RETRIES: dict[str, Any] = {"mode": "standard", "max_attempts": 3}
"""Back off on throttling for a few attempts, then let the caller degrade (stale value...)."""


def make_client(
    service: str,
    config: Config,
    session: Any = None,
    retries: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Any:
    """A boto3 client of ``service`` on ``config``'s endpoint and Region.

    ``session`` is a ``boto3.Session`` (default: a new one with the default credential chain);
    ``retries`` is botocore's retry config (default :data:`STANDARD_RETRIES`); ``timeout`` the
    connect and read timeout in seconds (default botocore's 60). Raises
    :class:`~estimator.exceptions.NoRegion` when no Region is configured anywhere.
    """
    if session is None:
        import boto3  # boto3 is slow to import; only callers that make clients pay for it

        session = boto3.Session()
    region = config.region_name or session.region_name
    if not region:
        raise NoRegion(service)
    return session.client(
        service,
        endpoint_url=config.endpoint_url,
        region_name=region,
        config=_boto_config(retries, timeout),
    )


def _boto_config(retries: Mapping[str, Any] | None, timeout: float | None) -> BotoConfig:
    retry = dict(retries or STANDARD_RETRIES)
    if timeout is None:
        return BotoConfig(retries=retry)  # type: ignore[arg-type]
    return BotoConfig(retries=retry, connect_timeout=timeout, read_timeout=timeout)  # type: ignore[arg-type]


def attempts_of(retries: Mapping[str, Any] | None) -> int:
    """How many attempts botocore makes with ``retries`` (its ``total_max_attempts``, or
    ``max_attempts`` retries after the first; :data:`STANDARD_RETRIES` when ``None``)."""
    retries = retries or STANDARD_RETRIES
    if "total_max_attempts" in retries:
        return max(1, int(retries["total_max_attempts"]))
    return 1 + max(0, int(retries.get("max_attempts", 0)))


class Clients:
    """Thread-safe, lazily built clients by service name, with per-service retry settings."""

    def __init__(
        self,
        config: Config,
        session: Any = None,
        injected: Mapping[str, Any] | None = None,
        retries: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.config = config
        self.session = session
        self._clients: dict[str, Any] = {k: v for k, v in (injected or {}).items() if v is not None}
        self._injected = frozenset(self._clients)
        self._retries = dict(retries or {})
        self._lock = threading.Lock()

    def get(self, service: str) -> Any:
        """The client of ``service`` (``"cloudwatch"``, ``"lambda"``...), made on first use.

        Inside a :func:`~estimator.deadline.calls_within` scope, the client's connect and read
        timeouts let every attempt end before the deadline (one client per timeout step). An
        injected client is returned as it is: its timeouts are its owner's.
        """
        if service in self._injected:
            return self._clients[service]
        retries = self._retries.get(service)
        timeout = call_timeout(attempts_of(retries))
        key = service if timeout is None else f"{service}@{timeout}"
        client = self._clients.get(key)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = make_client(
                    service, self.config, self.session, retries, timeout
                )
            return client

    def per_call(self, service: str) -> Any:
        """A stand-in for the client of ``service`` that asks :meth:`get` at every call, so a
        call made inside a :func:`~estimator.deadline.calls_within` scope gets the timeouts
        that fit the time left then (a caller that retries keeps one object)."""
        return _PerCallClient(self, service)


class _PerCallClient:
    """Looks each attribute up on ``clients.get(service)`` when it is used."""

    def __init__(self, clients: Clients, service: str) -> None:
        self._clients = clients
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clients.get(self._service), name)
