"""The end-of-run checks of a simulated fleet: every record once, no runaway chain, no lost spawn."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from siblings.local.runtime import InvocationRecord
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
            "details": self.details,
        }


def verify(
    *,
    chains: Mapping[str, int],
    record_counts: Mapping[tuple[str, int], int],
    invocations: Iterable[InvocationRecord],
    max_generations: int,
) -> Verification:
    """Check a finished run.

    ``chains`` maps each chain id to its number of records; ``record_counts`` says how many
    times each ``(chain, index)`` was committed (absent: zero); ``invocations`` are every
    invocation the local runtime accepted. Problems:

    - a record committed zero times, or more than once;
    - an execution whose chain generation is above ``max_generations``;
    - a spawn lost: a sibling Invoke the runtime accepted but never ran, or a spawn a handler
      reported (its Invoke request id) that the runtime never received.
    """
    problems: list[str] = []
    details: dict[str, Any] = {}

    missing: list[str] = []
    duplicated: list[str] = []
    once = 0
    expected = 0
    for chain_id, records in sorted(chains.items()):
        for index in range(records):
            expected += 1
            count = record_counts.get((chain_id, index), 0)
            if count == 1:
                once += 1
            elif count == 0:
                missing.append(f"{chain_id}#{index}")
            else:
                duplicated.append(f"{chain_id}#{index} x{count}")
    unknown = sorted(
        f"{chain_id}#{index}"
        for (chain_id, index) in record_counts
        if chain_id not in chains or not 0 <= index < chains[chain_id]
    )
    if missing:
        problems.append(f"{len(missing)} record(s) never processed: {_some(missing)}")
        details["missing"] = missing[:_SHOWN]
    if duplicated:
        problems.append(f"{len(duplicated)} record(s) processed more than once: {_some(duplicated)}")
        details["duplicated"] = duplicated[:_SHOWN]
    if unknown:
        problems.append(f"{len(unknown)} record(s) outside every chain: {_some(unknown)}")

    runs = list(invocations)
    accepted = {inv.request_id for inv in runs}
    max_generation = 0
    over: list[str] = []
    unrun: list[str] = []
    reported: set[str] = set()
    for inv in runs:
        try:
            metadata = metadata_of(inv.event)
        except ValueError:
            metadata = None
        generation = metadata.generation if metadata is not None else 0
        max_generation = max(max_generation, generation)
        if generation > max_generations:
            over.append(f"{inv.request_id} (generation {generation})")
        if not inv.attempts:
            unrun.append(inv.request_id)
        for attempt in inv.attempts:
            result = attempt.result
            if isinstance(result, Mapping) and result.get("action") == "spawned":
                request_id = result.get("request_id")
                if isinstance(request_id, str):
                    reported.add(request_id)
    never_received = sorted(reported - accepted)
    if over:
        problems.append(
            f"{len(over)} execution(s) past max_generations={max_generations}: {_some(over)}"
        )
    if unrun:
        problems.append(f"{len(unrun)} accepted invocation(s) never ran: {_some(unrun)}")
    if never_received:
        problems.append(
            f"{len(never_received)} reported spawn(s) never reached Lambda: {_some(never_received)}"
        )
    return Verification(
        ok=not problems,
        problems=problems,
        records_expected=expected,
        records_once=once,
        records_missing=len(missing),
        records_duplicated=len(duplicated),
        max_generation=max_generation,
        max_generations=max_generations,
        spawns_reported=len(reported),
        spawns_lost=len(unrun) + len(never_received),
        invocations_unrun=len(unrun),
        details=details,
    )


def _some(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")
