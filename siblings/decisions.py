"""What every spawn decision leaves behind: counters (sosw's ``get_stats``) and one JSON log line.

Each ``spawn_sibling`` call ends in exactly one :class:`Decision`, counted in
:class:`DecisionLog` and logged as one JSON line on the ``siblings`` logger, so an operator can
chart spawns and refusals by reason from the logs alone.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from enum import StrEnum

from siblings.result import Reason, SpawnResult

log = logging.getLogger("siblings")


class Decision(StrEnum):
    """The kind of outcome of one ``spawn_sibling`` call."""

    SPAWNED = "spawned"
    DUPLICATE = "duplicate"
    DRY_RUN = "dry_run"
    REFUSED = "refused"
    FAILED = "failed"


def decision_of(outcome: SpawnResult) -> Decision:
    """The kind of decision a result records."""
    reason = outcome.reason
    if reason == Reason.SPAWNED:
        return Decision.SPAWNED
    if reason == Reason.DUPLICATE:
        return Decision.DUPLICATE
    if reason == Reason.DRY_RUN:
        return Decision.DRY_RUN
    if reason == Reason.FAILED:
        return Decision.FAILED
    return Decision.REFUSED


class DecisionLog:
    """Thread-safe counters of decisions, and the structured log line of each."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def snapshot(self) -> dict[str, int]:
        """The counters: ``spawned``, ``refused``, ``refused_<reason>``, ``duplicate``,
        ``offloaded``, ``failed``, ``dry_run``, ``guard_error_allowed``."""
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._counts.clear()

    def count(self, *names: str) -> None:
        """Add one to each named counter."""
        with self._lock:
            for name in names:
                self._counts[name] += 1

    def record(self, outcome: SpawnResult, started: float) -> SpawnResult:
        """Count and log ``outcome`` (``started`` is the call's ``time.monotonic()``)."""
        decision = decision_of(outcome)
        if decision is Decision.REFUSED:
            self.count("refused", f"refused_{outcome.reason}")
        else:
            self.count(decision.value)
        if decision is Decision.SPAWNED and outcome.offloaded:
            self.count("offloaded")
        level = logging.ERROR if decision is Decision.FAILED else logging.INFO
        if log.isEnabledFor(level):
            log.log(level, json.dumps(_line(decision, outcome, started), default=str, sort_keys=True))
        return outcome


def _line(decision: Decision, outcome: SpawnResult, started: float) -> dict[str, object]:
    return {
        "message": "siblings.spawn",
        "decision": decision.value,
        "reason": outcome.reason,
        "function_arn": outcome.function_arn,
        "chain_id": outcome.chain_id,
        "generation": outcome.generation,
        "parent_request_id": outcome.parent_request_id,
        "request_id": outcome.request_id,
        "forced": outcome.forced,
        "offloaded": outcome.offloaded,
        "duplicate": outcome.duplicate,
        "detail": outcome.detail,
        "guards": outcome.guards,
        "elapsed_ms": round((time.monotonic() - started) * 1000.0, 1),
    }
