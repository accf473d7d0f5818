"""Tier 2: one DynamoDB table, through a pynamodb model, shared by every execution.

This module is the extension point for other item kinds: any package may keep its own items
in the same table through :class:`DynamoStore`, with keys of its own prefix (see
:mod:`estimator.keys` for the estimator's). Items are keyed by a string ``pk`` and hold a JSON
value, when it stops being fresh (``fresh_until``), when DynamoDB may delete it (``ttl``, the
table's TTL attribute) and an optional refresh lease. DynamoDB deletes expired items lazily,
so readers compare the clock with ``fresh_until``/``ttl`` themselves. Every call goes through
the table's one :class:`~estimator.breaker.Breaker`.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.exceptions import PynamoDBException
from pynamodb.models import Model

from estimator.breaker import Breaker, error_code
from estimator.config import Config
from estimator.exceptions import StoreUnavailable

log = logging.getLogger(__name__)

_CONDITION_FAILED = "ConditionalCheckFailedException"
# What a DynamoDB call can raise: pynamodb's wrappers, and botocore's own (no region,
# connection refused...) which pynamodb lets through.
_STORE_ERRORS = (PynamoDBException, BotoCoreError, ClientError)
T = TypeVar("T")


class CacheItem(Model):
    """The item schema; :func:`item_model` binds it to a table, region and endpoint."""

    class Meta:
        table_name = "lambda-siblings"

    pk = UnicodeAttribute(hash_key=True)
    value = UnicodeAttribute(null=True)
    fresh_until = NumberAttribute(null=True)
    ttl = TTLAttribute(null=True)
    lease_owner = UnicodeAttribute(null=True)
    lease_until = NumberAttribute(null=True)
    failed_until = NumberAttribute(null=True)
    last_error = UnicodeAttribute(null=True)


@dataclass(frozen=True)
class StoredItem:
    """A decoded item. ``value`` is ``None`` when the item is corrupt or foreign."""

    key: str
    value: dict[str, Any] | None
    fresh_until: float | None = None
    keep_until: float | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    corrupt: bool = False
    """Holds attributes of the wrong type or shape (a foreign or damaged item)."""
    failed_until: float | None = None
    """The last refresh failed; until then nobody in the fleet retries it."""
    last_error: str | None = None
    """What that refresh failed with."""

    def is_fresh(self, now: float) -> bool:
        """Holds a usable value that has not expired by the reader's own clock."""
        return (
            self.value is not None
            and self.fresh_until is not None
            and self.fresh_until > now
            and not self.is_gone(now)
        )

    def is_gone(self, now: float) -> bool:
        """Past its TTL: DynamoDB would delete it any time, so treat it as deleted."""
        return self.keep_until is not None and self.keep_until <= now

    def lease_held(self, now: float) -> bool:
        """Another refresher holds an unexpired lease."""
        return self.lease_until is not None and self.lease_until > now

    def recently_failed(self, now: float) -> bool:
        """A refresh failed a moment ago and the fleet is backing off."""
        return self.failed_until is not None and self.failed_until > now


_models: dict[tuple[Any, ...], type[CacheItem]] = {}
_models_lock = threading.Lock()


def item_model(config: Config, session: Any = None) -> type[CacheItem]:
    """A :class:`CacheItem` subclass bound to ``config``'s table, region, endpoint and timeouts.

    Credentials come from ``session`` (a ``boto3.Session``) when given, else from the
    default chain. Bound models are reused: each owns a botocore client, which is costly to
    create and safe to share between threads.
    """
    attrs = _meta_attributes(config, session)
    key = tuple(sorted((name, str(value)) for name, value in attrs.items()))
    with _models_lock:
        model = _models.get(key)
        if model is None:
            meta = type("Meta", (), attrs)
            model = _models[key] = type("BoundCacheItem", (CacheItem,), {"Meta": meta})
            # Build the botocore client now, once: pynamodb builds it lazily, and many threads
            # arriving together would each build (and throw away) their own.
            model._get_connection().connection.client  # noqa: B018
        return model


def _meta_attributes(config: Config, session: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "table_name": config.table_name,
        "connect_timeout_seconds": config.dynamodb_timeout_seconds,
        "read_timeout_seconds": config.dynamodb_timeout_seconds,
        # Few, fast retries: a throttled or failing table degrades to tier 1 + CloudWatch.
        "max_retry_attempts": 2,
        "billing_mode": "PAY_PER_REQUEST",
    }
    region = config.region_name or (session.region_name if session is not None else None)
    if region:
        attrs["region"] = region
    if config.endpoint_url:
        attrs["host"] = config.endpoint_url
    if session is not None:
        credentials = session.get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            attrs["aws_access_key_id"] = frozen.access_key
            attrs["aws_secret_access_key"] = frozen.secret_key
            attrs["aws_session_token"] = frozen.token
    return attrs


def _epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def _ttl_datetime(epoch: float) -> datetime:
    # DynamoDB TTL is whole seconds; round up so an item is never deleted before keep_until.
    return datetime.fromtimestamp(math.ceil(epoch), tz=UTC)


class DynamoStore:
    """Reads and writes cache items in the shared table; every failure is :class:`StoreUnavailable`.

    ``breaker`` defaults to a new :class:`Breaker` for this store; share one store (or pass the
    same breaker) between the users of one table so that an outage is detected once.
    """

    def __init__(
        self,
        config: Config,
        session: Any = None,
        model: type[CacheItem] | None = None,
        breaker: Breaker | None = None,
    ):
        self.config = config
        self.model = model or item_model(config, session)
        self.breaker = breaker or Breaker(
            f"table {config.table_name!r}", config.error_backoff_seconds
        )

    def _run(self, operation: str, action: Callable[[], T]) -> T:
        """Run one DynamoDB call through the breaker, wrapping its errors."""

        def guarded() -> T:
            try:
                return action()
            except _STORE_ERRORS as exc:
                raise StoreUnavailable(operation, exc) from exc

        return self.breaker.call(operation, guarded)

    # --- table ---
    def ensure_table(self) -> bool:
        """Create the table (on-demand, TTL on ``ttl``) unless it exists; True if created.

        Idempotent: an existing table only gets its TTL switched on if it is off.
        """
        try:
            created = not self.model.exists()
            if created:
                self.model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
                return True
            client: Any = self.model._get_connection().connection.client
            status = client.describe_time_to_live(TableName=self.config.table_name)
            if status["TimeToLiveDescription"].get("TimeToLiveStatus") not in {
                "ENABLED",
                "ENABLING",
            }:
                self.model.update_ttl(ignore_update_ttl_errors=False)
            return False
        except _STORE_ERRORS as exc:
            raise StoreUnavailable("ensure_table", exc) from exc

    # --- items ---
    def get(self, key: str) -> StoredItem | None:
        """The item at ``key`` (strongly consistent), ``None`` if absent."""
        raw = self._run(
            "GetItem", lambda: self.model._get_connection().get_item(key, consistent_read=True)
        )
        item = raw.get("Item")
        if not item:
            return None
        return self._decode(key, item)

    def put(self, key: str, value: dict[str, Any], fresh_until: float, keep_until: float) -> None:
        """Overwrite ``key`` with ``value``; drops any lease."""
        item = self.model(
            key,
            value=_dumps(value),
            fresh_until=fresh_until,
            ttl=_ttl_datetime(keep_until),
        )
        self._run("PutItem", item.save)

    def put_if_absent(
        self, key: str, value: dict[str, Any], keep_until: float, now: float | None = None
    ) -> StoredItem | None:
        """Create ``key`` unless a live item exists: ``None`` if created, else the existing item.

        An item past its TTL that DynamoDB has not deleted yet counts as absent.
        """
        model = self.model
        item = model(key, value=_dumps(value), fresh_until=keep_until, ttl=_ttl_datetime(keep_until))
        condition = model.pk.does_not_exist()
        if now is not None:
            condition = condition | (model.ttl < datetime.fromtimestamp(math.floor(now), tz=UTC))
        if self._run("PutItem", _conditional(lambda: item.save(condition=condition))):
            return None
        existing = self.get(key)
        if existing is None:  # deleted in between: try once more
            return self.put_if_absent(key, value, keep_until, now)
        return existing

    def try_lease(self, key: str, owner: str, now: float, lease_seconds: float) -> bool:
        """Take the refresh lease of ``key`` if its value is stale or absent and no live lease exists.

        One conditional UpdateItem: exactly one of many concurrent callers wins.
        """
        model = self.model
        # The holder itself may take its lease again (a retry after its own failed refresh).
        no_live_lease = (
            model.lease_until.does_not_exist()
            | (model.lease_until < now)
            | (model.lease_owner == owner)
        )
        stale = (
            model.fresh_until.does_not_exist()
            | (model.fresh_until <= now)
            # Past its TTL, DynamoDB may delete it any moment: as good as absent.
            | (model.ttl < datetime.fromtimestamp(math.floor(now), tz=UTC))
        )
        condition = model.pk.does_not_exist() | (no_live_lease & stale)
        actions: list[Any] = [
            model.lease_owner.set(owner),
            model.lease_until.set(now + lease_seconds),
            # A lease on a new key must not outlive its holder forever.
            model.ttl.set(model.ttl | _ttl_datetime(now + lease_seconds + 3600)),
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

    def delete(self, key: str) -> None:
        """Delete ``key`` (no error if absent)."""
        self._run("DeleteItem", self.model(key).delete)

    def _decode(self, key: str, item: dict[str, Any]) -> StoredItem:
        """Decode a raw item; anything malformed gives ``value=None`` rather than an error."""
        value: dict[str, Any] | None = None
        text = _scalar(item.get("value"), "S")
        if text is not None:
            try:
                decoded = json.loads(text)
                value = decoded if isinstance(decoded, dict) else None
            except ValueError:
                value = None
        fresh_until = _number(item.get("fresh_until"))
        lease_until = _number(item.get("lease_until"))
        corrupt = (
            ("value" in item and value is None)
            or ("fresh_until" in item and fresh_until is None)
            or ("lease_until" in item and lease_until is None)
            or ("ttl" in item and _number(item.get("ttl")) is None)
            or (value is not None and fresh_until is None)
        )
        if corrupt:
            value = None
        return StoredItem(
            key=key,
            value=value,
            fresh_until=fresh_until,
            keep_until=_number(item.get("ttl")),
            lease_owner=_scalar(item.get("lease_owner"), "S"),
            lease_until=lease_until,
            corrupt=corrupt,
            failed_until=_number(item.get("failed_until")),
            last_error=_scalar(item.get("last_error"), "S"),
        )


def _conditional(write: Callable[[], Any]) -> Callable[[], bool]:
    """``write`` as a call returning True when done, False when its condition failed."""

    def attempt() -> bool:
        try:
            write()
            return True
        except _STORE_ERRORS as exc:
            if error_code(exc) == _CONDITION_FAILED:
                return False
            raise

    return attempt


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _scalar(attribute: Any, kind: str) -> str | None:
    if isinstance(attribute, dict) and isinstance(attribute.get(kind), str):
        return str(attribute[kind])
    return None


def _number(attribute: Any) -> float | None:
    text = _scalar(attribute, "N")
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
