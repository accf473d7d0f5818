"""The one configuration object of lambda-siblings, with ``SIBLINGS_*`` env-var defaults."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args, get_type_hints

GuardErrorPolicy = Literal["refuse", "allow"]

_ENV_PREFIX = "SIBLINGS_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# 1 MB: the async Invoke payload limit since late 2025 (256 KB before). A little is kept back
# for the reserved metadata key and JSON framing.
DEFAULT_MAX_PAYLOAD_BYTES = 1_000_000


@dataclass(frozen=True)
class Config:
    """Settings shared by the estimator and the siblings manager.

    Every field can be set from the environment as ``SIBLINGS_<FIELD NAME IN UPPER CASE>``
    (see :meth:`from_env`); explicit arguments win over the environment.
    """

    table_name: str = "lambda-siblings"
    """DynamoDB table shared by every execution (estimates, rule state, kill switch, spawns)."""
    region_name: str | None = None
    """AWS region; ``None`` uses boto3's normal resolution (``AWS_REGION`` in Lambda)."""
    endpoint_url: str | None = None
    """Endpoint for every client (a local moto server); ``None`` uses boto3's resolution."""
    minutes_back: int = 5
    """Window of CloudWatch metrics the estimate is computed over."""
    cache_ttl_seconds: float = 60.0
    """How long an estimate is fresh (Lambda metrics have one-minute resolution)."""
    rules_cache_ttl_seconds: float = 300.0
    """How long the EventBridge rule state of a function is fresh."""
    stale_grace_seconds: float = 3600.0
    """How long past its freshness an item is kept (DynamoDB TTL) to be served when a refresh fails."""
    lease_seconds: float = 10.0
    """How long a refresher holds the fleet-wide lease before another caller may take over."""
    lease_wait_seconds: float = 12.0
    """How long a caller with no value at all waits for another execution's refresh."""
    error_backoff_seconds: float = 5.0
    """After a failed refresh, how long a process serves the stale value before trying again."""
    memory_cache_size: int = 1024
    """Entries in the in-process (tier 1) cache."""
    use_dynamodb: bool = True
    """Use the shared DynamoDB tier; ``False`` keeps the cache in process only."""
    dynamodb_timeout_seconds: float = 2.0
    """Connect/read timeout of DynamoDB calls, so an outage degrades quickly."""
    # --- siblings manager ---
    auto_spawning: bool = False
    """sosw's setting: spawn even when no EventBridge rule targeting the function is enabled."""
    max_concurrency: int | None = None
    """Refuse to spawn while the estimated concurrency is at or above this; ``None`` disables."""
    max_generations: int = 100
    """Refuse to spawn past this many generations in one chain (applies with ``force`` too)."""
    payload_bucket: str | None = None
    """S3 bucket for payloads larger than ``max_payload_bytes``."""
    payload_prefix: str = "lambda-siblings/payloads/"
    """Key prefix of offloaded payloads."""
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    """Largest event sent inline; larger payloads go to S3."""
    on_guard_error: GuardErrorPolicy = "refuse"
    """What to do when a guard cannot be answered (no cached value and AWS failing)."""
    dry_run: bool = False
    """Invoke with ``InvocationType='DryRun'``: checks permissions, starts nothing."""
    invoke_max_attempts: int = 5
    """Attempts of the async Invoke before :class:`SpawnFailed`."""
    invoke_backoff_seconds: float = 0.2
    """First backoff between Invoke attempts (full jitter, doubling per attempt)."""
    invoke_backoff_max_seconds: float = 2.0
    """Longest backoff between Invoke attempts."""
    spawn_record_ttl_seconds: float = 7 * 24 * 3600.0
    """How long spawn records (idempotency) are kept; Lambda retries async events for up to 6 h."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Unknown keys passed through ``custom_config`` (kept for sosw compatibility, unused)."""

    def __post_init__(self) -> None:
        _check_positive_int("minutes_back", self.minutes_back, high=1440)
        for name in (
            "cache_ttl_seconds",
            "rules_cache_ttl_seconds",
            "lease_seconds",
            "dynamodb_timeout_seconds",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name in (
            "stale_grace_seconds",
            "lease_wait_seconds",
            "error_backoff_seconds",
            "invoke_backoff_seconds",
            "invoke_backoff_max_seconds",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        _check_positive_int("memory_cache_size", self.memory_cache_size)
        _check_positive_int("max_generations", self.max_generations)
        _check_positive_int("max_payload_bytes", self.max_payload_bytes)
        _check_positive_int("invoke_max_attempts", self.invoke_max_attempts)
        if self.max_concurrency is not None:
            _check_positive_int("max_concurrency", self.max_concurrency)
        if self.on_guard_error not in get_args(GuardErrorPolicy):
            raise ValueError(
                f"on_guard_error must be 'refuse' or 'allow', got {self.on_guard_error!r}"
            )
        if not isinstance(self.table_name, str) or not 3 <= len(self.table_name) <= 255:
            raise ValueError(f"table_name must be a 3-255 character string, got {self.table_name!r}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Config:
        """Build a config from ``SIBLINGS_*`` variables, then apply ``overrides``.

        Unknown override keys are kept in :attr:`extra` rather than rejected, because sosw's
        ``custom_config`` dicts carry keys of other components.
        """
        env = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        known = {f.name for f in fields(cls) if f.name != "extra"}
        values: dict[str, Any] = {}
        for name in known:
            raw = env.get(_ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = _parse(name, raw, hints[name])
        extra = dict(overrides.pop("extra", None) or {})
        for key, value in overrides.items():
            if key in known:
                values[key] = value
            else:
                extra[key] = value
        return cls(**values, extra=extra)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (validated like the original)."""
        return dataclasses.replace(self, **changes)


def _check_positive_int(name: str, value: Any, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1 or (high is not None and value > high):
        bound = f"1..{high}" if high is not None else ">= 1"
        raise ValueError(f"{name} must be in {bound}, got {value}")


def _parse(name: str, raw: str, hint: Any) -> Any:
    """Convert an environment string to the field's type."""
    types = set(get_args(hint)) or {hint}
    optional = type(None) in types
    text = raw.strip()
    if optional and text.lower() in {"", "none", "null"}:
        return None
    try:
        if bool in types:
            lowered = text.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError("expected true/false")
        if int in types:
            return int(text)
        if float in types:
            return float(text)
    except ValueError as exc:
        raise ValueError(f"{_ENV_PREFIX}{name.upper()}={raw!r}: {exc}") from None
    return text
