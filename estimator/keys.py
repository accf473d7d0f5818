"""Key formats of the items the estimator owns in the shared table.

Every owner of items in the table keeps its key formats in one module like this one, with a
prefix of its own, so that no two kinds collide and a reader can tell an item's kind by its key.
"""

from __future__ import annotations

from estimator.validation import FunctionRef

ESTIMATE_PREFIX = "estimate#"
LIMITS_PREFIX = "limits#"
ACCOUNT_PREFIX = "estimates#"


def estimate_key(ref: FunctionRef, minutes_back: int) -> str:
    """Key of the cached estimate of one function (qualifier included) over one window."""
    return f"{ESTIMATE_PREFIX}{ref.resource}#{minutes_back}"


def account_key(minutes_back: int) -> str:
    """Key of the account's list of functions whose estimates are refreshed together (and of
    that refresh's lease), per window (a table serves one account and Region)."""
    return f"{ACCOUNT_PREFIX}{minutes_back}"


def account_limit_key() -> str:
    """Key of the cached account concurrency limit (a table serves one account and Region)."""
    return f"{LIMITS_PREFIX}account"


def function_concurrency_key(ref: FunctionRef) -> str:
    """Key of a function's cached reserved concurrency: the bare name, as reserved concurrency
    is set on the function, not on an alias or version."""
    return f"{LIMITS_PREFIX}function#{ref.name}"
