"""Rule globs: the patterns config lists of rules use (``[heal] exclude_rules``,
``[collectors.metrics] full_only_rules``).

A pattern without '/' is a glob on the rule name; one with '/' a glob on
``account_id/region/bus/rule`` (a bus name may itself contain '/'). Case-sensitive, as AWS
names are.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase


def first_match(patterns: Iterable[str], account_id: str, region: str, bus: str,
                rule: str) -> str | None:
    """The first of ``patterns`` matching the rule, or None."""
    for pattern in patterns:
        target = f"{account_id}/{region}/{bus}/{rule}" if "/" in pattern else rule
        if fnmatchcase(target, pattern):
            return pattern
    return None
