"""Key formats of the items the siblings manager owns in the shared table (one home for all).

* ``rules#<name>[:<qualifier>]``: the cached EventBridge rule state of the function as invoked;
* ``rulenames#<name>[:<qualifier>]``: the names of the rules targeting the function as invoked;
* ``kill#<name>``: the operator's kill switch (every alias and version of the function);
* ``spawn#<chain id>#<generation>``: the parent's record of one chain step (idempotent spawn);
* ``req#<request id>``: the chain step of the execution an async Invoke started (written by
  the parent, read by a child that was given no metadata);
* ``run#<chain id>#<generation>``: the claim of the one execution that runs a chain step;
* ``recursion#<name>``: the cached ``RecursiveLoop`` setting of the function (set on the
  function, not on an alias or version);
* ``schedule#<group>/<name>``: the cached state of a named EventBridge Scheduler schedule;
* ``chain#<chain id>``, ``step#<chain id>#<generation>[#duplicate]``: what ``siblings chain``
  shows (:mod:`siblings.chain_log`);
* ``chains#<name>#<yyyy-mm-dd>[#<slot>]``: the chains of a function begun that day, one per
  slot, and the hint of the next free slot (``siblings chains``).
"""

from __future__ import annotations

from estimator.validation import FunctionRef, parse_function

RULES_PREFIX = "rules#"
RULE_NAMES_PREFIX = "rulenames#"
KILL_PREFIX = "kill#"
SPAWN_PREFIX = "spawn#"
INVOCATION_PREFIX = "req#"
RUN_PREFIX = "run#"
RECURSION_PREFIX = "recursion#"
SCHEDULE_PREFIX = "schedule#"


def rules_key(function: FunctionRef | str) -> str:
    """Key of a function's cached rule state; the qualifier (alias or version) is part of it."""
    ref = parse_function(function) if isinstance(function, str) else function
    return f"{RULES_PREFIX}{ref.resource}"


def rule_names_key(function: FunctionRef | str) -> str:
    """Key of the cached names of the rules targeting a function as invoked."""
    ref = parse_function(function) if isinstance(function, str) else function
    return f"{RULE_NAMES_PREFIX}{ref.resource}"


def kill_key(function: FunctionRef | str) -> str:
    """Key of a function's kill switch: the bare name, so it covers every alias and version."""
    ref = parse_function(function) if isinstance(function, str) else function
    return f"{KILL_PREFIX}{ref.name}"


def spawn_key(chain_id: str, generation: int) -> str:
    """Key of the spawn record of one chain step."""
    return f"{SPAWN_PREFIX}{chain_id}#{generation}"


def invocation_key(request_id: str) -> str:
    """Key of the chain position of the execution started by the Invoke with ``request_id``."""
    return f"{INVOCATION_PREFIX}{request_id}"


def run_key(chain_id: str, generation: int) -> str:
    """Key of the claim by which one execution, and only one, runs a chain step."""
    return f"{RUN_PREFIX}{chain_id}#{generation}"


def recursion_key(function: FunctionRef | str) -> str:
    """Key of a function's cached ``RecursiveLoop`` setting: the bare name."""
    ref = parse_function(function) if isinstance(function, str) else function
    return f"{RECURSION_PREFIX}{ref.name}"


def schedule_key(schedule: str) -> str:
    """Key of a named schedule's cached state; ``schedule`` is ``group/name``."""
    return f"{SCHEDULE_PREFIX}{schedule}"


CHAIN_PREFIX = "chain#"
STEP_PREFIX = "step#"
CHAINS_PREFIX = "chains#"


def chain_key(chain_id: str) -> str:
    """Key of a chain's head: its function, start, last generation and last outcome."""
    return f"{CHAIN_PREFIX}{chain_id}"


def step_key(chain_id: str, generation: int, duplicate: bool = False) -> str:
    """Key of the last decision about one chain step (``#duplicate``: a second execution of it
    that was stopped)."""
    return f"{STEP_PREFIX}{chain_id}#{generation}" + ("#duplicate" if duplicate else "")


def chains_key(function_name: str, day: str) -> str:
    """Key of the list of chains of a function that began on ``day`` (``yyyy-mm-dd``, UTC)."""
    return f"{CHAINS_PREFIX}{function_name}#{day}"
