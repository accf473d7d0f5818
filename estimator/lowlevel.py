"""The DynamoDB calls pynamodb's public API does not offer, on one botocore client of our own.

What pynamodb 6 lacks, call by call (everything else goes through the bound ``Model``):

* **PutItem returning the holder's record** (``ReturnValuesOnConditionCheckFailure=ALL_OLD``,
  how a step's claim learns who holds it in the same request): pynamodb offers it only inside
  ``TransactWrite``, which costs twice the write units.
* **BatchGetItem and BatchWriteItem with backoff**: ``Model.batch_get`` sends unprocessed keys
  again at once and without a bound, ``Model.batch_write`` sends unprocessed items again with
  no wait (AWS asks for exponential backoff, :mod:`estimator.batch_retry`) and fails without
  saying which; here each call returns what is left, and the store resends it.
* **GetItem of any item**: ``Model.get`` and ``batch_get`` raise on an attribute of a foreign
  type; the library decodes defensively (:func:`estimator.items.decode_item`: a damaged item
  is marked corrupt and repaired, never an error).
* **DescribeTimeToLive**: pynamodb can switch TTL on, not tell whether it is.

:class:`LowLevel` is made with the same settings as the bound model (Region, endpoint,
timeouts, retries, credentials), its client made on the first call. Nothing here touches
pynamodb's private attributes.
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.exceptions import ClientError

_CONDITION_FAILED = "ConditionalCheckFailedException"


class LowLevel:
    """Raw GetItem, BatchGetItem, BatchWriteItem, PutItem-returning-the-old-item and
    DescribeTimeToLive on one table; errors are botocore's (the store translates them)."""

    def __init__(self, table: str, meta: Any) -> None:
        self.table = table
        self.meta = meta
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The botocore client, made once on first use (threads arriving together share it)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        import botocore.client
        import botocore.session

        session = botocore.session.get_session()
        key = getattr(self.meta, "aws_access_key_id", None)
        if key:
            session.set_credentials(key, self.meta.aws_secret_access_key,
                                    getattr(self.meta, "aws_session_token", None))
        # The same client settings as the pynamodb model's (pynamodb.connection.base).
        config = botocore.client.Config(
            parameter_validation=False,
            connect_timeout=self.meta.connect_timeout_seconds,
            read_timeout=self.meta.read_timeout_seconds,
            max_pool_connections=10,
            retries={"total_max_attempts": 1 + self.meta.max_retry_attempts, "mode": "standard"},
        )
        return session.create_client("dynamodb", self.meta.region,
                                     endpoint_url=getattr(self.meta, "host", None), config=config)

    def get(self, key: str, consistent: bool = True) -> dict[str, Any] | None:
        """The raw item at ``key`` (a consistent read unless not ``consistent``), ``None`` if absent."""
        reply = self.client.get_item(TableName=self.table, Key={"pk": {"S": key}},
                                     ConsistentRead=consistent)
        return reply.get("Item") or None

    def create(self, item: dict[str, Any], now_floor: int) -> tuple[bool, dict[str, Any]]:
        """Put ``item`` unless a live one exists (TTL after ``now_floor``, see
        :func:`estimator.items.expired`): ``(True, {})``, or ``(False, the old item)``."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR #ttl <= :now",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":now": {"N": str(now_floor)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return True, {}
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != _CONDITION_FAILED:
                raise
            found: Any = exc.response.get("Item")
            return False, found if isinstance(found, dict) else {}

    def write_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One BatchWriteItem of ``PutRequest``/``DeleteRequest`` entries on this table; the
        entries DynamoDB left unprocessed (the store sends them again, see
        :mod:`estimator.batch_retry`)."""
        if not requests:
            return []
        reply = self.client.batch_write_item(RequestItems={self.table: requests})
        return list((reply.get("UnprocessedItems") or {}).get(self.table) or [])

    def read_batch(
        self, keys: list[str], consistent: bool = True
    ) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """One BatchGetItem (consistent unless not ``consistent``): raw items by key (absent
        keys are left out), and the keys DynamoDB left unprocessed."""
        if not keys:
            return {}, []
        wanted = [{"pk": {"S": key}} for key in keys]
        request = {self.table: {"Keys": wanted, "ConsistentRead": consistent}}
        reply = self.client.batch_get_item(RequestItems=request)
        found: dict[str, dict[str, Any]] = {}
        for raw in (reply.get("Responses") or {}).get(self.table, []):
            key = raw.get("pk", {}).get("S")
            if isinstance(key, str):
                found[key] = raw
        left = (reply.get("UnprocessedKeys") or {}).get(self.table) or {}
        unread = [k.get("pk", {}).get("S") for k in left.get("Keys") or []]
        return found, [key for key in unread if isinstance(key, str)]

    def ttl_enabled(self) -> bool:
        """The table's TTL is on (or being switched on)."""
        status = self.client.describe_time_to_live(TableName=self.table)
        return status["TimeToLiveDescription"].get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}
