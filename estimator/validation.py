"""Lambda function names, ARNs and qualifiers, checked against Lambda's naming rules."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

ACCOUNT_PATTERN = re.compile(r"[0-9]{12}")
"""A 12-digit AWS account id (ASCII digits only)."""
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_QUALIFIER = re.compile(r"^(\$LATEST|[a-zA-Z0-9_-]{1,128})$")
_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"function:(?P<name>[^:]+)(?::(?P<qualifier>[^:]+))?$"
)
_PARTIAL_ARN = re.compile(r"^(?P<account>\d{12}):function:(?P<name>[^:]+)(?::(?P<qualifier>[^:]+))?$")
_QUALIFIED_NAME = re.compile(r"^(?P<name>[^:]+):(?P<qualifier>[^:]+)$")


@dataclass(frozen=True)
class FunctionRef:
    """A Lambda function, by name, with an optional qualifier (version or alias).

    ``region`` and ``account`` are set when the reference was parsed from an ARN.
    """

    name: str
    qualifier: str | None = None
    region: str | None = None
    account: str | None = None
    partition: str = "aws"

    @property
    def resource(self) -> str:
        """CloudWatch's ``Resource`` dimension value: ``name`` or ``name:qualifier``."""
        return f"{self.name}:{self.qualifier}" if self.qualifier else self.name

    @property
    def account_region(self) -> str:
        """``<account>:<region>``, how table keys name where the function is. ``ValueError``
        when account or Region is unknown (resolve a bare name first: :meth:`at`)."""
        if not self.account or not self.region:
            raise ValueError(
                f"the account and Region of function {self.name!r} are unknown: "
                "a table key needs both (give its ARN)"
            )
        return f"{self.account}:{self.region}"

    @property
    def scope(self) -> str:
        """``<account>:<region>:<name>``: what identifies the function in the shared table, so
        that a function of the same name in another account or Region (a global or shared
        table) keeps items of its own. ``ValueError`` when account or Region is unknown."""
        return f"{self.account_region}:{self.name}"

    @property
    def scoped_resource(self) -> str:
        """:attr:`scope` with the qualifier: ``<account>:<region>:<name>[:<qualifier>]``."""
        return f"{self.scope}:{self.qualifier}" if self.qualifier else self.scope

    def at(self, region: str, account: str, partition: str | None = None) -> FunctionRef:
        """The same function with a blank Region and account filled in (what is set stays), and
        then ``partition`` (default: its own)."""
        if self.region and self.account:
            return self
        return FunctionRef(self.name, self.qualifier, self.region or region,
                           self.account or account, partition or self.partition)

    def unqualified(self) -> FunctionRef:
        """The same function without its qualifier."""
        return FunctionRef(self.name, None, self.region, self.account, self.partition)

    def arn(self, region: str | None = None, account: str | None = None) -> str:
        """The function's ARN (with the qualifier, if any); region/account fill in blanks."""
        reg = self.region or region
        acct = self.account or account
        if not reg or not acct:
            raise ValueError(f"region and account are needed to build the ARN of {self.name!r}")
        base = f"arn:{self.partition}:lambda:{reg}:{acct}:function:{self.name}"
        return f"{base}:{self.qualifier}" if self.qualifier else base


def parse_function(name_or_arn: object, qualifier: object = None) -> FunctionRef:
    """Parse a function name, ``name:qualifier``, partial ARN or ARN into a :class:`FunctionRef`.

    An explicit ``qualifier`` must agree with one embedded in the ARN.
    Raises ``TypeError``/``ValueError`` naming the bad argument.
    """
    if isinstance(name_or_arn, str) and (qualifier is None or isinstance(qualifier, str)):
        return _parse_cached(name_or_arn, qualifier)  # the same few names, on every decision
    return _parse(name_or_arn, qualifier)


@functools.lru_cache(maxsize=1024)
def _parse_cached(name_or_arn: str, qualifier: str | None) -> FunctionRef:
    return _parse(name_or_arn, qualifier)


def _parse(name_or_arn: object, qualifier: object) -> FunctionRef:
    if not isinstance(name_or_arn, str):
        raise TypeError(f"function_name must be a str, got {type(name_or_arn).__name__}")
    if qualifier is not None and not isinstance(qualifier, str):
        raise TypeError(f"qualifier must be a str or None, got {type(qualifier).__name__}")
    text = name_or_arn.strip()
    region = account = None
    partition = "aws"
    embedded: str | None = None
    match = _ARN.match(text) or _PARTIAL_ARN.match(text) or _QUALIFIED_NAME.match(text)
    if match:
        groups = match.groupdict()
        name = groups["name"]
        embedded = groups.get("qualifier")
        region = groups.get("region")
        account = groups.get("account")
        partition = groups.get("partition") or "aws"
    else:
        name = text
    if not _NAME.match(name):
        raise ValueError(
            f"function_name {name_or_arn!r} is not a Lambda function name or ARN "
            "(1-64 characters of letters, digits, '-' and '_')"
        )
    if embedded is not None and qualifier is not None and embedded != qualifier:
        raise ValueError(
            f"qualifier {qualifier!r} disagrees with the ARN's qualifier {embedded!r}"
        )
    final = qualifier if qualifier is not None else embedded
    if final is not None and not _QUALIFIER.match(final):
        raise ValueError(
            f"qualifier {final!r} is not a version or alias "
            "($LATEST, or 1-128 characters of letters, digits, '-' and '_')"
        )
    return FunctionRef(name, final, region, account, partition)


def check_minutes_back(minutes_back: object) -> int:
    """Return ``minutes_back`` if it is an int in 1..1440, else raise naming the argument."""
    if isinstance(minutes_back, bool) or not isinstance(minutes_back, int):
        raise TypeError(f"minutes_back must be an int, got {type(minutes_back).__name__}")
    if not 1 <= minutes_back <= 1440:
        raise ValueError(f"minutes_back must be in 1..1440, got {minutes_back}")
    return minutes_back
