"""The end-of-run checks of a simulated fleet: every record once, no runaway chain, no lost
spawn, and no chain step whose work started in two executions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from siblings.local.runtime.records import InvocationRecord
from siblings.metadata import metadata_of

_SHOWN = 10  # offending items listed per problem; the counts are always complete


@dataclass(frozen=True)
class Verification:
    """The outcome of :func:`verify`; ``ok`` only when ``problems`` is empty."""

    ok: bool
    problems: list[str]
    records_expected: int
    records_once: int
    records_missing: int
    records_duplicated: int
    max_generation: int
    max_generations: int
    spawns_reported: int
    spawns_lost: int
    invocations_unrun: int
    steps_executed: int = 0
    """Chain steps (chain id, generation) with at least one execution."""
    steps_invoked_twice: int = 0
    """Steps with two executions or more (a parent retried after its Invoke, a lost reply)."""
    steps_started_twice: int = 0
    """Steps whose work started in two executions or more: each one is a problem."""
    work_starts: int = 0
    """Executions that did work."""
    duplicates_stopped: int = 0
    """Executions that reported ``{"action": "duplicate"}``: told by the library that another
    execution runs their step, they did no work."""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "ok": self.ok,
            "problems": list(self.problems),
            "records": {
                "expected": self.records_expected,
                "exactly_once": self.records_once,
                "missing": self.records_missing,
                "duplicated": self.records_duplicated,
            },
            "generations": {"max_seen": self.max_generation, "limit": self.max_generations},
            "spawns": {
                "reported": self.spawns_reported,
                "lost": self.spawns_lost,
                "invocations_never_run": self.invocations_unrun,
            },
            "steps": {
                "executed": self.steps_executed,
                "invoked_twice": self.steps_invoked_twice,
                "started_twice": self.steps_started_twice,
                "work_starts": self.work_starts,
                "duplicates_stopped": self.duplicates_stopped,
            },
            "details": self.details,
        }


def verify(
    *,
    chains: Mapping[str, int],
    record_counts: Mapping[tuple[str, int], int],
    invocations: Iterable[InvocationRecord],
    max_generations: int,
    work_started: Mapping[str, int],
    timed_out_after: float | None = None,
) -> Verification:
    """Check a finished run.

    ``chains`` maps each chain id to its number of records; ``record_counts`` says how many
    times each ``(chain, index)`` was committed (absent: zero); ``invocations`` are every
    invocation the local runtime accepted; ``work_started`` maps the request id of each
    execution that did work to the units it did (:class:`~siblings.local.work_log.WorkLog`).
    Problems:

    - a record committed zero times, or more than once;
    - an execution whose chain generation is above ``max_generations``;
    - a spawn lost: a sibling Invoke the runtime accepted but never ran, or a spawn a handler
      reported (its Invoke request id) that the runtime never received;
    - a chain step whose work started in two executions. An execution's step is the
      ``__siblings__`` metadata of its event (an event without it starts a chain of its own);
      Lambda's retries of an execution keep its request id, so they count once.

    ``timed_out_after`` (the run's ``--timeout``, when it ended the run) comes first: the
    records it left unprocessed were never reached, not lost.
    """
    invocations = list(invocations)
    records = _check_records(chains, record_counts)
    runs = _check_runs(invocations, max_generations)
    steps = _check_steps(invocations, work_started)
    problems = records.problems() + runs.problems(max_generations) + steps.problems()
    if timed_out_after is not None:
        problems.insert(
            0, f"stopped by --timeout ({timed_out_after:g} s) before every chain finished: "
            "the records it left were never reached (a longer --timeout, or fewer --records)",
        )
    shown = {"missing": records.missing, "duplicated": records.duplicated,
             "started_twice": steps.started_twice}
    details: dict[str, Any] = {name: found[:_SHOWN] for name, found in shown.items() if found}
    return Verification(
        ok=not problems,
        problems=problems,
        records_expected=records.expected,
        records_once=records.once,
        records_missing=len(records.missing),
        records_duplicated=len(records.duplicated),
        max_generation=runs.max_generation,
        max_generations=max_generations,
        spawns_reported=len(runs.reported),
        spawns_lost=len(runs.unrun) + len(runs.never_received),
        invocations_unrun=len(runs.unrun),
        steps_executed=steps.executed,
        steps_invoked_twice=steps.invoked_twice,
        steps_started_twice=len(steps.started_twice),
        work_starts=steps.work_starts,
        duplicates_stopped=steps.duplicates_stopped,
        details=details,
    )


@dataclass
class _Records:
    """How often each record was committed, sorted into what is wrong."""

    expected: int = 0
    once: int = 0
    missing: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """One line per kind of problem found."""
        problems = []
        if self.missing:
            problems.append(f"{len(self.missing)} record(s) never processed: {_some(self.missing)}")
        if self.duplicated:
            problems.append(
                f"{len(self.duplicated)} record(s) processed more than once: {_some(self.duplicated)}"
            )
        if self.unknown:
            problems.append(f"{len(self.unknown)} record(s) outside every chain: {_some(self.unknown)}")
        return problems


def _check_records(
    chains: Mapping[str, int], record_counts: Mapping[tuple[str, int], int]
) -> _Records:
    records = _Records()
    for chain_id, count_of_records in sorted(chains.items()):
        for index in range(count_of_records):
            records.expected += 1
            count = record_counts.get((chain_id, index), 0)
            if count == 1:
                records.once += 1
            elif count == 0:
                records.missing.append(f"{chain_id}#{index}")
            else:
                records.duplicated.append(f"{chain_id}#{index} x{count}")
    records.unknown = sorted(
        f"{chain_id}#{index}"
        for (chain_id, index) in record_counts
        if chain_id not in chains or not 0 <= index < chains[chain_id]
    )
    return records


@dataclass
class _Runs:
    """What the invocations show about generations and spawns."""

    max_generation: int = 0
    over: list[str] = field(default_factory=list)
    unrun: list[str] = field(default_factory=list)
    reported: set[str] = field(default_factory=set)
    never_received: list[str] = field(default_factory=list)

    def problems(self, max_generations: int) -> list[str]:
        """One line per kind of problem found."""
        problems = []
        if self.over:
            problems.append(
                f"{len(self.over)} execution(s) past max_generations={max_generations}: "
                f"{_some(self.over)}"
            )
        if self.unrun:
            problems.append(f"{len(self.unrun)} accepted invocation(s) never ran: {_some(self.unrun)}")
        if self.never_received:
            problems.append(
                f"{len(self.never_received)} reported spawn(s) never reached Lambda: "
                f"{_some(self.never_received)}"
            )
        return problems


def _check_runs(invocations: Iterable[InvocationRecord], max_generations: int) -> _Runs:
    runs = _Runs()
    accepted: set[str] = set()
    for inv in invocations:
        accepted.add(inv.request_id)
        generation = _step_of(inv)[1]
        runs.max_generation = max(runs.max_generation, generation)
        if generation > max_generations:
            runs.over.append(f"{inv.request_id} (generation {generation})")
        if not inv.attempts:
            runs.unrun.append(inv.request_id)
        for result in _reports(inv, "spawned"):
            request_id = result.get("request_id")
            if isinstance(request_id, str):
                runs.reported.add(request_id)
    runs.never_received = sorted(runs.reported - accepted)
    return runs


@dataclass
class _Steps:
    """Which executions each chain step had, and how many of them did work."""

    executed: int = 0
    invoked_twice: int = 0
    work_starts: int = 0
    duplicates_stopped: int = 0
    started_twice: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """One line per kind of problem found."""
        if not self.started_twice:
            return []
        return [
            f"{len(self.started_twice)} chain step(s) started in two executions or more: "
            f"{_some(self.started_twice)}"
        ]


def _check_steps(invocations: list[InvocationRecord], work_started: Mapping[str, int]) -> _Steps:
    steps = _Steps()
    executions: dict[tuple[str, int], list[str]] = defaultdict(list)
    for inv in invocations:
        executions[_step_of(inv)].append(inv.request_id)
        if _reports(inv, "duplicate"):
            steps.duplicates_stopped += 1
    for (chain_id, generation), request_ids in sorted(executions.items()):
        steps.executed += 1
        steps.invoked_twice += int(len(request_ids) > 1)
        working = [request_id for request_id in request_ids if work_started.get(request_id)]
        steps.work_starts += len(working)
        if len(working) > 1:
            steps.started_twice.append(f"{chain_id}#{generation} ({', '.join(working)})")
    return steps


def _step_of(inv: InvocationRecord) -> tuple[str, int]:
    """``(chain id, generation)`` of an execution; an event without sibling metadata (or with
    metadata that does not parse) starts a chain of its own, named by its request id."""
    try:
        metadata = metadata_of(inv.event)
    except ValueError:
        metadata = None
    if metadata is None:
        return inv.request_id, 0
    return metadata.chain_id, metadata.generation


def _reports(inv: InvocationRecord, action: str) -> list[Mapping[str, Any]]:
    """What the invocation's attempts returned saying they did ``action``."""
    return [
        attempt.result
        for attempt in inv.attempts
        if isinstance(attempt.result, Mapping) and attempt.result.get("action") == action
    ]


def _some(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")
