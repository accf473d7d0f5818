"""The shared table's item format, decoded defensively: any writer may have written an item.

Every item holds a JSON object in ``value``, when it stops being fresh (``fresh_until``), when
DynamoDB may delete it (``ttl``, epoch seconds) and optional lease and failure markers.
:func:`decode_item` never raises: an attribute of the wrong type marks the item ``corrupt``.
Owners of an item kind validate the value's shape and bounds themselves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from estimator.memory import Cached, Tier


@dataclass(frozen=True)
class StoredItem:
    """A decoded item. ``value`` is ``None`` when the item is corrupt or foreign."""

    key: str
    value: dict[str, Any] | None
    fresh_until: float | None = None
    keep_until: float | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    corrupt: bool = False
    """Holds attributes of the wrong type or shape (a foreign or damaged item)."""
    failed_until: float | None = None
    """The last refresh failed; until then nobody in the fleet retries it."""
    last_error: str | None = None
    """What that refresh failed with."""

    def is_fresh(self, now: float) -> bool:
        """Holds a usable value that has not expired by the reader's own clock."""
        return (
            self.value is not None
            and self.fresh_until is not None
            and self.fresh_until > now
            and not self.is_gone(now)
        )

    def is_gone(self, now: float) -> bool:
        """Past its TTL: DynamoDB would delete it any time, so treat it as deleted."""
        return expired(self.keep_until, now)

    def lease_held(self, now: float, longest: float = math.inf) -> bool:
        """Another refresher holds an unexpired lease, no longer than ``longest`` from ``now``
        (a lease reaching further was written by a skewed or buggy clock: it holds nothing)."""
        return self.lease_until is not None and now < self.lease_until <= now + longest

    def recently_failed(self, now: float, longest: float = math.inf) -> bool:
        """A refresh failed a moment ago and the fleet is backing off (for at most ``longest``)."""
        return self.failed_until is not None and now < self.failed_until <= now + longest


def expired(keep_until: float | None, now: float) -> bool:
    """The one definition of "expired", used by readers and by every store's conditions: an
    item whose TTL (``keep_until``, epoch seconds) is at or before ``now``. DynamoDB stores the
    TTL in whole seconds (rounded up, :func:`ttl_datetime`), so for a stored TTL ``T`` this is
    ``T <= floor(now)``, the form the table's condition expressions use."""
    return keep_until is not None and keep_until <= now


def decode_item(key: str, item: dict[str, Any]) -> StoredItem:
    """Decode a raw item; anything malformed gives ``value=None`` rather than an error."""
    value: dict[str, Any] | None = None
    text = _scalar(item.get("value"), "S")
    if text is not None:
        try:
            decoded = json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)
            value = decoded if isinstance(decoded, dict) else None
        except (ValueError, RecursionError):
            value = None
    fresh_until = _number(item.get("fresh_until"))
    lease_until = _number(item.get("lease_until"))
    corrupt = (
        ("value" in item and value is None)
        or ("fresh_until" in item and fresh_until is None)
        or ("lease_until" in item and lease_until is None)
        or ("ttl" in item and _number(item.get("ttl")) is None)
        or (value is not None and fresh_until is None)
    )
    if corrupt:
        value = None
    return StoredItem(
        key=key,
        value=value,
        fresh_until=fresh_until,
        keep_until=_number(item.get("ttl")),
        lease_owner=_scalar(item.get("lease_owner"), "S"),
        lease_until=lease_until,
        corrupt=corrupt,
        failed_until=_number(item.get("failed_until")),
        last_error=_scalar(item.get("last_error"), "S"),
    )


_MAX_INT = 2**53  # beyond a float's exact range no stored number of ours can be


def _bounded_int(text: str) -> int:
    """An integer of a stored value; one too large for a float is a damaged item, not a number
    (it would overflow every check made on it)."""
    if len(text) > 20 or abs(number := int(text)) > _MAX_INT:
        raise ValueError(f"integer out of range: {text[:30]}")
    return number


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def believable_time(stamp: Any, now: float, skew: float) -> TypeGuard[float]:
    """``stamp`` is epoch seconds a writer could have set by ``now``: a finite number no later
    than ``now`` plus the clock-skew allowance (every item kind's times are checked so)."""
    return number_in(stamp, -math.inf, now + skew)


def number_in(value: Any, low: float, high: float) -> TypeGuard[float]:
    """``value`` is a finite number (not a bool, which Python counts as an int) in
    ``low..high``."""
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and low <= value <= high)


def encode_item(key: str, value: dict[str, Any], fresh_until: float, keep_until: float) -> dict[str, Any]:
    """The raw DynamoDB item (attribute-value form) of a value with no lease."""
    return {
        "pk": {"S": key},
        "value": {"S": dumps(value)},
        "fresh_until": {"N": repr(float(fresh_until))},
        "ttl": {"N": str(math.ceil(keep_until))},
    }


def ttl_datetime(epoch: float) -> datetime:
    """The TTL attribute's value for ``epoch``, rounded up to whole seconds (DynamoDB's unit),
    so that an item is never deleted before it should be."""
    return datetime.fromtimestamp(math.ceil(epoch), tz=UTC)


def field_text(name: str, value: str) -> str:
    """How a top-level string field appears in a stored value's JSON text (:func:`dumps`)."""
    return dumps({name: value})[1:-1]


def dumps(value: dict[str, Any]) -> str:
    """The stored JSON text of a value (compact, keys sorted)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _scalar(attribute: Any, kind: str) -> str | None:
    if isinstance(attribute, dict) and isinstance(attribute.get(kind), str):
        return str(attribute[kind])
    return None


def _number(attribute: Any) -> float | None:
    text = _scalar(attribute, "N")
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def cached_entry(
    item: StoredItem | None,
    now: float,
    validate: Callable[[dict[str, Any]], bool] | None,
    ttl: float,
    skew: float,
) -> Cached | None:
    """The cached entry an item holds, if it is well-formed, not past its TTL, and its times are
    believable: written no later than ``now`` (give or take ``skew``), and fresh for no longer
    than ``ttl`` after that. A skewed or buggy writer cannot freeze a value."""
    if item is None or item.value is None or item.fresh_until is None or item.is_gone(now):
        return None
    value = item.value.get("value")
    fetched_at = item.value.get("fetched_at")
    if not isinstance(value, dict) or not believable_time(fetched_at, now, skew):
        return None
    if item.fresh_until > fetched_at + ttl + skew:
        return None
    if validate is not None and not validate(value):
        return None
    return Cached(value, Tier.DYNAMODB, float(fetched_at), item.fresh_until, stale=False)


def holds_junk(item: StoredItem | None, entry: Cached | None, now: float) -> bool:
    """An item that holds something, not past its TTL, that does not decode to an entry."""
    if item is None or item.is_gone(now):
        return False
    return item.corrupt or (item.value is not None and entry is None)
