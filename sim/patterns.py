"""EventBridge event-pattern matching, for the subset of the pattern language the sim uses.

moto has no ``TestEventPattern`` and delivers events without honouring rule state, so the
traffic model matches its generated events against the rules' current patterns itself.

Supported, as documented for EventBridge content filtering:

* exact values: strings, numbers, booleans and ``null``; an event array matches when any of
  its elements matches;
* ``{"prefix": "..."}`` and ``{"suffix": "..."}``;
* ``{"anything-but": value | [values] | {"prefix": "..."}}``;
* ``{"exists": true | false}``;
* ``{"numeric": [">", 0, "<=", 5]}`` (any of ``=``, ``>``, ``>=``, ``<``, ``<=``);
* nested objects (``"detail": {"total": [...]}``); all keys must match (AND), the values in
  one list are alternatives (OR).

Anything else (for example ``wildcard`` or ``$or``) raises :class:`UnsupportedPattern`; the
traffic model treats such a rule as matching nothing and says so in its log.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from typing import Any

_MISSING = object()

_NUMERIC_OPS: dict[str, Callable[[float, float], bool]] = {
    "=": operator.eq,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


class UnsupportedPattern(ValueError):
    """A pattern uses a feature outside the supported subset (or is not a pattern at all)."""


def parse_pattern(text: str) -> dict[str, Any]:
    """An ``EventPattern`` JSON string -> dict; :class:`UnsupportedPattern` if it is not one."""
    try:
        pattern = json.loads(text)
    except ValueError as error:
        raise UnsupportedPattern(f"event pattern is not JSON: {error}") from None
    if not isinstance(pattern, dict):
        raise UnsupportedPattern("event pattern must be a JSON object")
    return pattern


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """True when ``event`` (an EventBridge event envelope as a dict) matches ``pattern``."""
    for key, expected in pattern.items():
        if key.startswith("$"):
            raise UnsupportedPattern(f"operator {key!r} is not supported")
        actual = event.get(key, _MISSING) if isinstance(event, Mapping) else _MISSING
        if isinstance(expected, Mapping):
            if not isinstance(actual, Mapping) or not matches(expected, actual):
                return False
        elif isinstance(expected, list):
            if not _matches_any(expected, actual):
                return False
        else:
            raise UnsupportedPattern(
                f"pattern value for {key!r} must be an object or a list, got {expected!r}"
            )
    return True


def _matches_any(alternatives: list[Any], actual: Any) -> bool:
    return any(_matches_one(rule, actual) for rule in alternatives)


def _values(actual: Any) -> list[Any]:
    """An event field as the list of values a matcher considers (arrays match any element)."""
    if actual is _MISSING:
        return []
    return list(actual) if isinstance(actual, list) else [actual]


def _matches_one(rule: Any, actual: Any) -> bool:
    if isinstance(rule, Mapping):
        if len(rule) != 1:
            raise UnsupportedPattern(f"a matcher object has exactly one key, got {dict(rule)!r}")
        (name, argument), = rule.items()
        return _matcher(name, argument, actual)
    return any(_equal(rule, value) for value in _values(actual))


def _equal(expected: Any, value: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return expected is value
    if isinstance(expected, int | float) and isinstance(value, int | float):
        return float(expected) == float(value)
    return bool(expected == value)


def _matcher(name: str, argument: Any, actual: Any) -> bool:
    values = _values(actual)
    if name == "exists":
        if not isinstance(argument, bool):
            raise UnsupportedPattern("'exists' takes true or false")
        present = actual is not _MISSING
        return present if argument else not present
    if name == "prefix":
        return any(isinstance(v, str) and v.startswith(str(argument)) for v in values)
    if name == "suffix":
        return any(isinstance(v, str) and v.endswith(str(argument)) for v in values)
    if name == "anything-but":
        return bool(values) and all(not _excluded(argument, v) for v in values)
    if name == "numeric":
        return any(_numeric(argument, v) for v in values)
    raise UnsupportedPattern(f"matcher {name!r} is not supported")


def _excluded(argument: Any, value: Any) -> bool:
    if isinstance(argument, Mapping):
        if set(argument) == {"prefix"}:
            return isinstance(value, str) and value.startswith(str(argument["prefix"]))
        raise UnsupportedPattern(f"anything-but {dict(argument)!r} is not supported")
    options = argument if isinstance(argument, list) else [argument]
    return any(_equal(option, value) for option in options)


def _numeric(argument: Any, value: Any) -> bool:
    if not isinstance(argument, list) or len(argument) % 2 or not argument:
        raise UnsupportedPattern(f"numeric takes operator/value pairs, got {argument!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    for index in range(0, len(argument), 2):
        op, bound = argument[index], argument[index + 1]
        if op not in _NUMERIC_OPS or isinstance(bound, bool) or not isinstance(bound, int | float):
            raise UnsupportedPattern(f"numeric condition {op!r} {bound!r} is not supported")
        if not _NUMERIC_OPS[op](float(value), float(bound)):
            return False
    return True
