"""Key formats of the items the estimator owns in the shared table.

Every owner of items in the table keeps its key formats in one module like this one, with a
prefix of its own, so that no two kinds collide and a reader can tell an item's kind by its key.
A function is named by ``<account>:<region>:<name>`` (:attr:`FunctionRef.scope`) and the
account-wide items by ``<account>:<region>``, so that accounts and Regions sharing a table (a
global table, a shared one) keep apart.
"""

from __future__ import annotations

from estimator.identity import Home
from estimator.validation import FunctionRef

ESTIMATE_PREFIX = "estimate#"
LIMITS_PREFIX = "limits#"
ACCOUNT_PREFIX = "estimates#"


def estimate_key(ref: FunctionRef, minutes_back: int) -> str:
    """Key of the cached estimate of one function (qualifier included) over one window."""
    return f"{ESTIMATE_PREFIX}{ref.scoped_resource}#{minutes_back}"


def account_key(home: Home, minutes_back: int) -> str:
    """Key of the account's list of functions (in one Region) whose estimates are refreshed
    together, and of that refresh's lease, per window."""
    return f"{ACCOUNT_PREFIX}{home}#{minutes_back}"


def account_limit_key(home: Home) -> str:
    """Key of the cached concurrency limit of an account in one Region."""
    return f"{LIMITS_PREFIX}account#{home}"


def function_concurrency_key(ref: FunctionRef) -> str:
    """Key of a function's cached reserved concurrency: no qualifier, as reserved concurrency
    is set on the function, not on an alias or version."""
    return f"{LIMITS_PREFIX}function#{ref.scope}"
