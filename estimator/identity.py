"""Which account and Region the library's clients act in, and the functions that belong there.

Table keys name a function by account, Region and name (:attr:`FunctionRef.scope`), and a
function ARN of another account or Region is refused: the clients would read another
function's metrics and rules, and its items would be another deployment's. The Region is the
configured one (boto3's chain otherwise). The account, in order:

1. ``account_id`` when configured (template.yaml sets it);
2. inside the function's own execution with the environment's credentials
   (``AWS_LAMBDA_FUNCTION_NAME`` names the function the ARN names, no session given), the
   ARN's: Lambda gives the execution role's credentials, and a role can only be passed to a
   function of its own account (``iam:PassRole``), so no call is needed (a function in a VPC
   without an STS endpoint keeps working);
3. STS ``GetCallerIdentity`` (no permission needed:
   https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html), asked once
   per process for each config and credentials (threads arriving together may each ask). A
   failure is remembered for a few seconds only, so an STS outage costs one timeout per
   back-off, not one per call (a call cut short by a spawn's deadline is not remembered).
"""

from __future__ import annotations

import os
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache

from estimator.clock import SYSTEM_CLOCK, Clock
from estimator.config import Config
from estimator.deadline import call_timeout
from estimator.exceptions import AccountUnknown, NoRegion
from estimator.validation import ACCOUNT_PATTERN, FunctionRef

_STS_RETRIES = {"mode": "standard", "total_max_attempts": 2}
_STS_TIMEOUT_S = 5.0
_FAILURE_MEMORY_S = 5.0


@dataclass(frozen=True)
class Home:
    """An account in one Region (and its partition): where the clients act."""

    account: str
    region: str
    partition: str = "aws"

    def __str__(self) -> str:
        return f"{self.account}:{self.region}"


class ForeignFunction(ValueError):
    """A function ARN of another account or Region than the clients'."""


_homes: MutableMapping[tuple[Any, ...], Home] = LRUCache(maxsize=64)
_failures: MutableMapping[tuple[Any, ...], tuple[Clock, float, BaseException]] = LRUCache(maxsize=64)
_lock = threading.Lock()  # held for the maps only, never across a call to STS


def resolve_region(config: Config, session: Any = None, service: str = "DynamoDB") -> str:
    """The Region of ``config`` (its own setting, the session's, boto3's default chain);
    :class:`NoRegion` naming ``service`` when there is none."""
    region = config.region_name or (session.region_name if session is not None else None)
    if not region:
        import boto3

        region = boto3.Session().region_name
    if not region:
        raise NoRegion(service)
    return str(region)


def partition_of(region: str) -> str:
    """The partition of a Region (``aws-cn`` for ``cn-*``, ``aws-us-gov`` for ``us-gov-*``)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def home_of(
    config: Config, session: Any = None, running: FunctionRef | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Home:
    """The account and Region of ``config``'s clients (with ``session``'s credentials);
    ``running`` is the function whose execution this is, when the caller knows it (its context).

    Raises :class:`NoRegion` with no Region configured, :class:`AccountUnknown` when STS cannot
    say the account (set ``account_id``, ``SIBLINGS_ACCOUNT_ID``, to need no call).
    """
    region = resolve_region(config, session, "STS")
    if config.account_id:
        return Home(config.account_id, region, partition_of(region))
    if running is not None and _own_execution(running, region, session):
        return Home(str(running.account), region, running.partition)
    try:
        key = _key(config, session, region)
    except Exception as exc:  # noqa: BLE001 - credentials that cannot even be resolved
        raise AccountUnknown(exc) from exc
    with _lock:
        home = _homes.get(key)
        failed = _failures.get(key)
    if home is not None:
        return home
    # A failure is remembered on the clock it was seen on (a simulation's is not the real one).
    if failed is not None and failed[0] is clock and clock.monotonic() < failed[1]:
        raise AccountUnknown(failed[2])
    bounded = call_timeout(2)
    try:
        home = _caller_home(config, session, region)
    except AccountUnknown as exc:
        if bounded is None or bounded >= _STS_TIMEOUT_S:  # not a call cut short by its deadline
            with _lock:
                _failures[key] = (clock, clock.monotonic() + _FAILURE_MEMORY_S, exc.cause)
        raise
    with _lock:
        _homes[key] = home
        _failures.pop(key, None)
    return home


def at_home(
    ref: FunctionRef, config: Config, session: Any = None, *, running: bool = False,
    clock: Clock = SYSTEM_CLOCK,
) -> FunctionRef:
    """``ref`` with the clients' account and Region filled in; :class:`ForeignFunction` when
    ``ref`` (an ARN) names another account or Region. ``running``: ``ref`` comes from this
    execution's own context (see :func:`home_of`); an ARN merely asked about is never trusted."""
    home = home_of(config, session, ref if running else None, clock)
    check_home(ref, home)
    return in_home(ref, home)


def in_home(ref: FunctionRef, home: Home) -> FunctionRef:
    """``ref`` (checked by :func:`check_home`) with ``home``'s account, Region and partition."""
    return ref.at(home.region, home.account, home.partition)


def check_home(ref: FunctionRef, home: Home) -> None:
    """:class:`ForeignFunction` unless ``ref``'s account and Region (where set) are ``home``'s."""
    if (ref.region or home.region) == home.region and (ref.account or home.account) == home.account:
        return
    raise ForeignFunction(
        f"function {ref.name!r} is in account {ref.account or '?'}, Region {ref.region or '?'}, "
        f"but this library's clients act in account {home.account}, Region {home.region}: "
        "give the library credentials of the function's account and its Region "
        "(SIBLINGS_REGION_NAME)"
    )


def forget_homes() -> None:
    """Forget every account this process learned from STS, and every failure to learn one (in
    tests, or after switching to another account's credentials): the next new manager or
    estimator asks again (one made before keeps the account it learned)."""
    with _lock:
        _homes.clear()
        _failures.clear()


def _own_execution(running: FunctionRef, region: str, session: Any) -> bool:
    """This is ``running``'s own execution on Lambda, with the environment's credentials."""
    return (
        session is None
        and bool(running.account)
        and running.region == region
        and os.environ.get("AWS_LAMBDA_FUNCTION_NAME") == running.name
        and os.environ.get("AWS_REGION", region) == region
    )


def _key(config: Config, session: Any, region: str) -> tuple[Any, ...]:
    """Who asks, cheaply: the endpoint, Region and the credentials' key id (a session's
    resolved credentials are kept by botocore; the default chain's are read once per key)."""
    if session is not None:
        credentials = session.get_credentials()
        who: Any = None if credentials is None else credentials.access_key
    else:
        who = (os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_PROFILE"))
    return (region, config.endpoint_url, who)


def _caller_home(config: Config, session: Any, region: str) -> Home:
    from estimator.aws import make_client

    timeout = min(call_timeout(2) or _STS_TIMEOUT_S, _STS_TIMEOUT_S)  # in a spawn: its time left
    try:
        client = make_client("sts", config, session, _STS_RETRIES, timeout)
        reply = client.get_caller_identity()
    except NoRegion:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure means the account is unknown
        raise AccountUnknown(exc) from exc
    account, arn = reply.get("Account"), reply.get("Arn")
    if not isinstance(account, str) or not ACCOUNT_PATTERN.fullmatch(account):
        raise AccountUnknown(ValueError(f"GetCallerIdentity returned account {account!r:.40}"))
    partition = arn.split(":")[1] if isinstance(arn, str) and arn.count(":") >= 5 else None
    return Home(account, region, partition or partition_of(region))
