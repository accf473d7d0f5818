"""The estimator's settings, with ``SIBLINGS_*`` env-var defaults; the base of every config.

:class:`Config` holds what the estimate and its cache tiers need. Other packages extend it
with a dataclass subclass of their own, so that one flat namespace of
``SIBLINGS_*`` variables and ``custom_config`` keys sets every field. Values are parsed and
checked by :mod:`estimator.settings`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from typing import Any, Self, get_type_hints

from estimator import settings
from estimator.settings import bounded
from estimator.validation import ACCOUNT_PATTERN

ENV_PREFIX = "SIBLINGS_"
_DAY = 24 * 3600.0


@dataclass(frozen=True)
class Config:
    """Settings of the estimator and its shared cache.

    Every field can be set from the environment as ``SIBLINGS_<FIELD NAME IN UPPER CASE>``
    (see :meth:`from_env`); explicit arguments win over the environment. The constructor
    takes native values only; :meth:`from_env` also parses strings (see
    :mod:`estimator.settings`).
    """

    table_name: str = "lambda-siblings"
    """DynamoDB table shared by every execution (the cache items of every owner)."""
    region_name: str | None = None
    """AWS region; ``None`` uses boto3's normal resolution (``AWS_REGION`` in Lambda)."""
    endpoint_url: str | None = None
    """Endpoint for every client (a local moto server); ``None`` uses boto3's resolution."""
    account_id: str | None = None
    """The 12-digit account of the clients' credentials; ``None`` asks STS
    (``GetCallerIdentity``, which needs no permission) once per process. Table keys carry the
    account and Region, and a function ARN of another account or Region is refused (template.yaml
    sets it to ``AWS::AccountId``, saving the call)."""
    minutes_back: int = bounded(5, 1, 1440)
    """Window of CloudWatch metrics the estimate is computed over."""
    publication_delay_seconds: float = bounded(60.0, 0, 900)
    """How long after a minute ends Lambda's metrics of it are taken as published: the window
    ends at the last whole minute before ``now - publication_delay_seconds``. Lambda sends a
    minute's metrics when its invocations finish, at 1-minute intervals
    (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics.html), so the minute just
    closed is usually still empty and would read a steady load as (window - 1) / window of it."""
    cache_ttl_seconds: float = bounded(60.0, 0, _DAY, above=True)
    """How long an estimate is fresh (Lambda metrics have one-minute resolution)."""
    limits_cache_ttl_seconds: float = bounded(3600.0, 0, _DAY, above=True)
    """How long the account's concurrency limit and a function's reserved concurrency are fresh
    (Lambda's control-plane APIs have a 15 TPS quota; limits change rarely)."""
    stale_grace_seconds: float = bounded(3600.0, 0, 30 * _DAY)
    """How long past its freshness an item is kept (DynamoDB TTL) to be served when a refresh fails."""
    lease_seconds: float = bounded(10.0, 0, 60, above=True)
    """How long a refresher holds the fleet-wide lease before another caller may take over
    (packages built on the estimator may give it more uses: see theirs)."""
    lease_wait_seconds: float = bounded(12.0, 0, 900)
    """How long a caller with no value at all waits for another execution's refresh."""
    error_backoff_seconds: float = bounded(5.0, 0, 3600)
    """After a failure (a refresh, or the shared table), how long a process serves what it
    has instead of trying again."""
    memory_cache_size: int = bounded(1024, 1, 1_000_000)
    """Entries in the in-process (tier 1) cache."""
    use_dynamodb: bool = True
    """Use the shared DynamoDB tier; ``False`` keeps the cache in process only."""
    dynamodb_timeout_seconds: float = bounded(2.0, 0, 60, above=True)
    """Connect/read timeout of DynamoDB calls, so an outage degrades quickly."""
    refresh_ahead_fraction: float = bounded(0.08, 0, 0.5)
    """The last share of a value's TTL in which the fleet refreshes it early and each process
    reads it again at a random moment, so that N processes do not read one item in the same
    instant (0 turns both off). At large N the refresh comes as the window opens: one per
    ``(1 - fraction) x TTL``, so 0.08 costs at most 1.09x one refresh per TTL."""
    outage_refresh_probability: float = bounded(0.02, 0, 1)
    """With the shared table unavailable, the chance that a process holding a stale value asks
    the origin itself per back-off period (else it serves what it holds for
    ``error_backoff_seconds`` more), while the process knows no fleet size (no estimate yet)."""
    outage_refresh_per_second: float = bounded(1.0, 0, 1000)
    """With the shared table unavailable and the fleet's size known (the largest concurrency
    estimate this process has seen), how many origin calls per second the whole fleet makes
    for one value: each process asks with probability ``rate x error_backoff_seconds / fleet``,
    so the outage's cost does not grow with the fleet."""
    max_clock_skew_seconds: float = bounded(60.0, 0, 3600)
    """How far another writer's clock may be ahead of ours; shared items whose times lie
    further in the future than their own TTL allows are treated as corrupt."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Unknown keys passed through ``custom_config`` (kept for sosw compatibility, unused)."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for spec in fields(self):
            if spec.name == "extra":
                continue
            value = settings.check(spec.name, getattr(self, spec.name), hints[spec.name], spec.metadata)
            object.__setattr__(self, spec.name, value)  # enums normalised from their strings
        if not 3 <= len(self.table_name) <= 255:
            raise ValueError(f"table_name must be a 3-255 character string, got {self.table_name!r}")
        if self.account_id is not None and not ACCOUNT_PATTERN.fullmatch(self.account_id):
            raise ValueError(f"account_id must be 12 digits, got {self.account_id!r}")
        if not isinstance(self.extra, dict):
            raise TypeError(f"extra must be a dict, got {type(self.extra).__name__}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Self:
        """Build a config from ``SIBLINGS_*`` variables, then apply ``overrides``.

        Override values are parsed like environment strings (``"false"`` is False, ``"30"``
        is 30). Unknown override keys are kept in :attr:`extra` rather than rejected, because
        sosw's ``custom_config`` dicts carry keys of other components.
        """
        env = os.environ if environ is None else environ
        hints = _hints(cls)
        known = [f.name for f in fields(cls) if f.name != "extra"]
        values: dict[str, Any] = {}
        for name in known:
            variable = ENV_PREFIX + name.upper()
            raw = env.get(variable)
            if raw is not None:
                values[name] = settings.parse(name, raw, hints[name], label=variable)
        extra = dict(overrides.pop("extra", None) or {})
        for key, value in overrides.items():
            if key in hints and key != "extra":
                values[key] = settings.parse(key, value, hints[key])
            else:
                extra[key] = value
        return cls(**values, extra=extra)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (validated like the original)."""
        return dataclasses.replace(self, **changes)

    def as_overrides(self) -> dict[str, Any]:
        """Every field as a dict that :meth:`from_env` accepts (``extra`` copied)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        values["extra"] = dict(self.extra)
        return values


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    # Resolving the hints of a dataclass is slow; every config build would pay it.
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = get_type_hints(cls)
    return hints
