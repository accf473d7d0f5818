"""The function's own recursive loop setting (``RecursiveLoop``), asked of Lambda and cached.

Lambda's recursive loop detection also covers chains made only of Lambda functions: each
invocation carries a lineage in the X-Ray trace header (botocore forwards ``_X_AMZN_TRACE_ID``),
and with the function's default ``RecursiveLoop: Terminate`` Lambda drops the chain's next
invocation after 16, while the async ``Invoke`` that asked for it still answered 202. A sibling
chain is such a chain: at ``Terminate`` its 17th sibling never runs and the work handed to it is
lost. So the library reads the setting (``GetFunctionRecursionConfig``) and refuses to spawn at
``Terminate``, before any work is handed off, naming the fix (``RecursiveLoop: Allow``; our own
guards take over from AWS's).

AWS: https://docs.aws.amazon.com/lambda/latest/dg/invocation-recursion.html and
https://docs.aws.amazon.com/lambda/latest/api/API_GetFunctionRecursionConfig.html (the default
is ``Terminate``; the setting is per function, not per alias or version).

The setting changes rarely and ``GetFunctionRecursionConfig`` shares Lambda's 15 TPS
control-plane quota, so it is cached like the account limits (:mod:`estimator.limits`): in both
tiers, for ``limits_cache_ttl_seconds`` (an hour), with the fleet-wide single flight: one call
per function per hour for the whole fleet, at most one per container-hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pynamodb.attributes import UnicodeAttribute

from estimator.aws import Clients
from estimator.config import Config
from estimator.item_kinds import ItemKind, ItemValue
from estimator.shared_cache import TwoTierCache, Validate
from estimator.validation import FunctionRef
from siblings.keys import RECURSION_PREFIX, recursion_key

ORIGIN = "lambda"
"""``source`` of a setting fetched by this call."""


class RecursiveLoop(StrEnum):
    """Lambda's ``RecursiveLoop`` values."""

    ALLOW = "Allow"
    """Lambda takes no action on a detected loop: the chain is ours to guard."""
    TERMINATE = "Terminate"
    """Lambda's default: a chain is dropped after 16 invocations."""


@dataclass(frozen=True)
class RecursionConfig:
    """A function's ``RecursiveLoop`` setting, and where it came from."""

    function_name: str
    recursive_loop: RecursiveLoop
    source: str
    fetched_at: float
    stale: bool = False


def loop_setting(value: Any) -> RecursiveLoop | None:
    """``value`` as a ``RecursiveLoop`` member, ``None`` unless it is exactly one of its strings
    (table items and AWS answers are untrusted: a list or dict is no setting, and no crash)."""
    if not isinstance(value, str):
        return None
    try:
        return RecursiveLoop(value)
    except ValueError:
        return None


class RecursionSetting(ItemValue):
    """A cached ``RecursiveLoop`` setting as :class:`RecursionLookup` writes it."""

    recursive_loop = UnicodeAttribute()

    @classmethod
    def in_bounds(cls, fields: Any, now: float, skew: float) -> bool:
        """One of Lambda's values."""
        return loop_setting(fields.recursive_loop) is not None


class RecursionItem(ItemKind):
    """``recursion#<scope>``: the recursive-loop guard's cached setting."""

    prefix = RECURSION_PREFIX
    schema = RecursionSetting


valid_recursion = RecursionItem.valid
"""A cached setting as :class:`RecursionLookup` writes it (:meth:`RecursionItem.valid`)."""


class RecursionLookup:
    """Looks up and caches a function's ``RecursiveLoop``; the Lambda client comes from ``clients``.

    Errors: :class:`~estimator.exceptions.LookupFailed` when Lambda fails and nothing, not even
    a stale value, is cached.
    """

    def __init__(self, config: Config, cache: TwoTierCache, clients: Clients) -> None:
        self.config = config
        self.cache = cache
        self._clients = clients

    def shared_entry(self, ref: FunctionRef) -> tuple[str, float, Validate]:
        """Key, TTL and validator of the setting's shared item (for a cold container's batch read)."""
        return recursion_key(ref), self.config.limits_cache_ttl_seconds, RecursionItem.valid

    def recursion_config(self, ref: FunctionRef, *, max_wait: float | None = None) -> RecursionConfig:
        """The ``RecursiveLoop`` of ``ref``'s function, from Lambda at most once per TTL."""
        cached = self.cache.get(
            recursion_key(ref),
            lambda: self._fetch(ref),
            ttl=self.config.limits_cache_ttl_seconds,
            origin=ORIGIN,
            validate=RecursionItem.valid,
            max_wait=max_wait,
        )
        return RecursionConfig(
            ref.name,
            RecursiveLoop(cached.value["recursive_loop"]),
            cached.source,
            cached.fetched_at,
            cached.stale,
        )

    def _fetch(self, ref: FunctionRef) -> dict[str, Any]:
        answer = self._clients.get("lambda").get_function_recursion_config(FunctionName=ref.name)
        value = answer.get("RecursiveLoop")
        if loop_setting(value) is None:
            # Guessing either way would be wrong: Allow loses work, Terminate blocks every spawn.
            raise ValueError(f"GetFunctionRecursionConfig gave RecursiveLoop={value!r}")
        return {"recursive_loop": value}
