"""The cursor worker as the fleet runs it: imported from its file, one container per cold start.

Each container builds what the worker module's top level would on Lambda: its own clients, its
own :class:`~estimator.ConcurrencyEstimator` (so the in-process cache tier is per container)
and :class:`~siblings.SiblingsManager`, and a store that reports progress to the fleet.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from estimator.aws import make_client
from estimator.clock import SYSTEM_CLOCK
from estimator.config import Config
from estimator.estimator import ConcurrencyEstimator
from siblings.local.runtime import Handler
from siblings.local.server import local_session
from siblings.local.settings import OUTPUT_TABLE, WORK_TABLE
from siblings.manager import SiblingsManager

if TYPE_CHECKING:
    from siblings.local.fleet import Fleet


def load_worker_module(path: Path) -> ModuleType:
    """Import a worker module from its file, as Lambda imports a handler (a fresh top level)."""
    if not path.is_file():
        raise FileNotFoundError(f"worker module not found at {path}")
    spec = importlib.util.spec_from_file_location("cursor_worker", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("cursor_worker", module)
    spec.loader.exec_module(module)
    return module


class Containers:
    """The fleet function's cold starts: call an instance to build one container's handler."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet
        # One session for every container (loading botocore's models once keeps cold starts
        # light); its client creation is not thread-safe, the clients are.
        self._session = local_session()
        self._session_lock = threading.Lock()
        self._lock = threading.Lock()
        self._managers: list[SiblingsManager] = []
        self._store_class = observed_store_class(fleet.worker.ChainStore)

    def __call__(self) -> Handler:
        """A cold start: what the worker module's top level would build."""
        fleet = self._fleet
        assert fleet.config is not None
        manager = self._new_manager(fleet.config)
        dynamodb = self._client("dynamodb", fleet.config, {"mode": "standard", "max_attempts": 5})
        store = self._store_class(fleet, dynamodb)
        crashes, work = fleet.crashes, fleet.work
        record_seconds = fleet.settings.record_seconds

        def process(chain_id: str, index: int) -> str:
            crashes.step()
            work.note()  # after the crash point: a crash before the record does no work
            time.sleep(record_seconds)
            return f"{chain_id}:{index}"

        worker = fleet.worker.CursorWorker(
            store,
            manager=manager,
            process=process,
            shutdown_seconds=fleet.settings.shutdown_seconds,
            stale_after_seconds=fleet.settings.stale_after_seconds,
        )
        return work.wrap(crashes.wrap(worker))

    def spawn_stats(self) -> Counter[str]:
        """Every container's manager stats, summed."""
        total: Counter[str] = Counter()
        with self._lock:
            managers = list(self._managers)
        for manager in managers:
            total.update(manager.stats)
        return total

    def _new_manager(self, config: Config) -> SiblingsManager:
        # Clients made at init, as a handler module's top level would: not on the first spawn.
        estimator = ConcurrencyEstimator(
            config,
            session=self._session,
            clock=self._fleet.clock,
            cloudwatch_client=self._client("cloudwatch", config, {"mode": "standard", "max_attempts": 3}),
        )
        manager = SiblingsManager(
            config=config,
            session=self._session,
            estimator=estimator,
            # Spawn records, claims and the kill switch in real time; only the estimator's cache
            # (shared through ``estimator``) runs on CloudWatch's scaled time.
            clock=SYSTEM_CLOCK,
            # The manager retries Invoke itself, with backoff bounded by the deadline.
            lambda_client=self._client("lambda", config, {"mode": "standard", "total_max_attempts": 1}),
            events_client=self._client("events", config, {"mode": "standard", "max_attempts": 3}),
            s3_client=self._client("s3", config, {"mode": "standard", "max_attempts": 3}),
        )
        with self._lock:
            self._managers.append(manager)
        return manager

    def _client(self, service: str, config: Config, retries: Any) -> Any:
        # boto3 sessions are not thread-safe; the library's one factory makes the client.
        with self._session_lock:
            return make_client(service, config, self._session, retries)


def observed_store_class(base: type) -> type:
    """A subclass of the example's ``ChainStore`` that reports progress to the fleet."""

    class ObservedStore(base):  # type: ignore[misc, valid-type]
        def __init__(self, fleet: Fleet, dynamodb: Any) -> None:
            super().__init__(dynamodb, WORK_TABLE, OUTPUT_TABLE)
            self._fleet = fleet

        def commit(self, chain: Any, owner: str, start: int, results: list[str]) -> int | None:
            committed: int | None = super().commit(chain, owner, start, results)
            if committed is not None:
                drop = self._fleet.settings.drop_record
                if drop and drop[0] == chain.chain_id and start <= drop[1] < committed:
                    self._forget(chain.chain_id, start, drop[1])
                self._fleet.note_commit(committed - start)
            return committed

        def set_status(self, chain: Any, owner: str, status: str) -> bool:
            changed = bool(super().set_status(chain, owner, status))
            if changed and status == "done":
                self._fleet.note_done(chain.chain_id)
            return changed

        def _forget(self, chain_id: str, start: int, index: int) -> None:
            """The bug the drop test plants: the batch holding ``index`` loses it."""
            key = self._fleet.worker.batch_key(chain_id, start)
            item = self.dynamodb.get_item(TableName=self.output_table_name, Key=key)["Item"]
            count = int(item["count"]["N"])
            self.dynamodb.delete_item(TableName=self.output_table_name, Key=key)
            for first, last in ((start, index), (index + 1, start + count)):
                if last > first:
                    self.dynamodb.put_item(
                        TableName=self.output_table_name,
                        Item={
                            **self._fleet.worker.batch_key(chain_id, first),
                            "count": {"N": str(last - first)},
                            "results": {"L": item["results"]["L"][first - start : last - start]},
                        },
                    )

    return ObservedStore
