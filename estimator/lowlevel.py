"""The DynamoDB calls pynamodb's public API does not offer, on one botocore client of our own.

pynamodb's ``Model`` has no way to ask for ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` (the
claim of a step returns the holder's record in the same request) or ``DescribeTimeToLive``, and
its reads (``Model.get``, ``Model.batch_get``) raise on an item of the wrong shape, where the
library decodes defensively (:func:`estimator.items.decode_item`: a foreign or damaged item is
marked corrupt, never an error). Those calls go through :class:`LowLevel`, made with the same
settings as the bound model (Region, endpoint, timeouts, retries, credentials), its client made
on the first call. Nothing here touches pynamodb's private attributes.
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.exceptions import ClientError

from estimator.exceptions import StoreThrottled

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

    def get(self, key: str) -> dict[str, Any] | None:
        """The raw item at ``key`` (consistent read), ``None`` if absent."""
        reply = self.client.get_item(TableName=self.table, Key={"pk": {"S": key}}, ConsistentRead=True)
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

    def put_many(self, items: list[dict[str, Any]]) -> None:
        """One BatchWriteItem of raw items; what stays unprocessed is sent once more, then
        reported as :class:`StoreThrottled`."""
        pending: Any = {self.table: [{"PutRequest": {"Item": item}} for item in items]}
        for _ in range(2):
            pending = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                return
        raise StoreThrottled("BatchWriteItem", RuntimeError(f"unprocessed: {pending}"))

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Raw items by key in one consistent BatchGetItem (absent keys are left out);
        unprocessed keys are asked once more, then reported as :class:`StoreThrottled`."""
        found: dict[str, dict[str, Any]] = {}
        pending: Any = {self.table: {"Keys": [{"pk": {"S": key}} for key in keys], "ConsistentRead": True}}
        for _ in range(2):
            response = self.client.batch_get_item(RequestItems=pending)
            for raw in response.get("Responses", {}).get(self.table, []):
                key = raw.get("pk", {}).get("S")
                if isinstance(key, str):
                    found[key] = raw
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                return found
        raise StoreThrottled("BatchGetItem", RuntimeError(f"unprocessed: {pending}"))

    def ttl_enabled(self) -> bool:
        """The table's TTL is on (or being switched on)."""
        status = self.client.describe_time_to_live(TableName=self.table)
        return status["TimeToLiveDescription"].get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}
