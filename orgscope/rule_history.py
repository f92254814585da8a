"""The rule inventory as auto-heal and the alerts read it: the latest rules, and when each
DISABLED rule was last seen enabled.

Two queries over ``rules`` and ``rules_history`` (docs/datasets.md), shared by the heal step
(which rules it may re-enable) and the alerts step (``rule_disabled`` says since when).
"""

from __future__ import annotations

#: The latest inventory's rules: key, state, tags (JSON) and ManagedBy.
LATEST_SQL = ("SELECT account_id, region, bus, rule, state, tags, managed_by, collected_at "
              "FROM rules "
              "ORDER BY account_id, region, bus, rule")

#: Per rule DISABLED now: first seen, last seen in an enabled state, first seen DISABLED after
#: that (the start of the current disabled spell).
HISTORY_SQL = """
WITH disabled AS (SELECT account_id, region, bus, rule FROM rules WHERE state = 'DISABLED'),
h AS (
    SELECT h.account_id, h.region, h.bus, h.rule, h.state, h.collected_at
    FROM rules_history h JOIN disabled USING (account_id, region, bus, rule)),
spans AS (
    SELECT account_id, region, bus, rule, min(collected_at) AS first_seen_at,
           max(collected_at) FILTER (WHERE state <> 'DISABLED') AS last_enabled_at
    FROM h GROUP BY ALL)
SELECT s.account_id, s.region, s.bus, s.rule, s.first_seen_at, s.last_enabled_at,
       min(h.collected_at) FILTER (
           WHERE h.state = 'DISABLED'
           AND (s.last_enabled_at IS NULL OR h.collected_at > s.last_enabled_at)
       ) AS disabled_since
FROM spans s JOIN h USING (account_id, region, bus, rule)
GROUP BY ALL
"""
