"""JSON text cells of the datasets (tags, annotations, details) read back safely."""

from __future__ import annotations

import json
from typing import Any


def json_object(text: Any) -> dict[str, Any]:
    """A cell holding JSON object text as a dict; ``{}`` for a missing cell (None, NaN, NA)
    or text that is not a JSON object."""
    if not isinstance(text, str) or not text:
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
