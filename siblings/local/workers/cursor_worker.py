"""A Lambda worker that walks a cursor and hands the rest to a sibling before its deadline.

This is the handler ``siblings simulate`` (``make demo``) runs, and the one docs/deploy.md deploys.
Deploy it as is: ``lambda_handler`` reads its settings from the environment
(``CURSOR_WORKER_TABLE``, optionally ``CURSOR_WORKER_OUTPUT_TABLE``, and the library's
``SIBLINGS_*``).

The job: ``records`` items per chain, processed in order; a chain is one cursor. Each
execution processes records while time is left, then spawns a sibling with the cursor.

Exactly once, with crashes and retries
--------------------------------------
Lambda retries a failed async event twice, with the same request id and event, and a crashed
execution may already have done part of its work (or even spawned its sibling). Spawning is
idempotent in the library (one sibling per chain step). The work is made exactly-once here
with DynamoDB (key ``pk``) and conditional writes only:

* the chain table, one item per chain: ``cursor`` (next record), ``epoch`` and ``owner`` (who
  may work on the chain), ``status`` (``running``/``parked``/``done``), a ``heartbeat``;
* the output table (the same table unless ``CURSOR_WORKER_OUTPUT_TABLE`` names another), one
  item per committed batch, keyed ``<chain>#<first record>``: the results of ``count``
  consecutive records.

1. **Claim.** An execution carries an ``epoch`` in its payload (the sibling gets ``epoch + 1``)
   and claims the chain with one conditional write: the stored epoch must be lower, or equal
   with this execution as owner (a retry of the same request). A stale execution (its chain
   was taken over) stops without doing anything, and so does a second execution of the same
   chain step (``run.duplicate``: the library lets one execution per step run).
2. **Write the batch once, then move the cursor.** The output item of a batch starting at
   ``n`` is written only if no item exists for ``n``; if one does (a crashed attempt or a zombie
   wrote it first), that item is the batch and this one's results are dropped. Then the cursor
   moves from ``n`` past the batch, only if it is still ``n`` and we still own the chain;
   failing that, we lost the chain and stop. A retry resumes from the stored cursor (the
   payload's cursor is only a hint). Processing is at least once, the output exactly once:
   no record is covered by two output items (the simulation checks this).
3. **Hand off.** Out of time: ``spawn_sibling({"chain", "epoch": epoch + 1, "cursor"})``.
   ``SpawnFailed`` propagates so Lambda retries this event, and the retry resumes from the
   stored cursor. A refusal (concurrency, generation limit, kill switch) parks the chain.
4. **Resume.** The EventBridge schedule that keeps spawning enabled also invokes this function.
   A scheduled execution adopts one parked chain, or one whose heartbeat is older than
   ``stale_after_seconds`` (every retry of its execution failed), by raising the epoch; a
   retried scheduled execution takes back the chain its crashed attempt had adopted.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from siblings import Invocation, SiblingsManager

Process = Callable[[str, int], str]
"""``process(chain_id, index) -> result``: the work on one record (your code)."""


def process_record(chain_id: str, index: int) -> str:
    """Stand-in for real work: a little CPU and I/O time, and a deterministic result."""
    time.sleep(float(os.environ.get("CURSOR_WORKER_RECORD_SECONDS", "0.02")))
    return hashlib.sha256(f"{chain_id}:{index}".encode()).hexdigest()[:16]


def chain_key(chain_id: str) -> dict[str, Any]:
    """Key of a chain's item in the chain table."""
    return {"pk": {"S": chain_id}}


def batch_key(chain_id: str, start: int) -> dict[str, Any]:
    """Key of the output item of the batch starting at record ``start``."""
    return {"pk": {"S": f"{chain_id}#{start}"}}


@dataclass(frozen=True)
class Chain:
    """A chain as claimed by one execution."""

    chain_id: str
    records: int
    cursor: int
    epoch: int


class ChainStore:
    """The chain table (cursors) and the output table (results); see the module doc."""

    def __init__(
        self,
        dynamodb: Any,
        table_name: str,
        output_table_name: str | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.dynamodb = dynamodb
        self.table_name = table_name
        # One table can hold both; a separate output table keeps the schedule's scan small.
        self.output_table_name = output_table_name or table_name
        self.clock = clock

    def create_tables(self) -> None:
        """Create the table(s) (on-demand)."""
        for name in dict.fromkeys((self.table_name, self.output_table_name)):
            self.dynamodb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )

    def add_chain(self, chain_id: str, records: int) -> None:
        """A new chain of ``records`` records, cursor 0, not yet claimed (epoch 0)."""
        self.dynamodb.put_item(
            TableName=self.table_name,
            Item={
                **chain_key(chain_id),
                "records": {"N": str(records)},
                "cursor": {"N": "0"},
                "epoch": {"N": "0"},
                "owner": {"S": ""},
                "status": {"S": "parked"},
                "heartbeat": {"N": str(self.clock())},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )

    def claim(self, chain_id: str, epoch: int, owner: str) -> Chain | None:
        """Take the chain for ``epoch`` (or keep it, on a retry); ``None`` if it moved on."""
        response = self._update_chain(
            chain_id,
            UpdateExpression="SET epoch = :e, #o = :o, #s = :running, heartbeat = :now",
            ConditionExpression=(
                "attribute_exists(pk) AND #s <> :done AND "
                "(epoch < :e OR (epoch = :e AND #o = :o))"
            ),
            ExpressionAttributeNames={"#o": "owner", "#s": "status"},
            ExpressionAttributeValues={
                ":e": {"N": str(epoch)},
                ":o": {"S": owner},
                ":running": {"S": "running"},
                ":done": {"S": "done"},
                ":now": {"N": str(self.clock())},
            },
            ReturnValues="ALL_NEW",
        )
        return None if response is None else _chain(response["Attributes"])

    def commit(self, chain: Chain, owner: str, start: int, results: list[str]) -> int | None:
        """Commit a batch of results starting at record ``start``; return the new cursor.

        ``None`` when the chain is no longer ours at that cursor: stop working on it. The new
        cursor may differ from ``start + len(results)`` when an earlier attempt had already
        written a batch at ``start``: that batch stands.
        """
        try:
            self.dynamodb.put_item(
                TableName=self.output_table_name,
                Item={
                    **batch_key(chain.chain_id, start),
                    "count": {"N": str(len(results))},
                    "results": {"L": [{"S": result} for result in results]},
                    "epoch": {"N": str(chain.epoch)},
                },
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            count = len(results)
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            response: dict[str, Any] = dict(exc.response)
            count = int(response["Item"]["count"]["N"])  # written before: that batch stands
        moved = self._update_chain(
            chain.chain_id,
            UpdateExpression="SET #c = :next, heartbeat = :now",
            ConditionExpression="epoch = :e AND #o = :o AND #c = :at",
            ExpressionAttributeNames={"#c": "cursor", "#o": "owner"},
            ExpressionAttributeValues={
                ":e": {"N": str(chain.epoch)},
                ":o": {"S": owner},
                ":at": {"N": str(start)},
                ":next": {"N": str(start + count)},
                ":now": {"N": str(self.clock())},
            },
        )
        return None if moved is None else start + count

    def coverage(self) -> dict[tuple[str, int], int]:
        """How many output items cover each record (a full scan of the output table)."""
        counts: dict[tuple[str, int], int] = {}
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.output_table_name)
        for page in pages:
            for item in page.get("Items", []):
                if "count" not in item:
                    continue  # a chain item, when one table holds both
                chain_id, _, start = item["pk"]["S"].rpartition("#")
                for index in range(int(start), int(start) + int(item["count"]["N"])):
                    counts[(chain_id, index)] = counts.get((chain_id, index), 0) + 1
        return counts

    def set_status(self, chain: Chain, owner: str, status: str) -> bool:
        """Mark the chain ``parked`` or ``done`` if we still own it."""
        changed = self._update_chain(
            chain.chain_id,
            UpdateExpression="SET #s = :s, heartbeat = :now",
            ConditionExpression="epoch = :e AND #o = :o",
            ExpressionAttributeNames={"#s": "status", "#o": "owner"},
            ExpressionAttributeValues={
                ":s": {"S": status},
                ":e": {"N": str(chain.epoch)},
                ":o": {"S": owner},
                ":now": {"N": str(self.clock())},
            },
        )
        return changed is not None

    def adopt(self, owner: str, stale_after_seconds: float) -> Chain | None:
        """Claim one parked chain, or one abandoned for ``stale_after_seconds``; else ``None``.

        A retry of a scheduled execution first gets back the chain its crashed attempt had
        adopted (same request id, so same owner): otherwise that chain would wait to go stale.
        """
        cutoff = self.clock() - stale_after_seconds
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.table_name,
            FilterExpression="#s = :parked OR (#s = :running AND "
            "(heartbeat < :cutoff OR #o = :me))",
            ExpressionAttributeNames={"#s": "status", "#o": "owner"},
            ExpressionAttributeValues={
                ":parked": {"S": "parked"},
                ":running": {"S": "running"},
                ":cutoff": {"N": str(cutoff)},
                ":me": {"S": owner},
            },
        )
        candidates = [item for page in pages for item in page.get("Items", [])]
        for item in candidates:
            if item["owner"]["S"] == owner and item["status"]["S"] == "running":
                mine = _chain(item)
                return self.claim(mine.chain_id, mine.epoch, owner)
        for item in candidates:
            claimed = self._take_over(_chain(item), owner, cutoff)
            if claimed is not None:
                return claimed
        return None

    def _take_over(self, seen: Chain, owner: str, cutoff: float) -> Chain | None:
        response = self._update_chain(
            seen.chain_id,
            UpdateExpression="SET epoch = :next, #o = :o, #s = :running, heartbeat = :now",
            ConditionExpression="epoch = :seen AND (#s = :parked OR "
            "(#s = :running AND heartbeat < :cutoff))",
            ExpressionAttributeNames={"#o": "owner", "#s": "status"},
            ExpressionAttributeValues={
                ":seen": {"N": str(seen.epoch)},
                ":next": {"N": str(seen.epoch + 1)},
                ":o": {"S": owner},
                ":running": {"S": "running"},
                ":parked": {"S": "parked"},
                ":cutoff": {"N": str(cutoff)},
                ":now": {"N": str(self.clock())},
            },
            ReturnValues="ALL_NEW",
        )
        # None: someone else took it first.
        return None if response is None else _chain(response["Attributes"])

    def _update_chain(self, chain_id: str, **request: Any) -> dict[str, Any] | None:
        """``UpdateItem`` on a chain's item; ``None`` when its condition failed."""
        try:
            response: dict[str, Any] = self.dynamodb.update_item(
                TableName=self.table_name, Key=chain_key(chain_id), **request
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        return response


class CursorWorker:
    """The handler: ``worker(event, context)``.

    ``manager`` is the :class:`~siblings.SiblingsManager` (default: one per container, from the
    ``SIBLINGS_*`` environment); ``shutdown_seconds`` is the time kept back to commit and spawn;
    ``batch_size`` records are committed at a time.
    """

    def __init__(
        self,
        store: ChainStore,
        *,
        manager: SiblingsManager | None = None,
        process: Process = process_record,
        shutdown_seconds: float = 10.0,
        stale_after_seconds: float = 3600.0,
        batch_size: int = 10,
    ) -> None:
        if not 1 <= batch_size <= 100:
            raise ValueError("batch_size must be within 1..100")
        self.store = store
        self.batch_size = batch_size
        self.manager = manager
        self.process = process
        self.shutdown_seconds = shutdown_seconds
        self.stale_after_seconds = stale_after_seconds

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        run = Invocation(
            event, context, shutdown_seconds=self.shutdown_seconds, manager=self.manager
        )
        me = context.aws_request_id
        if run.duplicate is not None:  # another execution runs this chain step: no work here
            return {"action": "duplicate", "generation": run.generation,
                    "runner": run.duplicate.runner}
        if run.payload.get("source") == "aws.events":  # the schedule: resume a stuck chain
            chain = self.store.adopt(me, self.stale_after_seconds)
            if chain is None:
                return {"action": "idle"}
        elif "chain" not in run.payload or "epoch" not in run.payload:
            return {"action": "ignored", "reason": "not a chain event"}
        else:
            chain = self.store.claim(run.payload["chain"], int(run.payload["epoch"]), me)
            if chain is None:
                return {"action": "stale", "chain": run.payload["chain"]}

        report: dict[str, Any] = {
            "chain": chain.chain_id,
            "epoch": chain.epoch,
            "generation": run.generation,
            "from": chain.cursor,
        }
        cursor = chain.cursor
        while cursor < chain.records and run.sufficient_execution_time_left:
            # A batch per commit: fewer writes; a crash loses only uncommitted work.
            results: list[str] = []
            while (
                len(results) < self.batch_size
                and cursor + len(results) < chain.records
                and run.sufficient_execution_time_left
            ):
                results.append(self.process(chain.chain_id, cursor + len(results)))
            committed = self.store.commit(chain, me, cursor, results)
            if committed is None:
                return {**report, "action": "lost", "to": cursor}
            cursor = committed
        report["to"] = cursor
        if cursor >= chain.records:
            self.store.set_status(chain, me, "done")
            return {**report, "action": "done"}

        payload = {"chain": chain.chain_id, "epoch": chain.epoch + 1, "cursor": cursor}
        # SpawnFailed propagates: Lambda retries this event and the retry resumes from the
        # stored cursor (the spawn ledger lets it spawn, since no sibling was started).
        spawn = run.spawn_sibling(payload)
        if spawn:
            return {**report, "action": "spawned", "request_id": spawn.request_id,
                    "reason": spawn.reason}
        self.store.set_status(chain, me, "parked")  # the schedule will resume it
        return {**report, "action": "parked", "reason": spawn.reason}


_worker: CursorWorker | None = None


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda's entry point: one worker per container, configured from the environment."""
    global _worker
    if _worker is None:
        import boto3

        _worker = CursorWorker(
            ChainStore(
                boto3.client("dynamodb"),
                os.environ["CURSOR_WORKER_TABLE"],
                os.environ.get("CURSOR_WORKER_OUTPUT_TABLE"),
            ),
            shutdown_seconds=float(os.environ.get("CURSOR_WORKER_SHUTDOWN_SECONDS", "10")),
            stale_after_seconds=float(os.environ.get("CURSOR_WORKER_STALE_SECONDS", "3600")),
        )
    return _worker(event, context)


def _chain(item: dict[str, Any]) -> Chain:
    return Chain(
        chain_id=item["pk"]["S"],
        records=int(item["records"]["N"]),
        cursor=int(item["cursor"]["N"]),
        epoch=int(item["epoch"]["N"]),
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
