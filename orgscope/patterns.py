"""EventBridge event patterns read back from the ``rules`` dataset: the sources they name.

The one parser of a pattern's ``source`` field, for the health model (which accounts
produce a rule's events) and the dashboard (the producers of the route map).
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class PatternSource:
    """One ``source`` value of a pattern: a plain name, or a ``{"prefix": ...}`` matcher."""

    value: str
    prefix: bool = False

    @property
    def label(self) -> str:
        """For people: the name, or the prefix followed by '*'."""
        return f"{self.value}*" if self.prefix else self.value


def source_matchers(pattern: object) -> list[PatternSource]:
    """The ``source`` values an event pattern (JSON text) names, in order.

    Plain strings are kept; ``{"prefix": "x."}`` yields a prefix ``"x."``; other matchers
    (``anything-but``, ``exists``...) name no producer and are skipped. A pattern that is not
    JSON text of an object, or a scheduled rule's null pattern, names none.
    """
    if not isinstance(pattern, str) or not pattern:
        return []
    try:
        document = json.loads(pattern)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    values = document.get("source", [])
    found: list[PatternSource] = []
    for value in values if isinstance(values, list) else [values]:
        if isinstance(value, str):
            found.append(PatternSource(value))
        elif isinstance(value, dict) and isinstance(value.get("prefix"), str):
            found.append(PatternSource(value["prefix"], prefix=True))
    return found


def pattern_sources(pattern: object) -> list[str]:
    """:func:`source_matchers` as text: names, and prefixes as the bare prefix ('x.')."""
    return [source.value for source in source_matchers(pattern)]
