"""The one parser of configuration values, wherever they come from.

A setting can arrive as a native Python value (``Config(...)``), as a string from a
``SIBLINGS_*`` environment variable, or as either from a ``custom_config`` dict or keyword
options (sosw configs are often loaded from JSON or the environment, so ``"false"`` and
``"30"`` are common there). The rules, the same for every source except the typed
constructor:

* booleans: ``true/yes/on/1`` and ``false/no/off/0`` (any case); ints ``0``/``1`` too;
* numbers: native ints/floats, or numeric strings; never ``bool``, never NaN or infinity;
* optional settings: ``None``, or the strings ``""``, ``none``, ``null``;
* choices (a ``StrEnum``): one of its values;
* lists of names (``tuple[str, ...]``): a list or tuple of strings, or one comma-separated string;
* anything else raises ``TypeError`` naming the key, and a value out of its range
  ``ValueError`` naming the key, so no setting can silently switch a guard off.

The typed constructor (``Config(field=value)``) takes native values only: a string where a
number is expected is a ``TypeError`` there, because code that passes one has a bug.
"""

from __future__ import annotations

import dataclasses
import math
import types
from enum import StrEnum
from typing import Any, Union, get_args, get_origin

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_NONE = frozenset({"", "none", "null"})


def bounded(default: Any, low: float | None = None, high: float | None = None, *, above: bool = False) -> Any:
    """A dataclass field whose value must lie in ``[low, high]`` (``(low, high]`` with ``above``)."""
    return dataclasses.field(default=default, metadata={"low": low, "high": high, "above": above})


def _members(hint: Any) -> tuple[set[Any], bool]:
    """The concrete types of a hint and whether ``None`` is allowed."""
    if get_origin(hint) in (Union, types.UnionType):
        args = set(get_args(hint))
        return args - {type(None)}, type(None) in args
    return {hint}, False


def parse(name: str, value: Any, hint: Any, *, label: str | None = None) -> Any:
    """Convert ``value`` (native or a string) to the setting's type; see the module doc.

    ``label`` names the source in errors (an environment variable name); default ``name``.
    """
    label = label or name
    kinds, optional = _members(hint)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in _NONE):
        if optional:
            return None
        raise TypeError(f"{label} must not be None")
    kind = next(iter(kinds))
    if get_origin(kind) is tuple:  # a list of names: "a,b" in the environment
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value
    if kind is bool and type(value) is int and value in (0, 1):
        return bool(value)  # JSON configs written as 0/1
    if not isinstance(value, str) or str in kinds:
        return value
    text = value.strip()
    lowered = text.lower()
    if kind is bool:
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"{label}={value!r}: {name} expects true/false, yes/no, on/off or 1/0")
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        return _choice(name if label == name else f"{label}: {name}", text, kind)
    try:
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise ValueError(f"{label}={value!r}: {name} expects a number") from None
    return value


def check(name: str, value: Any, hint: Any, metadata: Any = None) -> Any:
    """Validate a native ``value`` against its hint and bounds; returns it (enums normalised).

    Raises ``TypeError`` for a wrong type and ``ValueError`` for a value out of range.
    """
    kinds, optional = _members(hint)
    if value is None:
        if optional:
            return None
        raise TypeError(f"{name} must not be None")
    kind = next(iter(kinds))
    if get_origin(kind) is tuple:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise TypeError(f"{name} must be a list of strings, got {type(value).__name__} {value!r}")
        if not all(isinstance(item, str) for item in value):
            raise TypeError(f"{name} must be a list of strings, got {value!r}")
        return tuple(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
        return value
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be one of {[m.value for m in kind]}, got {value!r}")
        return _choice(name, value, kind)
    if kind in (int, float):
        allowed: tuple[type, ...] = (int,) if kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise TypeError(f"{name} must be {'an int' if kind is int else 'a number'}, got "
                            f"{type(value).__name__} {value!r}")
        number = float(value)  # type: ignore[arg-type]
        if not math.isfinite(number):
            raise ValueError(f"{name} must be finite, got {value!r}")
        _check_bounds(name, number, metadata or {})
        return value
    if kind is str and not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def _check_bounds(name: str, value: float, metadata: Any) -> None:
    low, high, above = metadata.get("low"), metadata.get("high"), metadata.get("above", False)
    too_low = low is not None and (value <= low if above else value < low)
    if too_low or (high is not None and value > high):
        left = "(" if above else "["
        lo = "-inf" if low is None else _number(low)
        hi = "inf" if high is None else _number(high)
        raise ValueError(f"{name} must be in {left}{lo}, {hi}], got {value!r}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _choice(label: str, text: str, kind: type[StrEnum]) -> StrEnum:
    try:
        return kind(text.strip().lower())
    except ValueError:
        raise ValueError(
            f"{label} must be one of {[m.value for m in kind]}, got {text!r}"
        ) from None
