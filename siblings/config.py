"""The siblings manager's settings: the estimator's :class:`~estimator.config.Config` plus
everything about spawning, in the same flat ``SIBLINGS_*`` namespace."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from estimator.config import Config
from estimator.estimator import ConcurrencySignal
from estimator.settings import bounded
from siblings.schedules import normalize_schedule

log = logging.getLogger(__name__)

# 1 MB: the async Invoke payload limit since late 2025 (256 KB before). A little is kept back
# for the reserved metadata key and JSON framing.
DEFAULT_MAX_PAYLOAD_BYTES = 1_000_000
_INVOKE_LIMIT_BYTES = 1_048_576
# Lambda retries a failed async event for up to 6 hours; records kept less long than that
# let a late retry spawn again.
LAMBDA_MAX_EVENT_AGE_S = 6 * 3600.0
_DAY = 24 * 3600.0


class GuardErrorPolicy(StrEnum):
    """What a spawn does when a guard cannot be answered."""

    REFUSE = "refuse"
    """Refuse the spawn (reason ``guard_error``): the safe default."""
    ALLOW = "allow"
    """Let the spawn through and say so in the result."""


@dataclass(frozen=True)
class SiblingsConfig(Config):
    """Settings of :class:`~siblings.SiblingsManager`: the estimator's fields and these.

    ``SiblingsManager(custom_config={...})`` and ``SIBLINGS_*`` variables set any field of
    either class; see :class:`estimator.config.Config` for the parsing rules.

    The estimator's ``lease_seconds`` is also how long a parent's own retry waits before taking
    over its pending spawn record (:mod:`siblings.ledger`): keep it well under Lambda's first
    retry delay, one minute.
    """

    rules_cache_ttl_seconds: float = bounded(300.0, 0, _DAY, above=True)
    """How long the EventBridge rule state of a function is fresh."""
    function_timeout_seconds: float | None = bounded(None, 1, 900)
    """The function's configured timeout (the context only tells the time left). Known, it
    tells how long an execution has run: one that started more than a few seconds ago and was
    given no chain metadata looks up its position once instead of giving a parent's write time
    to land (a chain root in sosw's shape then spawns without waiting)."""
    rule_names_ttl_seconds: float = bounded(3600.0, 0, _DAY, above=True)
    """How long the names of the rules targeting a function are kept (their states are read
    each ``rules_cache_ttl_seconds``); a name found gone lists them again at once. A rule
    created for the function is seen within this time."""
    auto_spawning: bool = False
    """sosw's setting: spawn even when no EventBridge rule targeting the function is enabled."""
    trigger_schedules: tuple[str, ...] = ()
    """EventBridge Scheduler schedules (``group/name``, or ``name`` in the default group) that
    count as triggers like rules do, when ENABLED and targeting the function as invoked; read
    with ``scheduler:GetSchedule``, cached ``rules_cache_ttl_seconds``. In the environment:
    ``SIBLINGS_TRIGGER_SCHEDULES=group/a,group/b``."""
    max_concurrency: int | None = bounded(None, 1, 10_000_000)
    """Refuse to spawn while the estimated concurrency is at or above this; ``None`` disables."""
    concurrency_signal: ConcurrencySignal = ConcurrencySignal.LITTLES_LAW
    """What the concurrency guard compares with ``max_concurrency``: ``littles_law`` (the
    window's average, sosw's), ``observed_peak`` (the highest ConcurrentExecutions of a minute)
    or ``max`` (the higher of the two)."""
    min_account_headroom: int | None = bounded(None, 0, 10_000_000)
    """Refuse to spawn while the account's concurrency (or the function's, against its reserved
    concurrency) is within this many executions of its limit; ``None`` disables."""
    check_recursive_loop: bool = True
    """Refuse to spawn while the function's ``RecursiveLoop`` is ``Terminate`` (read with
    ``lambda:GetFunctionRecursionConfig``, cached ``limits_cache_ttl_seconds``); applies with
    ``force`` too, as Lambda would silently drop the 17th sibling and its work."""
    max_generations: int = bounded(100, 1, 1_000_000)
    """Refuse to spawn past this many generations in one chain (applies with ``force`` too)."""
    max_chain_seconds: float | None = bounded(None, 0, 366 * _DAY, above=True)
    """Refuse to spawn once this many seconds have passed since the chain began (applies with
    ``force`` too; wall-clock, so queueing and deferrals count); ``None`` disables."""
    defer_when_busy: bool = False
    """When only a capacity guard (``max_concurrency``, ``min_account_headroom``) refuses,
    schedule the spawn for later instead (:mod:`siblings.defer`); ``spawn_sibling(defer=...)``
    decides per call."""
    max_deferrals: int = bounded(5, 1, 100)
    """Deferrals of one chain step before its capacity refusal stands."""
    defer_base_seconds: float = bounded(60.0, 1, 86_400)
    """Delay of a step's first deferral (doubling per deferral, jittered to half..all of it)."""
    defer_max_seconds: float = bounded(900.0, 1, 86_400)
    """Longest delay of a deferral."""
    defer_role_arn: str | None = None
    """The role EventBridge Scheduler assumes to invoke the function (the template's
    ``DeferRole``); deferral needs it."""
    defer_schedule_group: str = "default"
    """The Scheduler schedule group of deferrals (the template creates one)."""
    payload_bucket: str | None = None
    """S3 bucket for payloads larger than ``max_payload_bytes``."""
    payload_prefix: str = "lambda-siblings/payloads/"
    """Key prefix of offloaded payloads."""
    max_payload_bytes: int = bounded(DEFAULT_MAX_PAYLOAD_BYTES, 1, _INVOKE_LIMIT_BYTES)
    """Largest event sent inline; larger payloads go to S3."""
    on_guard_error: GuardErrorPolicy = GuardErrorPolicy.REFUSE
    """What to do when a guard cannot be answered (no cached value and AWS failing)."""
    dry_run: bool = False
    """Invoke with ``InvocationType='DryRun'``: checks permissions, starts nothing."""
    invoke_max_attempts: int = bounded(5, 1, 20)
    """Attempts of the async Invoke before :class:`~siblings.SpawnFailed`."""
    invoke_backoff_seconds: float = bounded(0.2, 0, 60)
    """First backoff between Invoke attempts (full jitter, doubling per attempt)."""
    invoke_backoff_max_seconds: float = bounded(2.0, 0, 300)
    """Longest backoff between Invoke attempts."""
    spawn_record_ttl_seconds: float = bounded(7 * _DAY, 0, 366 * _DAY, above=True)
    """How long spawn records (idempotency) are kept; Lambda retries async events for up to 6 h."""
    chain_log: bool = True
    """Keep one small item per chain step for ``siblings chain`` / ``siblings chains`` (see
    :mod:`siblings.chain_log`: no extra request for a spawn, one for any other decision)."""
    chain_index: bool = False
    """Also list each chain in its function's list of the day, for ``siblings chains FUNCTION``
    (with ``chain_log``). Off by default: it costs a chain's root three more DynamoDB requests
    (made in parallel with its spawn); ``siblings chain CHAIN_ID`` works without it."""
    metrics_enabled: bool = True
    """Publish each decision's metrics in CloudWatch Embedded Metric Format (no API call)."""
    metrics_namespace: str = "LambdaSiblings"
    """CloudWatch namespace of those metrics (unless a Powertools ``Metrics`` is passed)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        schedules = tuple(dict.fromkeys(normalize_schedule(entry) for entry in self.trigger_schedules))
        object.__setattr__(self, "trigger_schedules", schedules)
        if not 1 <= len(self.metrics_namespace) <= 255:
            raise ValueError(f"metrics_namespace must be 1-255 characters, got {self.metrics_namespace!r}")
        if self.spawn_record_ttl_seconds < LAMBDA_MAX_EVENT_AGE_S:
            log.warning(
                "spawn_record_ttl_seconds=%s is shorter than Lambda's 6 h retry window: a late "
                "retry of a parent may spawn its step again",
                self.spawn_record_ttl_seconds,
            )
        deferred_for = self.max_deferrals * self.defer_max_seconds
        if self.defer_when_busy and self.spawn_record_ttl_seconds < deferred_for:
            # A step deferred that long outlives its records: a late retry of its parent, or a
            # second delivery of its schedule, is no longer recognised as the same step.
            log.warning(
                "spawn_record_ttl_seconds=%s is shorter than the longest a step can stay deferred "
                "(max_deferrals x defer_max_seconds = %s s): raise it or defer less",
                self.spawn_record_ttl_seconds,
                deferred_for,
            )
