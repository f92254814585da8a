"""JSON text cells of the datasets (tags, annotations, details) read back safely."""

from __future__ import annotations

import json
from typing import Any


def parsed_object(text: Any) -> dict[str, Any] | None:
    """A cell holding JSON object text as a dict; None for a missing cell (None, NaN, NA) or
    text that is not a JSON object (so a caller can tell "no object" from an empty one)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def json_object(text: Any) -> dict[str, Any]:
    """A cell holding JSON object text as a dict; ``{}`` for a missing cell (None, NaN, NA)
    or text that is not a JSON object."""
    return parsed_object(text) or {}
