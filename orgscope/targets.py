"""An EventBridge rule's targets, read back from the ``rules`` dataset's ``targets`` column.

The inventory collector stores them as JSON text: a list of objects with ``id``, ``arn``,
``role_arn``, ``dlq_arn`` (collectors/inventory.py). This module is the one reader of that
column.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)


def rule_targets(targets_json: Any) -> list[dict[str, Any]]:
    """The targets of a ``rules`` row that have an ARN (bad or missing JSON -> [])."""
    if not isinstance(targets_json, str) or not targets_json:
        return []
    try:
        targets = json.loads(targets_json)
    except ValueError:
        log.warning("rules row with targets that are not JSON: %.80s", targets_json)
        return []
    if not isinstance(targets, list):
        return []
    return [t for t in targets if isinstance(t, dict) and t.get("arn")]


def target_arns(targets_json: Any) -> list[str]:
    """The target ARNs of a ``rules`` row, in order (bad or missing JSON -> [])."""
    return [str(target["arn"]) for target in rule_targets(targets_json)]


def arn_account(arn: str) -> str | None:
    """The account id of an ARN ('arn:aws:sqs:us-east-1:111111111111:q' -> '111...'), or None
    when the ARN names none."""
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 and parts[4].isdigit() else None
