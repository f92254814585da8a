"""Slack Block Kit messages: firing, repeat, resolved, grouped, heal notices and pages.

Pure functions from alert states (and heal_actions rows) to the JSON body an incoming webhook
takes: ``text`` (the notification and fallback line) plus ``blocks``. Every message names the
severity, what is wrong, why (the verdict's reasons), the numbers, the account, region and
team, and links to the dashboard page filtered to it (``[dashboard] base_url``).

Every value that comes from a monitored account (names, tags, service names, summaries and
reasons built from them) goes through :mod:`orgscope.untrusted`: ``slack_mrkdwn`` inside mrkdwn
(``& < >`` escaped, broadcast words and formatting defused), ``slack_plain`` inside plain_text
(headers, buttons); every mrkdwn text object is ``verbatim`` so Slack links nothing by itself.
The only links are the buttons' URLs, built from ``base_url`` with the values URL-encoded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from alerts.lifecycle import AlertState
from alerts.rules import RULES_BY_NAME
from orgscope.durations import duration_text
from orgscope.untrusted import slack_mrkdwn as esc
from orgscope.untrusted import slack_plain

SEVERITY_MARK: dict[str, str] = {"critical": ":red_circle:", "warning": ":large_orange_circle:",
                                 "info": ":large_blue_circle:"}
#: Dashboard pages by URL path (Streamlit derives it from the page file; Event flow is the
#: default page, at the root).
PAGES: dict[str, str] = {"event_flow": "", "traces": "traces", "cost": "cost",
                         "alerts": "alerts", "schemas": "schemas"}
MAX_TEXT = 2900  # Slack's limit for a section's text is 3000 characters
MAX_HEADER = 150
#: Numbers shown in a message's context line, by details key, in this order.
NUMBER_KEYS: tuple[str, ...] = (
    "failed", "invocations", "lost", "matched", "expected", "throttled", "count", "error_rate",
    "p50_ms", "p95_ms", "p99_ms", "amount", "baseline", "excess", "z", "forecast", "budget",
    "to_date", "failed_cycles", "last_ok", "disabled", "rules", "disabled_since",
    "last_enabled_at")


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clock(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _duration(start: datetime, end: datetime) -> str:
    return duration_text(end - start)


def page_url(base_url: str, page: str, params: Mapping[str, str | None]) -> str:
    """``base_url/<page path>?k=v...`` (parameters without a value left out)."""
    query = urlencode({k: v for k, v in params.items() if v})
    path = PAGES[page]
    url = base_url.rstrip("/") + "/" + path
    return url + (f"?{query}" if query else "")


def dashboard_link(alert: AlertState, base_url: str) -> tuple[str, str]:
    """(button label, URL) of the dashboard page that shows what ``alert`` is about."""
    rule = RULES_BY_NAME.get(alert.alert_name)
    page = rule.page if rule is not None else "alerts"
    if page == "schemas":
        return "Schemas", page_url(base_url, "schemas", {
            "account": alert.account_id, "region": alert.region, "bus": alert.bus,
            "rule": alert.rule, "detail_type": _broken_detail_type(alert)})
    if alert.rule or page == "event_flow":
        return "Event flow", page_url(base_url, "event_flow", {
            "account": alert.account_id, "region": alert.region, "bus": alert.bus,
            "rule": alert.rule})
    if page == "traces":
        return "Traces", page_url(base_url, "traces", {"service": alert.service,
                                                       "account": alert.account_id})
    if page == "cost":
        return "Cost", page_url(base_url, "cost", {"team": alert.team,
                                                   "service": alert.service})
    return "Alerts", alert_link(alert.key, base_url)


def _broken_detail_type(alert: AlertState) -> str | None:
    """The first detail-type a schema_breaking_change's details name (its summary names the
    same one first); None when the details hold none."""
    breaks = _details(alert).get("breaks")
    first = breaks[0] if isinstance(breaks, list) and breaks else None
    value = first.get("detail_type") if isinstance(first, dict) else None
    return value if isinstance(value, str) and value else None


def alert_link(key: str, base_url: str) -> str:
    return page_url(base_url, "alerts", {"alert": key})


def _details(alert: AlertState) -> dict[str, Any]:
    try:
        loaded = json.loads(alert.details) if alert.details else {}
    except json.JSONDecodeError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _number(value: Any) -> str:
    if isinstance(value, float):
        if value.is_integer():
            return f"{value:,.0f}"
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:,.1f}"
    return esc(value)


def numbers_line(details: Mapping[str, Any]) -> str:
    """'failed 12 · invocations 40 · ...' from the details' numbers."""
    parts = [f"{key.replace('_', ' ')} {_number(details[key])}" for key in NUMBER_KEYS
             if details.get(key) is not None]
    return " · ".join(parts)


def _fields(alert: AlertState) -> list[dict[str, str]]:
    account = None
    if alert.account_id:
        account = f"`{esc(alert.account_id)}`" + (f" {esc(alert.account_name)}"
                                                  if alert.account_name else "")
    values = [("Account", account), ("Region", alert.region and esc(alert.region)),
              ("Team", alert.team and esc(alert.team)), ("Bus", alert.bus and esc(alert.bus)),
              ("Rule", alert.rule and esc(alert.rule)),
              ("Service", alert.service and esc(alert.service))]
    return [_mrkdwn(f"*{name}*\n{value}") for name, value in values if value]


def _mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn text object Slack shows as written: ``verbatim`` turns off its own linking of
    URLs, channel names and mentions."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _title(alert: AlertState) -> str:
    """The alert rule's title, or the stored alert name (escaped) of a rule this version does
    not know."""
    rule = RULES_BY_NAME.get(alert.alert_name)
    return rule.title if rule is not None else esc(alert.alert_name)


def _plain_title(alert: AlertState) -> str:
    """:func:`_title` for a header (plain text, which :func:`_header` cleans)."""
    rule = RULES_BY_NAME.get(alert.alert_name)
    return rule.title if rule is not None else alert.alert_name


def _buttons(alert: AlertState, base_url: str) -> dict[str, Any]:
    label, url = dashboard_link(alert, base_url)
    elements = [{"type": "button", "text": {"type": "plain_text", "text": f"Open {label}"},
                 "url": url}]
    if label != "Alerts":
        elements.append({"type": "button", "text": {"type": "plain_text", "text": "Alert"},
                         "url": alert_link(alert.key, base_url)})
    return {"type": "actions", "elements": elements}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text",
                                       "text": _clip(slack_plain(text), MAX_HEADER),
                                       "emoji": True}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(_clip(text))}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_mrkdwn(_clip(text))]}


def subject(alert: AlertState) -> str:
    """What the alert is about, in a few words (the resolved line names it, not the fault)."""
    if alert.rule:
        return (f"rule {esc(alert.rule)} (bus {esc(alert.bus)}, {esc(alert.account_id)}/"
                f"{esc(alert.region)})")
    if alert.service:
        owner = esc(alert.account_id) if alert.account_id else f"team {esc(alert.team)}"
        return f"service {esc(alert.service)} ({owner})"
    if alert.account_id:
        return f"account {esc(alert.account_id)} ({esc(alert.account_name or 'unnamed')})"
    if alert.team:
        return f"team {esc(alert.team)}"
    return "the organization"


def alert_message(alert: AlertState, kind: str, base_url: str) -> dict[str, Any]:
    """One alert: ``kind`` 'firing', 'repeat', 'page' or 'resolved'. Headers are plain text
    (escaped by :func:`_header`); ``text`` and the sections are mrkdwn."""
    details = _details(alert)
    summary = esc(alert.summary, MAX_TEXT)
    severity = alert.severity.upper()
    if kind == "resolved":
        resolved_at = alert.resolved_at or alert.updated_at
        since = alert.fired_at or alert.started_at
        head = f":white_check_mark: RESOLVED · {_plain_title(alert)}"
        text = f"[RESOLVED] {_title(alert)}: {subject(alert)}"
        body = [_section(f"*Was:* {summary}\n*Firing for* "
                         f"{_duration(since, resolved_at)} (since {_clock(since)})")]
    else:
        mark = ":rotating_light:" if kind == "page" else SEVERITY_MARK.get(alert.severity, "")
        head = (f"{mark} {'PAGE · ' if kind == 'page' else ''}{severity} · "
                f"{_plain_title(alert)}")
        if kind == "repeat":
            head += " (still firing)"
        text = f"[{esc(severity)}] {_title(alert)}: {summary}"
        if kind == "page":
            text = "<!channel> " + text
        body = [_section(f"*What:* {summary}")]
        reasons = [esc(r) for r in details.get("reasons") or []]
        if reasons:
            body.append(_section("*Why:*\n" + "\n".join(f"• {r}" for r in reasons[:5])))
        if kind == "page":
            body.append(_section("A person must decide: auto-heal will not re-enable rules "
                                 "while this many are disabled at once."))
    fields = _fields(alert)
    if fields:
        body.append({"type": "section", "fields": fields[:10]})
    numbers = numbers_line(details)
    since = alert.fired_at or alert.started_at
    footer = f"`{esc(alert.key)}` · since {_clock(since)}"
    if numbers:
        body.append(_context(numbers))
    body.append(_context(footer))
    body.append(_buttons(alert, base_url))
    return {"text": _clip(text), "blocks": [_header(head), *body]}


def group_message(alerts: Sequence[AlertState], kind: str, base_url: str,
                  max_lines: int) -> dict[str, Any]:
    """Several alerts of one account (or of one channel) in one message."""
    first = alerts[0]
    worst = max(alerts, key=lambda a: ("info", "warning", "critical").index(a.severity)
                if a.severity in ("info", "warning", "critical") else 0)
    teams = sorted({a.team for a in alerts if a.team})
    if first.account_id and all(a.account_id == first.account_id for a in alerts):
        where = f"{first.account_name or ''} ({first.account_id})".strip()
    elif not any(a.account_id for a in alerts) and teams:
        where = "teams " + ", ".join(teams)  # organization-wide alerts (cost)
    else:
        where = "several accounts"
    if kind == "resolved":
        head = f":white_check_mark: RESOLVED · {len(alerts)} alerts · {where}"
        text = f"[RESOLVED] {len(alerts)} alerts in {esc(where)}"
    else:
        mark = SEVERITY_MARK.get(worst.severity, "")
        head = f"{mark} {worst.severity.upper()} · {len(alerts)} alerts · {where}"
        if kind == "repeat":
            head += " (still firing)"
        text = f"[{esc(worst.severity.upper())}] {len(alerts)} alerts in {esc(where)}"
    lines = [f"• *{_title(a)}* ({esc(a.severity)}): {esc(a.summary, MAX_TEXT)}"
             for a in alerts[:max_lines]]
    if len(alerts) > max_lines:
        lines.append(f"…and {len(alerts) - max_lines} more")
    blocks: list[dict[str, Any]] = [_header(head), _section("\n".join(lines))]
    regions = sorted({a.region for a in alerts if a.region})
    fields = []
    if first.account_id and where != "several accounts":
        fields.append(_mrkdwn(f"*Account*\n`{esc(first.account_id)}` "
                              f"{esc(first.account_name or '')}".rstrip()))
    if regions:
        fields.append(_mrkdwn("*Region*\n" + ", ".join(esc(r) for r in regions)))
    if teams:
        fields.append(_mrkdwn("*Team*\n" + ", ".join(esc(t) for t in teams)))
    if fields:
        blocks.append({"type": "section", "fields": fields})
    account = first.account_id if first.account_id and where != "several accounts" else None
    blocks.append({"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Open Alerts"},
         "url": page_url(base_url, "alerts", {"account": account})}]})
    return {"text": _clip(text), "blocks": blocks}


HEAL_HEADLINES: dict[str, str] = {
    "enabled": ":adhesive_bandage: Auto-heal re-enabled {rule}",
    "would-enable": ":adhesive_bandage: Auto-heal would re-enable {rule} (dry-run)",
    "failed": ":warning: Auto-heal FAILED to re-enable {rule}",
    "not-verified": ":warning: Auto-heal re-enabled {rule}, not verified",
    "skipped": ":no_entry: Auto-heal left {rule} disabled",
}


def heal_message(action: Mapping[str, Any], base_url: str, alert_key: str | None) -> dict[str, Any]:
    """A heal notice from one ``heal_actions`` row (what auto-heal did and why)."""
    rule = str(action.get("rule") or "rules")
    result = str(action.get("result"))
    headline = HEAL_HEADLINES.get(result, ":adhesive_bandage: Auto-heal: {rule} "
                                  + result.replace("{", "(").replace("}", ")"))
    head = headline.format(rule=rule)  # plain text: _header cleans it
    account_id = action.get("account_id")
    account = f"`{esc(account_id)}` {esc(action.get('account_name') or '')}".rstrip() \
        if account_id else None
    values = [("Account", account), ("Region", action.get("region")),
              ("Team", action.get("team")), ("Bus", action.get("bus")), ("Rule", rule),
              ("Result", result + (" (dry-run)" if action.get("dry_run") else ""))]
    fields = [_mrkdwn(f"*{name}*\n{value if name == 'Account' else esc(value)}")
              for name, value in values if value]
    who = action.get("disabled_by")
    when = action.get("disabled_at")
    context = [f"actor {esc(action.get('actor'))}"]
    if who:
        context.append(f"disabled by {esc(who)}")
    if isinstance(when, datetime):
        context.append(f"disabled at {_clock(when)}")
    at = action.get("at")
    if isinstance(at, datetime):
        context.append(f"at {_clock(at)}")
    buttons = [{"type": "button", "text": {"type": "plain_text", "text": "Open Event flow"},
                "url": page_url(base_url, "event_flow", {
                    "account": account_id, "region": action.get("region"),
                    "bus": action.get("bus"), "rule": action.get("rule")})}]
    if alert_key:
        buttons.append({"type": "button", "text": {"type": "plain_text", "text": "Alert"},
                        "url": alert_link(alert_key, base_url)})
    reason = esc(action.get("reason"), MAX_TEXT)
    text = f"{headline.format(rule=esc(rule))}: {reason}"
    return {"text": _clip(text), "blocks": [
        _header(head), _section(f"*Why:* {reason}"),
        {"type": "section", "fields": fields}, _context(" · ".join(context)),
        {"type": "actions", "elements": buttons}]}
