"""Which account and Region the library's clients act in, and the functions that belong there.

Table keys name a function by account, Region and name (:attr:`FunctionRef.scope`), and a
function ARN of another account or Region is refused: the clients would read another
function's metrics and rules, and its items would be another deployment's. The Region is the
configured one (boto3's chain otherwise); the account is ``account_id`` when configured, else
STS ``GetCallerIdentity`` (no permission needed:
https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html), asked once per
process for each config and session. A failed ask is not remembered: the next caller asks again.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache

from estimator.config import Config
from estimator.deadline import call_timeout
from estimator.exceptions import AccountUnknown, NoRegion
from estimator.validation import FunctionRef

_ACCOUNT = re.compile(r"\d{12}")
_STS_RETRIES = {"mode": "standard", "total_max_attempts": 2}
_STS_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Home:
    """An account in one Region: where the clients act."""

    account: str
    region: str

    def __str__(self) -> str:
        return f"{self.account}:{self.region}"


class ForeignFunction(ValueError):
    """A function ARN of another account or Region than the clients'."""


_homes: MutableMapping[tuple[Any, ...], Home] = LRUCache(maxsize=64)
_lock = threading.Lock()


def resolve_region(config: Config, session: Any = None) -> str:
    """The Region of ``config`` (its own setting, the session's, boto3's default chain);
    :class:`NoRegion` when there is none."""
    region = config.region_name or (session.region_name if session is not None else None)
    if not region:
        import boto3

        region = boto3.Session().region_name
    if not region:
        raise NoRegion("DynamoDB")
    return str(region)


def home_of(config: Config, session: Any = None) -> Home:
    """The account and Region of ``config``'s clients (with ``session``'s credentials).

    Raises :class:`NoRegion` with no Region configured, :class:`AccountUnknown` when STS cannot
    say the account (set ``account_id``, ``SIBLINGS_ACCOUNT_ID``, to need no call).
    """
    key = _key(config, session)
    home = _homes.get(key)
    if home is not None:
        return home
    with _lock:  # one ask per process, not one per thread arriving together
        home = _homes.get(key)
        if home is None:
            region = resolve_region(config, session)
            home = _homes[key] = Home(config.account_id or _caller_account(config, session), region)
        return home


def at_home(ref: FunctionRef, config: Config, session: Any = None) -> FunctionRef:
    """``ref`` with the clients' account and Region filled in; :class:`ForeignFunction` when
    ``ref`` (an ARN) names another account or Region."""
    home = home_of(config, session)
    check_home(ref, home)
    return ref.at(home.region, home.account)


def check_home(ref: FunctionRef, home: Home) -> None:
    """:class:`ForeignFunction` unless ``ref``'s account and Region (where set) are ``home``'s."""
    if (ref.region or home.region) == home.region and (ref.account or home.account) == home.account:
        return
    raise ForeignFunction(
        f"function {ref.name!r} is in account {ref.account or '?'}, Region {ref.region or '?'}, "
        f"but this library's clients act in account {home.account}, Region {home.region}: "
        "use credentials of the function's account (or set SIBLINGS_ACCOUNT_ID to it) and "
        "SIBLINGS_REGION_NAME to its Region"
    )


def _key(config: Config, session: Any) -> tuple[Any, ...]:
    """Who asks, cheaply: the settings, and the credentials' key id (a session's resolved
    credentials are kept by botocore; the default chain's, on Lambda, are in the environment)."""
    region = config.region_name or (session.region_name if session is not None else None)
    if not region:  # boto3's chain reads the environment
        region = (os.environ.get("AWS_REGION"), os.environ.get("AWS_DEFAULT_REGION"),
                  os.environ.get("AWS_PROFILE"))
    if config.account_id:
        return (config.account_id, region)
    if session is not None:
        credentials = session.get_credentials()
        who = None if credentials is None else credentials.access_key
    else:
        who = (os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_PROFILE"))
    return (None, region, config.endpoint_url, who)


def _caller_account(config: Config, session: Any) -> str:
    from estimator.aws import make_client

    timeout = call_timeout(2) or _STS_TIMEOUT_S  # inside a spawn: within its time left
    try:
        client = make_client("sts", config, session, _STS_RETRIES, min(timeout, _STS_TIMEOUT_S))
        account = client.get_caller_identity().get("Account")
    except NoRegion:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure means the account is unknown
        raise AccountUnknown(exc) from exc
    if not isinstance(account, str) or not _ACCOUNT.fullmatch(account):
        raise AccountUnknown(ValueError(f"GetCallerIdentity returned account {account!r:.40}"))
    return account


def forget_homes() -> None:
    """Forget every account learned from STS (after rotating to another account's
    credentials in one process, and in tests): the next caller asks again."""
    with _lock:
        _homes.clear()
