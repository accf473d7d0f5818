"""``siblings chain CHAIN_ID`` and ``siblings chains FUNCTION``: read what :mod:`siblings.chain_log`
and the step claims (:mod:`siblings.runs`) left in the shared table, and print it in 80 columns.

A chain's view costs one GetItem (the head) and one BatchGetItem per 33 generations (each
generation's step, its duplicate marker and its run claim). A function's listing costs three
BatchGetItems: the days' hints, their newest slots and the chains' heads. Neither scans the table.

For generation ``g`` the view shows the request id that ran it, when it started (its run claim)
and finished (when it decided its own hand-off: step ``g+1``'s decision), and how its spawn was
decided: spawned, refused (reason), deferred (until when), failed, or a second execution that
was stopped (duplicate). The root (generation 0) started at the chain's start.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from estimator.items import StoredItem
from estimator.store import Store
from siblings.chain_log import day_of, next_slot, slot_key
from siblings.keys import chain_key, chains_key, run_key, step_key
from siblings.metadata import check_id

_BATCH = 100
_PAST_HINT = 4
"""Slots read past a day's hint: chains listed since the hint was last moved."""
WIDTH = 80
"""Every line printed fits this many columns."""


@dataclass
class StepRow:
    """One generation of a chain, as ``siblings chain`` shows it."""

    generation: int
    request_id: str | None
    started_at: float | None
    finished_at: float | None
    outcome: str
    reason: str | None = None
    deferred_until: float | None = None
    deferrals: int = 0
    duplicate_stopped: str | None = None
    """The request id of a second execution of this step that was stopped, if any."""


@dataclass
class ChainView:
    """A chain's head and its steps in order."""

    chain_id: str
    function: str | None
    chain_started_at: float | None
    last_generation: int
    outcome: str
    updated_at: float | None
    reason: str | None = None
    deferred_until: float | None = None
    steps: list[StepRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``--json``)."""
        return asdict(self)


def _value(item: StoredItem | None) -> dict[str, Any]:
    return item.value if item is not None and not item.corrupt and isinstance(item.value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _get_many(store: Store, keys: list[str]) -> dict[str, StoredItem | None]:
    found: dict[str, StoredItem | None] = {}
    for start in range(0, len(keys), _BATCH):
        found.update(store.get_many(keys[start : start + _BATCH]))
    return found


def chain_view(store: Store, chain_id: str, limit: int = 100) -> ChainView | None:
    """The last ``limit`` generations of ``chain_id``; ``None`` when the table has no head."""
    check_id("chain id", chain_id)
    head = _value(store.get(chain_key(chain_id)))
    if not head:
        return None
    last = head.get("last_generation")
    last = last if isinstance(last, int) and not isinstance(last, bool) and last >= 1 else 1
    first = max(1, last - limit + 1)
    found = head.get("scope")
    scope = found if isinstance(found, str) else "unknown"  # a head of a release before 0.3
    keys = [k for g in range(first, last + 1) for k in (step_key(chain_id, g),
            step_key(chain_id, g, duplicate=True), run_key(scope, chain_id, g))]
    items = _get_many(store, keys)
    view = ChainView(
        chain_id=chain_id,
        function=head.get("function") if isinstance(head.get("function"), str) else None,
        chain_started_at=_number(head.get("chain_started_at")),
        last_generation=last,
        outcome=str(head.get("outcome", "?")),
        updated_at=_number(head.get("updated_at")),
        reason=head.get("reason") if head.get("outcome") == "refused" else None,
        deferred_until=_number(head.get("deferred_until")),
    )
    decided = {g: _number(_value(items[step_key(chain_id, g)]).get("decided_at"))
               for g in range(first, last + 1)}
    if first == 1:
        view.steps.append(StepRow(0, chain_id, view.chain_started_at, decided.get(1), "root"))
    view.steps.extend(_row(chain_id, scope, g, items, decided.get(g + 1)) for g in range(first, last + 1))
    return view


def _row(chain_id: str, scope: str, g: int, items: dict[str, StoredItem | None],
         finished: float | None) -> StepRow:
    """Generation ``g``'s row from its step, duplicate marker and run claim (``scope``: the
    function's, from the chain's head)."""
    step = _value(items[step_key(chain_id, g)])
    run = _value(items[run_key(scope, chain_id, g)])
    duplicate = _value(items[step_key(chain_id, g, duplicate=True)])
    request = run.get("runner") or step.get("request_id")
    deferrals = step.get("deferrals")
    stopped = duplicate.get("request_id")
    return StepRow(
        generation=g,
        request_id=request if isinstance(request, str) else None,
        started_at=_number(run.get("started_at")),
        finished_at=finished,
        outcome=str(step.get("outcome", "unknown")),
        reason=step.get("reason") if step.get("outcome") == "refused" else None,
        deferred_until=_number(step.get("deferred_until")),
        deferrals=deferrals if isinstance(deferrals, int) and not isinstance(deferrals, bool) else 0,
        duplicate_stopped=stopped if isinstance(stopped, str) else ("?" if duplicate else None),
    )


@dataclass
class ChainSummary:
    """One line of ``siblings chains``."""

    chain_id: str
    last_generation: int | None
    outcome: str
    reason: str | None
    updated_at: float | None
    deferred_until: float | None


def recent_chains(
    store: Store, scope: str, now: float, days: int = 2, limit: int = 20
) -> list[ChainSummary]:
    """The newest ``limit`` chains of the function ``scope`` (:attr:`FunctionRef.scope`) begun
    in the last ``days`` UTC days, newest first (:mod:`siblings.chain_log`'s day lists: hints,
    then slots, then heads)."""
    bases = [chains_key(scope, day_of(now - 86_400 * back)) for back in range(days)]
    hints = store.get_many(bases)
    slots: list[str] = []
    for base in bases:  # newest day first; past the hint too, in case it is stale
        top = next_slot(hints[base]) + _PAST_HINT
        slots.extend(slot_key(base, n) for n in range(top - 1, max(top - limit - _PAST_HINT, 0) - 1, -1))
    found = _get_many(store, slots)
    ids: list[str] = []
    for key in slots:
        chain_id = _value(found[key]).get("chain_id")
        if isinstance(chain_id, str) and chain_id not in ids:
            ids.append(chain_id)
    ids = ids[:limit]
    heads = _get_many(store, [chain_key(i) for i in ids])
    summaries = []
    for chain_id in ids:
        head = _value(heads[chain_key(chain_id)])
        last = head.get("last_generation")
        summaries.append(
            ChainSummary(
                chain_id=chain_id,
                last_generation=last if isinstance(last, int) else None,
                outcome=str(head.get("outcome", "unknown")),
                reason=head.get("reason") if head.get("outcome") == "refused" else None,
                updated_at=_number(head.get("updated_at")),
                deferred_until=_number(head.get("deferred_until")),
            )
        )
    return summaries


def _clock(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, tz=UTC).strftime("%H:%M:%S")


def _outcome_text(outcome: str, reason: str | None, until: float | None, deferrals: int = 0) -> str:
    if outcome == "refused" and reason:
        return f"refused: {reason}"
    if outcome == "deferred":
        return f"deferred until {_clock(until)}"
    if deferrals and outcome == "spawned":
        return f"spawned ({deferrals}x deferred)"
    return outcome


def _fit(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "~"


def format_chain(view: ChainView) -> list[str]:
    """``siblings chain``'s lines (request ids shortened to 13 characters; ``--json`` has them
    whole), each at most :data:`WIDTH` columns."""
    started = "-" if view.chain_started_at is None else datetime.fromtimestamp(
        view.chain_started_at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [
        _fit(f"chain {view.chain_id}"),
        _fit(f"function {view.function or '?'}, started {started}, last generation "
             f"{view.last_generation}: "
             f"{_outcome_text(view.outcome, view.reason, view.deferred_until)}"),
        f"{'GEN':>5}  {'REQUEST ID':<13}  {'STARTED':<8}  {'FINISHED':<8}  OUTCOME (times UTC)",
    ]
    for step in view.steps:
        request = (step.request_id or "-")[:13]
        text = _outcome_text(step.outcome, step.reason, step.deferred_until, step.deferrals)
        lines.append(_fit(f"{step.generation:>5}  {request:<13}  {_clock(step.started_at):<8}  "
                          f"{_clock(step.finished_at):<8}  {text}"))
        if step.duplicate_stopped:
            lines.append(_fit(f"{'':>5}  {step.duplicate_stopped[:13]:<13}  {'':<8}  {'':<8}  "
                              "duplicate stopped"))
    return lines


def format_chains(function: str, chains: list[ChainSummary]) -> list[str]:
    """``siblings chains``' lines, each at most :data:`WIDTH` columns (chain ids whole)."""
    lines = [_fit(f"recent chains of {function} (newest first, times UTC)"),
             f"{'CHAIN ID':<36}  {'GEN':>5}  {'UPDATED':<8}  STATE"]
    for chain in chains:
        gen = "-" if chain.last_generation is None else str(chain.last_generation)
        text = _outcome_text(chain.outcome, chain.reason, chain.deferred_until)
        lines.append(_fit(f"{chain.chain_id:<36}  {gen:>5}  {_clock(chain.updated_at):<8}  {text}"))
    if not chains:
        lines.append("(none)")
    return lines
