"""Tier 2: the shared table behind one :class:`Store` protocol, with two backends.

This module is the extension point for other item kinds: any package may keep its own items
in the same table through a :class:`Store`, with keys of its own prefix (see
:mod:`estimator.keys` for the estimator's). Items are keyed by a string ``pk`` and hold a JSON
value, when it stops being fresh (``fresh_until``), when DynamoDB may delete it (``ttl``, the
table's TTL attribute) and an optional refresh lease. DynamoDB deletes expired items lazily,
so readers compare the clock with ``fresh_until``/``ttl`` themselves, with the one definition
of expired (:func:`estimator.items.expired`), which the condition expressions here share.

Backends: :class:`DynamoStore` (the table) and :class:`~estimator.memory_store.MemoryStore`
(a dict in this process, the same conditions: ``use_dynamodb=False`` and unit tests). Every
DynamoDB failure is translated once, here, into one :class:`StoreUnavailable` subclass per kind
(:func:`translate`); every call goes through the table's one :class:`~estimator.breaker.Breaker`.
Clients are made on the first call, never at import or in a constructor.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from estimator.batch_retry import BatchBackoff, read_all, write_all
from estimator.binding import DYNAMODB_RETRIES, CacheItem, item_model, low_level
from estimator.breaker import Breaker
from estimator.clock import SYSTEM_CLOCK, Clock
from estimator.config import Config
from estimator.deadline import call_timeout
from estimator.exceptions import (
    StoreAccessDenied,
    StoreThrottled,
    StoreUnavailable,
    StoreUnreachable,
    TableMissing,
)
from estimator.failures import FailureKind, classify
from estimator.items import StoredItem, decode_item, dumps, encode_item, field_text, ttl_datetime
from estimator.lowlevel import LowLevel

log = logging.getLogger(__name__)

_CONDITION_FAILED = "ConditionalCheckFailedException"
# What a DynamoDB call can raise: pynamodb's wrappers, and botocore's own (no region,
# connection refused...) which pynamodb lets through.
_STORE_ERRORS = (PynamoDBException, BotoCoreError, ClientError)
T = TypeVar("T")


class Store(Protocol):
    """What the library needs of the shared table; both backends implement it.

    Conditional writes answer with a value (``None``/the existing item, ``True``/``False``),
    never an exception; failures raise a :class:`StoreUnavailable` subclass.
    """

    shared: bool
    """Other processes write here too (a miss may be filled a moment later)."""

    def get(self, key: str, *, consistent: bool = True) -> StoredItem | None:
        """The item at ``key``, ``None`` if absent (strongly consistent unless ``consistent=False``:
        half the read units; DynamoDB says a write is usually seen within a second)."""

    def get_many(self, keys: list[str], *, consistent: bool = True) -> dict[str, StoredItem | None]:
        """Several items in one request; absent keys map to ``None``."""

    def put(self, key: str, value: dict[str, Any], fresh_until: float, keep_until: float) -> None:
        """Overwrite ``key`` with ``value``; drops any lease."""

    def put_many(self, items: list[tuple[str, dict[str, Any], float, float]]) -> None:
        """Overwrite several items in one request: ``(key, value, fresh_until, keep_until)``."""

    def create(
        self, key: str, value: dict[str, Any], keep_until: float, now: float
    ) -> StoredItem | None:
        """Create ``key`` unless a live item exists: ``None`` if created, else the existing one."""

    def try_lease(self, key: str, owner: str, now: float, lease_seconds: float, *,
                  skew: float = 0.0, fresh_at_most: float | None = None,
                  due_by: float | None = None) -> bool:
        """Take the refresh lease of a stale or absent ``key``; True for the one winner."""

    def mark_failed(self, key: str, owner: str, now: float, backoff_seconds: float, error: str) -> None:
        """Record that ``owner``'s refresh failed (only while ``owner`` holds the lease)."""

    def delete(self, key: str, only_if: Mapping[str, str] | None = None) -> bool:
        """Delete ``key``; with ``only_if``, only while its value holds those string fields."""

    def ensure_table(self) -> bool:
        """Make the storage ready; True if it was created."""


def translate(operation: str, exc: BaseException) -> StoreUnavailable:
    """The one translation of a DynamoDB failure: the :class:`StoreUnavailable` subclass of
    its kind (:func:`estimator.failures.classify`), with the AWS error code and the original
    error as ``cause``. Credentials count as denied only when DynamoDB itself rejected them
    (an error code): one the SDK could not find or refresh is retried at the next call."""
    if isinstance(exc, StoreUnavailable):
        return exc
    failure = classify(exc, "dynamodb")
    kind = _STORE_ERROR_OF.get(failure.kind, StoreUnavailable)
    if failure.kind is FailureKind.CREDENTIALS_REJECTED and failure.code is None:
        kind = StoreUnavailable
    return kind(operation, exc, failure.code)


_STORE_ERROR_OF: dict[FailureKind, type[StoreUnavailable]] = {
    FailureKind.THROTTLED: StoreThrottled,
    FailureKind.ACCESS_DENIED: StoreAccessDenied,
    FailureKind.CREDENTIALS_REJECTED: StoreAccessDenied,
    FailureKind.NOT_FOUND: TableMissing,
    FailureKind.UNREACHABLE: StoreUnreachable,
}


class DynamoStore:
    """The :class:`Store` on the shared table; every failure is a :class:`StoreUnavailable`.

    ``breaker`` defaults to a new :class:`Breaker` for this store; share one store (or pass the
    same breaker) between the users of one table so that an outage is detected once. ``model``
    and ``low`` (the bound model, its :class:`LowLevel`) may be injected. Nothing is resolved or
    connected until the first call.
    """

    shared = True

    def __init__(
        self,
        config: Config,
        session: Any = None,
        model: type[CacheItem] | None = None,
        breaker: Breaker | None = None,
        clock: Clock = SYSTEM_CLOCK,
        low: LowLevel | None = None,
    ):
        self.config = config
        self.session = session
        self._model = model
        self._injected_model = model is not None
        self._bounded: dict[float, type[CacheItem]] = {}
        self._low = low
        self._lock = threading.RLock()  # ``low`` builds ``model`` under it
        self.clock = clock
        self.backoff = BatchBackoff()
        self.breaker = breaker or Breaker(
            f"table {config.table_name!r}", config.error_backoff_seconds, clock
        )

    @property
    def model(self) -> type[CacheItem]:
        """The bound pynamodb model, made on first use; inside a
        :func:`~estimator.deadline.calls_within` scope with less time left than the configured
        timeout allows, one bound with shorter timeouts (one model per timeout step)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = item_model(self.config, self.session)
        if self._injected_model:
            return self._model
        timeout = call_timeout(1 + DYNAMODB_RETRIES)
        if timeout is None or timeout >= self.config.dynamodb_timeout_seconds:
            return self._model
        bounded = self._bounded.get(timeout)
        if bounded is None:
            with self._lock:
                bounded = self._bounded.get(timeout)
                if bounded is None:
                    shorter = self.config.replace(dynamodb_timeout_seconds=timeout)
                    bounded = self._bounded[timeout] = item_model(shorter, self.session)
        return bounded

    @property
    def low(self) -> LowLevel:
        """The few calls pynamodb's public API lacks (:mod:`estimator.lowlevel`), one per bound
        model (:attr:`model`, so the same timeouts): its client is costly to make and shared
        by every store of that table."""
        if self._low is not None:
            return self._low
        return low_level(self.model)

    def _run(self, operation: str, action: Callable[[], T]) -> T:
        """Run one DynamoDB call through the breaker, translating its errors."""

        def guarded() -> T:
            try:
                return action()
            except _STORE_ERRORS as exc:
                raise translate(operation, exc) from exc

        return self.breaker.call(operation, guarded)

    # --- table ---
    def ensure_table(self) -> bool:
        """Create the table (on-demand, TTL on ``ttl``) unless it exists; True if created.

        Idempotent: an existing table only gets its TTL switched on if it is off.
        """
        try:
            if not self.model.exists():
                try:
                    self.model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
                    return True
                except _STORE_ERRORS as exc:
                    # Another creator won the race, or our own CreateTable succeeded, its reply
                    # timed out and the SDK's retry found the table: it exists, as asked.
                    if classify(exc).code != "ResourceInUseException":
                        raise
            if not self.low.ttl_enabled():
                self.model.update_ttl(ignore_update_ttl_errors=False)
            return False
        except _STORE_ERRORS as exc:
            raise translate("ensure_table", exc) from exc

    # --- items ---
    def get(self, key: str, *, consistent: bool = True) -> StoredItem | None:
        """The item at ``key``, ``None`` if absent; ``consistent=False`` reads it eventually
        consistent (half the read units; DynamoDB says a write is usually seen within a second)."""
        raw = self._run("GetItem", lambda: self.low.get(key, consistent=consistent))
        return None if raw is None else decode_item(key, raw)

    def put(self, key: str, value: dict[str, Any], fresh_until: float, keep_until: float) -> None:
        """Overwrite ``key`` with ``value``; drops any lease."""
        item = self.model(key, value=dumps(value), fresh_until=fresh_until, ttl=ttl_datetime(keep_until))
        self._run("PutItem", item.save)

    def create(
        self, key: str, value: dict[str, Any], keep_until: float, now: float
    ) -> StoredItem | None:
        """Create ``key`` unless a live item exists, in one request: ``None`` if created, else
        the existing item, returned by the failed condition itself (no read before the write).

        An item past its TTL that DynamoDB has not deleted yet counts as absent.
        """
        item = encode_item(key, value, keep_until, keep_until)
        created, old = self._run("PutItem", lambda: self.low.create(item, math.floor(now)))
        if created:
            return None
        if old:
            return decode_item(key, old)
        existing = self.get(key)  # no old image in the reply: read it
        if existing is None:  # deleted in between: try once more
            return self.create(key, value, keep_until, now)
        return existing

    def put_many(self, items: list[tuple[str, dict[str, Any], float, float]]) -> None:
        """Overwrite several items in one BatchWriteItem: ``(key, value, fresh_until, keep_until)``.

        Items DynamoDB leaves unprocessed (a hot partition) are sent again with bounded
        exponential backoff and jitter (:mod:`estimator.batch_retry`); any still unprocessed
        raise :class:`StoreThrottled`, which the breaker counts.
        """
        raws = [encode_item(key, value, fresh, keep) for key, value, fresh, keep in items]
        self._run("BatchWriteItem", lambda: write_all(self.low, raws, self.backoff, self.clock))

    def get_many(self, keys: list[str], *, consistent: bool = True) -> dict[str, StoredItem | None]:
        """Several items in one BatchGetItem (up to 100 keys; strongly consistent unless
        ``consistent=False``); absent keys map to ``None``. Keys DynamoDB leaves unprocessed
        are asked again with backoff; any still unread raise
        :class:`~estimator.exceptions.UnprocessedKeys`, which carries the keys that were read
        (use them)."""
        if not keys:
            return {}
        return self._run(
            "BatchGetItem",
            lambda: read_all(self.low, keys, self.backoff, self.clock, consistent=consistent),
        )

    def try_lease(
        self,
        key: str,
        owner: str,
        now: float,
        lease_seconds: float,
        *,
        skew: float = 0.0,
        fresh_at_most: float | None = None,
        due_by: float | None = None,
    ) -> bool:
        """Take the refresh lease of ``key`` if its value is stale or absent and no live lease exists.

        One conditional UpdateItem: exactly one of many concurrent callers wins. A lease reaching
        further than ``lease_seconds + skew`` ahead, or a freshness beyond ``fresh_at_most``, came
        from a skewed or buggy writer and counts as none. ``due_by`` (default ``now``) takes the
        lease of a value that will be stale by then: an early refresh.
        """
        model = self.model
        # The holder itself may take its lease again (a retry after its own failed refresh).
        no_live_lease = (
            model.lease_until.does_not_exist()
            | (model.lease_until < now)
            | (model.lease_owner == owner)
            | (model.lease_until > now + lease_seconds + skew)
        )
        stale = (
            model.fresh_until.does_not_exist()
            | (model.fresh_until <= (now if due_by is None else due_by))
            # Expired (estimator.items.expired): DynamoDB may delete it any moment.
            | (model.ttl <= datetime.fromtimestamp(math.floor(now), tz=UTC))
        )
        if fresh_at_most is not None:
            stale = stale | (model.fresh_until > fresh_at_most)
        condition = model.pk.does_not_exist() | (no_live_lease & stale)
        actions: list[Any] = [
            model.lease_owner.set(owner),
            model.lease_until.set(now + lease_seconds),
            # A lease on a new key must not outlive its holder forever.
            model.ttl.set(model.ttl | ttl_datetime(now + lease_seconds + 3600)),
        ]
        return self._run(
            "UpdateItem", _conditional(lambda: model(key).update(actions=actions, condition=condition))
        )

    def mark_failed(self, key: str, owner: str, now: float, backoff_seconds: float, error: str) -> None:
        """Record that ``owner``'s refresh failed: keep the lease for ``backoff_seconds`` (so
        nobody retries sooner) and tell waiting callers to stop waiting.

        Does nothing unless ``owner`` holds the lease. A later :meth:`put` clears the marker.
        """
        model = self.model
        until = now + backoff_seconds
        actions: list[Any] = [
            model.lease_until.set(until),
            model.failed_until.set(until),
            model.last_error.set(error[:500] or "error"),
        ]
        self._run(
            "UpdateItem",
            _conditional(lambda: model(key).update(actions=actions, condition=model.lease_owner == owner)),
        )

    def delete(self, key: str, only_if: Mapping[str, str] | None = None) -> bool:
        """Delete ``key`` (no error if absent); True unless ``only_if`` stopped it.

        ``only_if`` maps top-level string fields of the stored value to what they must hold
        (e.g. a claim's ``token``): the delete is then conditional, so an owner only ever
        removes its own record. The value is compact JSON with sorted keys (:func:`dumps`), so
        each field is the exact substring ``"name":"value"``.
        """
        model = self.model
        if not only_if:
            return self._run("DeleteItem", _conditional(model(key).delete))
        condition = None
        for name, expected in sorted(only_if.items()):
            needed = model.value.contains(field_text(name, expected))
            condition = needed if condition is None else condition & needed
        return self._run("DeleteItem", _conditional(lambda: model(key).delete(condition=condition)))


def _conditional(write: Callable[[], Any]) -> Callable[[], bool]:
    """``write`` as a call returning True when done, False when its condition failed."""

    def attempt() -> bool:
        try:
            write()
            return True
        except _STORE_ERRORS as exc:
            if classify(exc).code == _CONDITION_FAILED:
                return False
            raise

    return attempt
