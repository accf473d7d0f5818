"""The limits a concurrency is compared with: the account's, and a function's reserved concurrency.

Both come from Lambda's control plane (``GetAccountSettings``, ``GetFunctionConcurrency``), whose
APIs share a 15 TPS quota per account and Region, and both change rarely. So they are cached like
the estimate, in both tiers with the fleet-wide single flight of
:class:`~estimator.shared_cache.TwoTierCache`, for ``limits_cache_ttl_seconds`` (an hour): one
call per key per hour for the whole fleet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pynamodb.attributes import NumberAttribute

from estimator.aws import Clients
from estimator.config import Config
from estimator.identity import Home
from estimator.item_kinds import ItemKind, ItemValue, whole_count
from estimator.keys import LIMITS_PREFIX, account_limit_key, function_concurrency_key
from estimator.memory import Cached
from estimator.shared_cache import TwoTierCache
from estimator.validation import FunctionRef

ORIGIN = "lambda"
"""``source`` of a limit fetched by this call."""


@dataclass(frozen=True)
class AccountLimit:
    """The account's concurrency limit in this Region, and where it came from.

    ``concurrent_executions`` is the account's quota (1,000 by default);
    ``unreserved_concurrent_executions`` what is left of it for functions without reserved
    concurrency (the limit minus it is every reserved allocation, a floor of what the headroom
    guard counts as claimed). ``source`` is ``"memory"``, ``"dynamodb"`` or ``"lambda"``.
    """

    concurrent_executions: int
    unreserved_concurrent_executions: int | None
    source: str
    fetched_at: float
    stale: bool = False


@dataclass(frozen=True)
class ReservedConcurrency:
    """A function's reserved concurrency (``None``: not set, the function shares the account's)."""

    function_name: str
    reserved: int | None
    source: str
    fetched_at: float
    stale: bool = False


_MAX_LIMIT = 10_000_000  # far above any account's quota: a larger one is a damaged item


def _count(value: Any) -> int | None:
    """A believable non-negative count, or ``None`` for anything else."""
    return value if whole_count(value, _MAX_LIMIT) else None


class AccountLimits(ItemValue):
    """The cached account limit: ``GetAccountSettings``' two counts."""

    limit = NumberAttribute()
    unreserved = NumberAttribute(null=True)

    @classmethod
    def in_bounds(cls, fields: Any, now: float, skew: float) -> bool:
        """Both are believable counts."""
        return _count(fields.limit) is not None and (
            fields.unreserved is None or _count(fields.unreserved) is not None
        )


class AccountLimitsItem(ItemKind):
    """``limits#account#<account>:<region>``: the account's concurrency limit in one Region."""

    prefix = f"{LIMITS_PREFIX}account#"
    schema = AccountLimits


class FunctionLimits(ItemValue):
    """The cached reserved concurrency of one function (null: none is set)."""

    present = frozenset({"reserved"})
    reserved = NumberAttribute(null=True)

    @classmethod
    def in_bounds(cls, fields: Any, now: float, skew: float) -> bool:
        """A believable count, or none."""
        return fields.reserved is None or _count(fields.reserved) is not None


class FunctionLimitsItem(ItemKind):
    """``limits#function#<scope>``: one function's reserved concurrency."""

    prefix = f"{LIMITS_PREFIX}function#"
    schema = FunctionLimits


class LimitLookup:
    """Looks up and caches the concurrency limits; the Lambda client comes from ``clients``.

    Errors: :class:`~estimator.exceptions.LookupFailed` when Lambda fails (or answers without
    the limit) and nothing, not even a stale value, is cached.
    """

    def __init__(self, config: Config, cache: TwoTierCache, clients: Clients) -> None:
        self.config = config
        self.cache = cache
        self._clients = clients

    def account_limit(self, home: Home, *, max_wait: float | None = None) -> AccountLimit:
        """The concurrency limit of the account in ``home`` (the clients'), from
        ``GetAccountSettings`` at most once an hour."""
        cached = self._get(account_limit_key(home), self._fetch_account, AccountLimitsItem.valid, max_wait)
        value = cached.value
        return AccountLimit(
            int(value["limit"]),
            _count(value.get("unreserved")),
            cached.source,
            cached.fetched_at,
            cached.stale,
        )

    def reserved_concurrency(
        self, ref: FunctionRef, *, max_wait: float | None = None
    ) -> ReservedConcurrency:
        """The reserved concurrency of ``ref``'s function, from ``GetFunctionConcurrency``."""
        cached = self._get(
            function_concurrency_key(ref),
            lambda: self._fetch_function(ref),
            FunctionLimitsItem.valid,
            max_wait,
        )
        reserved = cached.value.get("reserved")
        return ReservedConcurrency(
            ref.name, _count(reserved), cached.source, cached.fetched_at, cached.stale
        )

    def _get(self, key: str, load: Any, validate: Any, max_wait: float | None) -> Cached:
        return self.cache.get(
            key,
            load,
            ttl=self.config.limits_cache_ttl_seconds,
            origin=ORIGIN,
            validate=validate,
            max_wait=max_wait,
        )

    def _fetch_account(self) -> dict[str, Any]:
        settings = self._clients.get("lambda").get_account_settings()
        limits = settings.get("AccountLimit") or {}
        limit = _count(limits.get("ConcurrentExecutions"))
        if limit is None:
            # A made-up limit would switch the headroom guard off, or on for everyone.
            raise ValueError(f"GetAccountSettings gave no usable ConcurrentExecutions: {limits!r}")
        return {"limit": limit, "unreserved": _count(limits.get("UnreservedConcurrentExecutions"))}

    def _fetch_function(self, ref: FunctionRef) -> dict[str, Any]:
        answer = self._clients.get("lambda").get_function_concurrency(FunctionName=ref.name)
        # AWS leaves the key out when nothing is reserved (moto sends null): both mean "not set".
        reserved = answer.get("ReservedConcurrentExecutions")
        if reserved is not None and _count(reserved) is None:
            raise ValueError(f"GetFunctionConcurrency gave {reserved!r}")
        return {"reserved": reserved}
