"""Key formats of the items the siblings manager owns in the shared table (one home for all).

A function is named in a key by its scope, ``<account>:<region>:<name>``
(:attr:`~estimator.validation.FunctionRef.scope`), so that functions of the same name in other
accounts or Regions sharing the table (a global table, a shared one) never act on each other's
items, and an event forwarded to another function cannot claim this one's steps:

* ``rules#<scope>[:<qualifier>]``: the cached EventBridge rule state of the function as invoked;
* ``rulenames#<scope>[:<qualifier>]``: the names of the rules targeting the function as invoked;
* ``kill#<scope>``: the operator's kill switch (every alias and version of the function);
* ``spawn#<scope>#<chain id>#<generation>``: the parent's record of one chain step (idempotent spawn);
* ``req#<scope>#<request id>``: the chain step of the execution an async Invoke started (written
  by the parent, read by a child that was given no metadata);
* ``run#<scope>#<chain id>#<generation>``: the claim of the one execution that runs a chain step;
* ``recursion#<scope>``: the cached ``RecursiveLoop`` setting of the function (set on the
  function, not on an alias or version);
* ``schedule#<account>:<region>:<group>/<name>``: the cached state of a named EventBridge
  Scheduler schedule;
* ``chain#<chain id>``, ``step#<chain id>#<generation>[#duplicate]``: what ``siblings chain``
  shows (:mod:`siblings.chain_log`; a chain id is a Lambda request id, unique on its own);
* ``chains#<scope>#<yyyy-mm-dd>[#<slot>]``: the chains of a function begun that day, one per
  slot, and the hint of the next free slot (``siblings chains``).

Releases before 0.3 keyed these by the bare name (``kill#<name>``...): see the upgrade note in
``CHANGELOG.md``; :func:`legacy_kill_key` is what ``siblings status`` looks for.
"""

from __future__ import annotations

from estimator.validation import FunctionRef

RULES_PREFIX = "rules#"
RULE_NAMES_PREFIX = "rulenames#"
KILL_PREFIX = "kill#"
SPAWN_PREFIX = "spawn#"
INVOCATION_PREFIX = "req#"
RUN_PREFIX = "run#"
RECURSION_PREFIX = "recursion#"
SCHEDULE_PREFIX = "schedule#"


def rules_key(ref: FunctionRef) -> str:
    """Key of a function's cached rule state; the qualifier (alias or version) is part of it."""
    return f"{RULES_PREFIX}{ref.scoped_resource}"


def rule_names_key(ref: FunctionRef) -> str:
    """Key of the cached names of the rules targeting a function as invoked."""
    return f"{RULE_NAMES_PREFIX}{ref.scoped_resource}"


def kill_key(ref: FunctionRef) -> str:
    """Key of a function's kill switch: no qualifier, so it covers every alias and version."""
    return f"{KILL_PREFIX}{ref.scope}"


def legacy_kill_key(ref: FunctionRef) -> str:
    """Where releases before 0.3 kept the kill switch (the bare name): it no longer applies."""
    return f"{KILL_PREFIX}{ref.name}"


def spawn_key(scope: str, chain_id: str, generation: int) -> str:
    """Key of the spawn record of one chain step of the function ``scope``."""
    return f"{SPAWN_PREFIX}{scope}#{chain_id}#{generation}"


def invocation_key(scope: str, request_id: str) -> str:
    """Key of the chain position of the execution of ``scope`` started by the Invoke with
    ``request_id``."""
    return f"{INVOCATION_PREFIX}{scope}#{request_id}"


def run_key(scope: str, chain_id: str, generation: int) -> str:
    """Key of the claim by which one execution of ``scope``, and only one, runs a chain step."""
    return f"{RUN_PREFIX}{scope}#{chain_id}#{generation}"


def recursion_key(ref: FunctionRef) -> str:
    """Key of a function's cached ``RecursiveLoop`` setting: no qualifier."""
    return f"{RECURSION_PREFIX}{ref.scope}"


def schedule_key(ref: FunctionRef, schedule: str) -> str:
    """Key of a named schedule's cached state; ``schedule`` is ``group/name``, in the account
    and Region of ``ref`` (the function whose trigger it is)."""
    return f"{SCHEDULE_PREFIX}{ref.account_region}:{schedule}"


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


def chains_key(scope: str, day: str) -> str:
    """Key of the list of chains of the function ``scope`` that began on ``day``
    (``yyyy-mm-dd``, UTC)."""
    return f"{CHAINS_PREFIX}{scope}#{day}"
