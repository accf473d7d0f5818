"""One pynamodb ``Model`` per item kind: the fields its value holds, typed, and the bounds a
stored one must meet to be believed (any writer may have written it).

Every item has the envelope :class:`~estimator.binding.CacheItem` (key, JSON ``value``,
freshness, TTL, lease), decoded defensively by :mod:`estimator.items`. A kind is a subclass of
it, :class:`ItemKind`, that names its key prefix and declares its value as an
:class:`ItemValue`: a pynamodb ``MapAttribute`` whose typed attributes say what each field
must hold (a string where a number belongs, a list of the wrong elements, a missing field are
damage), plus the kind's own bounds (:meth:`ItemValue.in_bounds`: ranges, enumerations,
believable times). The value stays one JSON text on the wire, as every version of this library
wrote it: a field holds what JSON holds, so the declared types are checked against the decoded
JSON, which costs a few microseconds where pynamodb's serializer round trip costs fifty (the
kill switch is read at every spawn).

Readers ask ``Kind.valid(value, now=..., skew=...)``, or ``Kind.parse`` for the typed value:
one definition of a believable item per kind, next to the code that owns the kind (the
estimate in :mod:`estimator.estimate`, the limits in :mod:`estimator.limits`, the kill switch
in :mod:`siblings.killswitch`, and so on; :func:`kinds` lists them all).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace
from typing import Any, ClassVar

from pynamodb.attributes import ListAttribute, MapAttribute
from pynamodb.constants import BOOLEAN, LIST, MAP, NUMBER, STRING

from estimator.binding import CacheItem

_MISSING = object()
# The JSON type of each DynamoDB type a value's field may be declared as (the value is one
# JSON text, so a field holds what JSON holds).
_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    STRING: str, NUMBER: (int, float), BOOLEAN: bool, LIST: list, MAP: dict,
}


class ItemValue(MapAttribute[str, Any]):
    """The typed fields of one item kind's value (pynamodb attributes), and its bounds.

    A field declared ``null=False`` must be present and not null, unless it is listed in
    :attr:`optional` (then it may be absent, but never null); one declared ``null=True`` may be
    absent or null, unless it is listed in :attr:`present` (then it must be there, null or not).
    Fields the kind does not declare are ignored (a newer writer may add some).
    """

    optional: ClassVar[frozenset[str]] = frozenset()
    """Non-null fields that may be absent (items written before they existed)."""
    present: ClassVar[frozenset[str]] = frozenset()
    """Nullable fields that must be present (null is an answer, absence is damage)."""
    loose: ClassVar[frozenset[str]] = frozenset()
    """Nullable fields whose type :meth:`in_bounds` checks, when it matters (a field that only
    one state of the value uses)."""

    @classmethod
    def parse(cls, value: Any, now: float = math.inf, skew: float = 0.0) -> SimpleNamespace | None:
        """The typed fields of a stored JSON object (every declared one, ``None`` when absent),
        or ``None`` if it is not one of this kind: a field missing, null or not of its
        attribute's type, or out of the kind's bounds at ``now`` (give or take ``skew`` seconds
        of clock difference). Never raises."""
        if not isinstance(value, Mapping):
            return None
        fields: dict[str, Any] = {}
        for rule in _rules_of(cls):
            found = value.get(rule.key, _MISSING)
            if found is _MISSING:
                if rule.required:
                    return None
                found = None
            elif found is None:
                if not rule.nullable:
                    return None
            elif not rule.holds(found):
                return None
            fields[rule.name] = found
        # A plain view of the checked fields, not a pynamodb instance: its per-attribute
        # descriptors cost several times the check itself (the kill switch is read per spawn).
        typed = SimpleNamespace(**fields)
        return typed if cls.in_bounds(typed, now, skew) else None

    @classmethod
    def in_bounds(cls, fields: Any, now: float, skew: float) -> bool:
        """The kind's own bounds on its type-checked ``fields`` (ranges, believable times); all
        by default."""
        return True


class ItemKind(CacheItem):
    """One kind of item in the shared table: the envelope, its key prefix and its value."""

    prefix: ClassVar[str]
    """The start of every key of this kind (its format is in the owner's ``keys.py``)."""
    schema: ClassVar[type[ItemValue]]
    """What the item's ``value`` holds."""

    @classmethod
    def parse(cls, value: Any, now: float = math.inf, skew: float = 0.0) -> SimpleNamespace | None:
        """The typed fields of a stored value (:meth:`ItemValue.parse`), or ``None``."""
        return cls.schema.parse(value, now, skew)

    @classmethod
    def valid(cls, value: Any, now: float = math.inf, skew: float = 0.0) -> bool:
        """A stored value this kind would write, with times believable at ``now`` (± ``skew``).
        A kind whose bounds include a time (``SpawnItem``, ``RunItem``) needs ``now``: without
        it any time is believed."""
        return cls.schema.parse(value, now, skew) is not None


@dataclass(frozen=True)
class _FieldRule:
    """What one declared field of a kind's value must hold, read once off its attribute."""

    name: str
    key: str
    required: bool
    nullable: bool
    types: type | tuple[type, ...] | None
    """The JSON types the field may hold (``None``: any, checked by ``in_bounds``)."""
    elements: type | tuple[type, ...] | None
    """A list's element types (``None``: not a list of a declared type)."""

    def holds(self, value: Any) -> bool:
        """``value`` (decoded JSON, not null) is of the declared type, a list's elements too
        (a JSON ``true`` is no number, though Python counts bools as ints)."""
        if self.types is None:
            return True
        if not _is(value, self.types):
            return False
        return self.elements is None or all(_is(item, self.elements) for item in value)


def _is(value: Any, types: type | tuple[type, ...]) -> bool:
    return isinstance(value, types) and (types is bool or not isinstance(value, bool))


@cache
def _rules_of(schema: type[ItemValue]) -> tuple[_FieldRule, ...]:
    rules = []
    for name, attribute in schema.get_attributes().items():
        element = attribute.element_type if isinstance(attribute, ListAttribute) else None
        rules.append(_FieldRule(
            name=name,
            key=attribute.attr_name,
            required=(not attribute.null and name not in schema.optional) or name in schema.present,
            nullable=attribute.null,
            types=None if name in schema.loose else _JSON_TYPES[attribute.attr_type],
            elements=None if element is None else _JSON_TYPES[element.attr_type],
        ))
    return tuple(rules)


def kinds() -> dict[str, type[ItemKind]]:
    """Every item kind defined so far (its module imported), by key prefix."""
    found: dict[str, type[ItemKind]] = {}
    pending = list(ItemKind.__subclasses__())
    while pending:
        kind = pending.pop()
        pending.extend(kind.__subclasses__())
        if "prefix" in vars(kind):
            found[kind.prefix] = kind
    return found


def whole_count(value: Any, high: float) -> bool:
    """``value`` is an integer (a JSON number written without a fraction or exponent: ``3.0``
    and ``1e2`` decode to floats) in ``0..high``."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= high

