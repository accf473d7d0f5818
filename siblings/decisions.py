"""What every spawn decision leaves behind: counters (sosw's ``get_stats``), one JSON log line,
and operator metrics in CloudWatch Embedded Metric Format (:mod:`siblings.emf`).

Each ``spawn_sibling`` call ends in exactly one :class:`Decision`, counted in
:class:`DecisionLog`, logged as one JSON line on the ``siblings`` logger, and published as EMF
metrics (through Powertools when present, else in that log line), so an operator can chart
spawns and refusals by reason without a single CloudWatch API call.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections import Counter
from collections.abc import Callable

from estimator.clock import SYSTEM_CLOCK, Clock
from estimator.validation import parse_function
from siblings.emf import Emitter, Metric, decision_metrics
from siblings.result import Decision, SpawnResult

log = logging.getLogger("siblings")


class DecisionLog:
    """Thread-safe counters of decisions, the structured log line of each, and its metrics
    through ``emitter`` (``None``: no metrics); ``clock`` times the decisions."""

    def __init__(self, emitter: Emitter | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.emitter = emitter
        self.observers: list[Callable[[SpawnResult], None]] = []
        """Called with every decision after it is counted and logged (the chain log)."""

    def snapshot(self) -> dict[str, int]:
        """The counters: ``spawned``, ``refused``, ``refused_<reason>``, ``deferred``,
        ``deferred_<reason>``, ``duplicate``, ``offloaded``, ``failed``, ``dry_run``,
        ``guard_error_allowed``."""
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

    def record(
        self, outcome: SpawnResult, started: float, guard_ms: float | None = None
    ) -> SpawnResult:
        """Count, log and publish ``outcome`` (``started`` is the call's ``clock.monotonic()``,
        ``guard_ms`` the time its guards took, when they ran)."""
        decision = outcome.decision
        if decision is Decision.REFUSED:
            self.count("refused", f"refused_{outcome.reason}")
        elif decision is Decision.DEFERRED:
            self.count("deferred", f"deferred_{outcome.deferred_for}")
        else:
            self.count(decision.value)
        if decision is Decision.SPAWNED and outcome.offloaded:
            self.count("offloaded")
        emitter = self.emitter
        metrics: list[Metric] = []
        function_name = _function_name(outcome.function_arn)
        if emitter is not None:
            metrics = decision_metrics(
                decision.value,
                outcome.reason,
                outcome.generation,
                guard_ms,
                outcome.refused,
                deferred_for=outcome.deferred_for if decision is Decision.DEFERRED else None,
            )
            emitter.emit(function_name, metrics)
        level = logging.ERROR if decision is Decision.FAILED else logging.INFO
        if log.isEnabledFor(level):
            line = _line(decision, outcome, (self.clock.monotonic() - started) * 1000.0, guard_ms)
            if emitter is not None:
                line.update(emitter.line_fields(function_name, metrics))
            log.log(level, json.dumps(line, default=str, sort_keys=True))
        for observer in self.observers:
            try:
                observer(outcome)
            except Exception:  # a record of the decision must never change the decision
                log.exception("decision observer %r failed", observer)
        return outcome


def stdout_handler() -> logging.Handler:
    """Send the ``siblings`` log lines to stdout as bare JSON, once (idempotent).

    Not needed for metrics: on Lambda they go to stdout as EMF documents of their own
    (:mod:`siblings.emf`). For a handler that wants the decision lines themselves unprefixed
    by Lambda's runtime. Decision lines then stop propagating to the root handler (no duplicate
    lines); the library's other records (``siblings.*`` warnings) still reach it.
    """
    for handler in log.handlers:
        if getattr(handler, "_siblings_stdout", False):
            return handler
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(lambda record: record.name == log.name)
    handler._siblings_stdout = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.addHandler(_OthersToRoot())
    log.setLevel(logging.INFO)
    log.propagate = False
    return handler


class _OthersToRoot(logging.Handler):
    """Passes the records of ``siblings.*`` modules on to the root logger, as propagation would
    have, once the decision logger stops propagating."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != log.name:
            logging.getLogger().handle(record)


def _function_name(function_arn: str) -> str:
    """The dimension value: the bare function name (aliases share their function's metrics)."""
    try:
        return parse_function(function_arn).name
    except (TypeError, ValueError):  # a spawn record of another version without an ARN
        return "unknown"


def _line(
    decision: Decision, outcome: SpawnResult, elapsed_ms: float, guard_ms: float | None
) -> dict[str, object]:
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
        # A number, not a bool: in an EMF line "duplicate" is also the metric's value.
        "duplicate": int(outcome.duplicate),
        "detail": outcome.detail,
        "deferred_until": outcome.deferred_until,
        "guards": outcome.guards,
        "elapsed_ms": round(elapsed_ms, 1),
        "guard_latency": None if guard_ms is None else round(guard_ms, 3),
    }
