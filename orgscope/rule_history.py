"""The rule inventory as auto-heal and the alerts read it: the latest rules, when each
DISABLED rule was last seen enabled, and who disabled it.

Two queries over ``rules``, ``rules_history`` and ``rule_changes`` (docs/datasets.md), shared
by the heal step (which rules it may re-enable) and the alerts step (``rule_disabled`` says
since when, and by whom).
"""

from __future__ import annotations

#: The latest inventory's rules: key, state, tags (JSON) and ManagedBy.
LATEST_SQL = ("SELECT account_id, region, bus, rule, state, tags, managed_by, collected_at "
              "FROM rules "
              "ORDER BY account_id, region, bus, rule")

#: Per rule DISABLED now: first seen, last seen in an enabled state, first seen DISABLED after
#: that (the start of the current disabled spell); from ``rule_changes`` (null without change
#: events): who made the newest DisableRule or PutRule after it was last seen enabled and when
#: (disabled_by, disabled_at), and who made its newest change of any kind (last_changed_by).
HISTORY_SQL = """
WITH disabled AS (SELECT account_id, region, bus, rule FROM rules WHERE state = 'DISABLED'),
h AS (
    SELECT h.account_id, h.region, h.bus, h.rule, h.state, h.collected_at
    FROM rules_history h JOIN disabled USING (account_id, region, bus, rule)),
spans AS (
    SELECT account_id, region, bus, rule, min(collected_at) AS first_seen_at,
           max(collected_at) FILTER (WHERE state <> 'DISABLED') AS last_enabled_at
    FROM h GROUP BY ALL),
c AS (
    SELECT c.account_id, c.region, c.bus, c.rule, c.event_name, c.principal_arn, c.event_time
    FROM rule_changes c JOIN disabled USING (account_id, region, bus, rule)),
who AS (
    SELECT c.account_id, c.region, c.bus, c.rule,
           arg_max(c.principal_arn, c.event_time) FILTER (
               WHERE c.event_name IN ('DisableRule', 'PutRule')
               AND (s.last_enabled_at IS NULL OR c.event_time > s.last_enabled_at)
           ) AS disabled_by,
           max(c.event_time) FILTER (
               WHERE c.event_name IN ('DisableRule', 'PutRule')
               AND (s.last_enabled_at IS NULL OR c.event_time > s.last_enabled_at)
           ) AS disabled_at,
           arg_max(c.principal_arn, c.event_time) AS last_changed_by
    FROM c JOIN spans s USING (account_id, region, bus, rule) GROUP BY ALL)
SELECT s.account_id, s.region, s.bus, s.rule, s.first_seen_at, s.last_enabled_at,
       min(h.collected_at) FILTER (
           WHERE h.state = 'DISABLED'
           AND (s.last_enabled_at IS NULL OR h.collected_at > s.last_enabled_at)
       ) AS disabled_since,
       any_value(w.disabled_by) AS disabled_by, any_value(w.disabled_at) AS disabled_at,
       any_value(w.last_changed_by) AS last_changed_by
FROM spans s JOIN h USING (account_id, region, bus, rule)
LEFT JOIN who w USING (account_id, region, bus, rule)
GROUP BY s.account_id, s.region, s.bus, s.rule, s.first_seen_at, s.last_enabled_at
"""
