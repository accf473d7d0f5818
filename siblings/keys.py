"""Key formats of the items the siblings manager owns in the shared table (one home for all).

* ``rules#<name>[:<qualifier>]``: the cached EventBridge rule state of the function as invoked;
* ``kill#<name>``: the operator's kill switch (every alias and version of the function);
* ``spawn#<chain id>#<generation>``: the record of one chain step (idempotent spawn).
"""

from __future__ import annotations

from estimator.validation import FunctionRef, parse_function

RULES_PREFIX = "rules#"
KILL_PREFIX = "kill#"
SPAWN_PREFIX = "spawn#"


def rules_key(function: FunctionRef | str) -> str:
    """Key of a function's cached rule state; the qualifier (alias or version) is part of it."""
    ref = parse_function(function) if isinstance(function, str) else function
    return f"{RULES_PREFIX}{ref.resource}"


def kill_key(function: FunctionRef | str) -> str:
    """Key of a function's kill switch: the bare name, so it covers every alias and version."""
    ref = parse_function(function) if isinstance(function, str) else function
    return f"{KILL_PREFIX}{ref.name}"


def spawn_key(chain_id: str, generation: int) -> str:
    """Key of the spawn record of one chain step."""
    return f"{SPAWN_PREFIX}{chain_id}#{generation}"
