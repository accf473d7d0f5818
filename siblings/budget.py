"""A budget per chain: ``max_chain_seconds`` of wall-clock since the chain began.

Generations are a poor budget: fifty one-minute steps and fifty fifteen-minute steps cost 15x
apart under the same ``max_generations``. The chain's start travels in its metadata
(:attr:`~siblings.metadata.ChainMetadata.chain_started_at`, set at the root's first spawn and
carried by every sibling), so the check reads no table and calls no AWS API: the child's
``spawned_at`` (the decision's clock reading) minus the chain's start.

Like the generation limit it applies with ``force``: it bounds what a chain may cost, which
``force`` (a way around the capacity guards) must not lift. A start later than the clock plus
``max_clock_skew_seconds`` is not believed (an event is input; a start in the future would
make the budget endless) and refuses, like an exhausted budget.
"""

from __future__ import annotations

from estimator.items import believable_time
from siblings.config import SiblingsConfig
from siblings.guards import Verdict
from siblings.metadata import ChainMetadata
from siblings.result import Reason


def check_chain_budget(child: ChainMetadata, config: SiblingsConfig) -> Verdict:
    """Refuse ``child`` once its chain is ``max_chain_seconds`` old (no I/O)."""
    limit = config.max_chain_seconds
    if limit is None:
        return Verdict(True, info={"max_chain_seconds": None})
    now, started = child.spawned_at, child.chain_started_at
    if now is None or started is None:  # only a hand-made ChainMetadata lacks them
        return Verdict(True, info={"max_chain_seconds": limit, "chain_started_at": None})
    info = {"max_chain_seconds": limit, "chain_started_at": started}
    if not believable_time(started, now, config.max_clock_skew_seconds):
        detail = (
            f"chain_started_at {started} is {started - now:.0f}s in the future "
            f"(more than max_clock_skew_seconds={config.max_clock_skew_seconds})"
        )
        return Verdict(False, Reason.MAX_CHAIN_SECONDS, detail, info)
    elapsed = round(now - started, 3)
    info["elapsed_seconds"] = elapsed
    if elapsed >= limit:
        detail = f"the chain began {elapsed:.0f}s ago: max_chain_seconds={limit:g}"
        return Verdict(False, Reason.MAX_CHAIN_SECONDS, detail, info)
    return Verdict(True, info=info)
