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

import logging
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.exceptions import PynamoDBException
from pynamodb.models import Model

from estimator.breaker import Breaker, error_code
from estimator.clock import SYSTEM_CLOCK, Clock
from estimator.config import Config
from estimator.exceptions import StoreUnavailable
from estimator.items import StoredItem, decode_item, dumps, encode_item, ttl_datetime

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


_models: dict[tuple[Any, ...], type[CacheItem]] = {}
_models_lock = threading.Lock()


def item_model(config: Config, session: Any = None) -> type[CacheItem]:
    """A :class:`CacheItem` subclass bound to ``config``'s table, region, endpoint and timeouts.

    Credentials come from ``session`` (a ``boto3.Session``) when given, else from the
    default chain. Bound models are reused: each owns a botocore client, which is costly to
    create and safe to share between threads.
    """
    attrs = _meta_attributes(config, session)
    identity = attrs.get("aws_access_key_id") or _default_identity()
    key = (identity, *sorted((name, str(value)) for name, value in attrs.items()))
    with _models_lock:
        model = _models.get(key)
        if model is None:
            meta = type("Meta", (), attrs)
            model = _models[key] = type("BoundCacheItem", (CacheItem,), {"Meta": meta})
            # Build the botocore client now, once: pynamodb builds it lazily, and many threads
            # arriving together would each build (and throw away) their own.
            model._get_connection().connection.client  # noqa: B018
        return model


def _default_identity() -> str | None:
    """Who the default credential chain says we are now: a model (and its client) is kept per
    identity, so changed credentials, or none at all, are not hidden by a cached client."""
    import boto3

    credentials = boto3.Session().get_credentials()
    return None if credentials is None else credentials.get_frozen_credentials().access_key


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
        clock: Clock = SYSTEM_CLOCK,
    ):
        self.config = config
        self.model = model or item_model(config, session)
        self.breaker = breaker or Breaker(
            f"table {config.table_name!r}", config.error_backoff_seconds, clock
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
            if not self.model.exists():
                try:
                    self.model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
                    return True
                except _STORE_ERRORS as exc:
                    # Another creator won the race, or our own CreateTable succeeded, its reply
                    # timed out and the SDK's retry found the table: it exists, as asked.
                    if error_code(exc) != "ResourceInUseException":
                        raise
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
    def get(self, key: str, *, consistent: bool = True) -> StoredItem | None:
        """The item at ``key``, ``None`` if absent; ``consistent=False`` reads it eventually
        consistent (half the read units; DynamoDB says a write is usually seen within a second)."""
        raw = self._run(
            "GetItem",
            lambda: self.model._get_connection().get_item(key, consistent_read=consistent),
        )
        item = raw.get("Item")
        if not item:
            return None
        return decode_item(key, item)

    def put(self, key: str, value: dict[str, Any], fresh_until: float, keep_until: float) -> None:
        """Overwrite ``key`` with ``value``; drops any lease."""
        item = self.model(
            key,
            value=dumps(value),
            fresh_until=fresh_until,
            ttl=ttl_datetime(keep_until),
        )
        self._run("PutItem", item.save)

    def put_if_absent(
        self, key: str, value: dict[str, Any], keep_until: float, now: float | None = None
    ) -> StoredItem | None:
        """Create ``key`` unless a live item exists: ``None`` if created, else the existing item.

        An item past its TTL that DynamoDB has not deleted yet counts as absent.
        """
        model = self.model
        item = model(key, value=dumps(value), fresh_until=keep_until, ttl=ttl_datetime(keep_until))
        condition = model.pk.does_not_exist()
        if now is not None:
            condition = condition | (model.ttl < datetime.fromtimestamp(math.floor(now), tz=UTC))
        if self._run("PutItem", _conditional(lambda: item.save(condition=condition))):
            return None
        existing = self.get(key)
        if existing is None:  # deleted in between: try once more
            return self.put_if_absent(key, value, keep_until, now)
        return existing

    def create(
        self, key: str, value: dict[str, Any], keep_until: float, now: float
    ) -> StoredItem | None:
        """Create ``key`` unless a live item exists, in one request: ``None`` if created, else
        the existing item, returned by the failed condition itself (no read before the write).

        An item past its TTL that DynamoDB has not deleted yet counts as absent.
        """
        request = {
            "TableName": self.config.table_name,
            "Item": encode_item(key, value, keep_until, keep_until),
            "ConditionExpression": "attribute_not_exists(pk) OR #ttl < :now",
            "ExpressionAttributeNames": {"#ttl": "ttl"},
            "ExpressionAttributeValues": {":now": {"N": str(math.floor(now))}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        old: dict[str, Any] = {}

        def attempt() -> bool:
            try:
                self._client.put_item(**request)
                return True
            except ClientError as exc:
                if error_code(exc) != _CONDITION_FAILED:
                    raise
                found: Any = exc.response.get("Item")
                old.update(found if isinstance(found, dict) else {})
                return False

        if self._run("PutItem", attempt):
            return None
        if old:
            return decode_item(key, old)
        existing = self.get(key)  # no old image in the reply: read it
        if existing is None:  # deleted in between: try once more
            return self.create(key, value, keep_until, now)
        return existing

    def put_many(self, items: list[tuple[str, dict[str, Any], float, float]]) -> None:
        """Overwrite several items in one BatchWriteItem: ``(key, value, fresh_until, keep_until)``.

        Items DynamoDB leaves unprocessed (throttling) are sent again once, then reported as
        :class:`StoreUnavailable`.
        """
        requests = [
            {"PutRequest": {"Item": encode_item(key, value, fresh, keep)}}
            for key, value, fresh, keep in items
        ]
        table = self.config.table_name

        def attempt() -> None:
            pending = {table: requests}
            for _ in range(2):
                response = self._client.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    return
            raise StoreUnavailable("BatchWriteItem", RuntimeError(f"unprocessed: {pending}"))

        self._run("BatchWriteItem", attempt)

    def get_many(
        self, keys: list[str], *, consistent: bool = True
    ) -> dict[str, StoredItem | None]:
        """Several items in one BatchGetItem (up to 100 keys; strongly consistent unless
        ``consistent=False``); absent keys map to ``None``. Keys DynamoDB leaves unprocessed
        are asked once more."""
        table = self.config.table_name
        found: dict[str, StoredItem | None] = dict.fromkeys(keys)

        def attempt() -> None:
            wanted = [{"pk": {"S": key}} for key in keys]
            pending: Any = {table: {"Keys": wanted, "ConsistentRead": consistent}}
            for _ in range(2):
                response = self._client.batch_get_item(RequestItems=pending)
                for raw in response.get("Responses", {}).get(table, []):
                    key = raw.get("pk", {}).get("S")
                    if key in found:
                        found[key] = decode_item(key, raw)
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    return
            raise StoreUnavailable("BatchGetItem", RuntimeError(f"unprocessed: {pending}"))

        if keys:
            self._run("BatchGetItem", attempt)
        return found

    @property
    def _client(self) -> Any:
        """The botocore client under the pynamodb model (for what pynamodb does not expose)."""
        return self.model._get_connection().connection.client

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
            # Past its TTL, DynamoDB may delete it any moment: as good as absent.
            | (model.ttl < datetime.fromtimestamp(math.floor(now), tz=UTC))
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

    def delete(self, key: str) -> None:
        """Delete ``key`` (no error if absent)."""
        self._run("DeleteItem", self.model(key).delete)


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


