"""The Alerts page's data layer: alerts, their history and Slack messages, silences, heal log.

Reads the datasets the alerting step writes (``alerts``, ``alert_events``, ``notifications``,
``silences``; orgscope/datasets/alerts.py) and the auto-heal audit log (``heal_actions``;
orgscope/datasets/heal.py). Like :mod:`dashboard.data`: plain functions ``(store, ...) ->
DataFrame`` hold the query logic and are unit-tested on a tmp store; ``load_*`` wrappers cache
them for 30 s by hashable arguments. User-chosen values reach DuckDB only as ``?`` parameters.

Filters: accounts, teams and regions narrow alerts and heal actions by their own labels (an
alert without that label, such as an organization-wide cost alert, is left out when the filter
is set); the time range applies to resolved alerts and to the heal log. Firing and pending
alerts are always shown, whatever their age.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from alerts.silences import matches
from dashboard.data import CACHE_TTL_S, open_store
from dashboard.filters import Filters
from dashboard.sql import in_list, list_params, scope_params
from orgscope.datasets import SEVERITIES
from orgscope.store import Store
from orgscope.untrusted import csv_bytes, markdown

log = logging.getLogger(__name__)

#: Severities (:data:`orgscope.datasets.SEVERITIES`) most urgent first, with their Streamlit
#: colour name.
SEVERITIES_URGENT_FIRST: tuple[str, ...] = tuple(reversed(SEVERITIES))
SEVERITY_MARKDOWN: dict[str, str] = {"critical": "red", "warning": "orange", "info": "blue"}
#: The labels an alert shows (and a silence can match on), in display order.
LABEL_COLUMNS: tuple[str, ...] = ("account_name", "account_id", "region", "team", "bus", "rule",
                                  "service")

_ALERT_COLUMNS = ("key, alert_name, severity, state, account_id, account_name, region, team, "
                  "bus, rule, service, summary, details, started_at, fired_at, resolved_at, "
                  "last_notified_at, updated_at, silenced_by")


def _scope(filters: Filters) -> tuple[str, list[Any]]:
    """WHERE fragment (and its parameters) for the account, team and region filters."""
    sql = f"{in_list('account_id')} AND {in_list('team')} AND {in_list('region')}"
    return sql, [*scope_params(filters), *list_params(filters.regions)]


def _severity_rank() -> str:
    ranks = " ".join(f"WHEN '{name}' THEN {rank}"
                     for rank, name in enumerate(SEVERITIES_URGENT_FIRST))
    return f"CASE severity {ranks} ELSE 9 END"


def silence_ids(value: Any) -> list[str]:
    """``alerts.silenced_by`` -> the silence ids (a JSON list or comma-separated text)."""
    if not isinstance(value, str) or not value.strip():
        return []
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            log.warning("alerts.silenced_by is not JSON: %.80s", text)
            return []
        return [str(item) for item in parsed] if isinstance(parsed, list) else []
    return [part.strip() for part in text.split(",") if part.strip()]


def _finish(frame: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Add silenced (bool), silences (list of ids) and for_s (seconds in the current state)."""
    frame["silences"] = frame["silenced_by"].map(silence_ids)
    frame["silenced"] = frame["silences"].map(bool)
    since = frame["fired_at"].where(frame["state"] == "firing", frame["started_at"])
    since = since.where(frame["state"] != "resolved", frame["resolved_at"])
    frame["for_s"] = [
        (now - pd.Timestamp(at).to_pydatetime()).total_seconds() if pd.notna(at) else None
        for at in since
    ]
    return frame


def alerts_recorded(store: Store) -> bool:
    """True when the alerting step has ever stored anything (an alert, a message, a silence)
    or auto-heal has written its log: "no alerts evaluated yet" otherwise."""
    frame = store.query(
        "SELECT (SELECT count(*) FROM alerts_history) + (SELECT count(*) FROM notifications) "
        "+ (SELECT count(*) FROM silences) + (SELECT count(*) FROM heal_actions) AS n")
    return bool(int(frame["n"].iloc[0]))


def active_alerts(store: Store, filters: Filters, now: datetime) -> pd.DataFrame:
    """Firing, then pending alerts in scope: most severe, then longest-standing first.

    Columns: the ``alerts`` columns (key, alert_name, severity, state, account_id, account_name,
    region, team, bus, rule, service, summary, details, started_at, fired_at, resolved_at,
    last_notified_at, updated_at, silenced_by) plus silences (list of silence ids), silenced
    (bool) and for_s (seconds since it fired, or since it went pending).
    """
    where, params = _scope(filters)
    sql = f"""
    SELECT {_ALERT_COLUMNS} FROM alerts
    WHERE state IN ('firing', 'pending') AND {where}
    ORDER BY CASE state WHEN 'firing' THEN 0 ELSE 1 END, {_severity_rank()},
             coalesce(fired_at, started_at), key
    """
    return _finish(store.query(sql, params), now)


def resolved_alerts(store: Store, filters: Filters, now: datetime) -> pd.DataFrame:
    """Alerts in scope resolved within the time range, newest first (columns as
    :func:`active_alerts`; for_s is the time since it resolved)."""
    where, params = _scope(filters)
    sql = f"""
    SELECT {_ALERT_COLUMNS} FROM alerts
    WHERE state = 'resolved' AND resolved_at >= ? AND {where}
    ORDER BY resolved_at DESC, key
    """
    return _finish(store.query(sql, [filters.since(now), *params]), now)


def alert_by_key(store: Store, key: str, now: datetime) -> pd.DataFrame:
    """The latest row of one alert (zero or one row; columns as :func:`active_alerts`),
    whatever the filters: a deep link names it on purpose."""
    frame = store.query(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE key = ?", [key])
    return _finish(frame, now)


def alert_events(store: Store, key: str) -> pd.DataFrame:
    """One alert's lifecycle, oldest first. Columns: at, state, summary."""
    return store.query('SELECT "at", state, summary FROM alert_events WHERE key = ? '
                       'ORDER BY "at", state', [key])


def alert_notifications(store: Store, key: str, account_id: str | None = None) -> pd.DataFrame:
    """One alert's Slack messages (their current status), oldest first.

    Besides the messages stored under its key, a grouped message (id ``grp-*``: several alerts
    of one account in one message, stored under its first member's key) counts as this
    alert's when it was created in the evaluation of one of this alert's transitions or
    notifications and names its ``account_id``. An evaluation's moment has no fraction of a
    second and the step stamps its messages a microsecond apart from it (their sending
    order), so created_at is compared truncated to the second.

    Columns: id, kind, channel, status, attempts, last_error, created_at, sent_at, payload,
    grouped (True for a grouped message stored under another key).
    """
    account = account_id or ""
    return store.query(
        """
        WITH moments AS (
            SELECT "at" AS t FROM alert_events WHERE key = ?
            UNION SELECT last_notified_at FROM alerts_history
            WHERE key = ? AND last_notified_at IS NOT NULL
        )
        SELECT id, kind, channel, status, attempts, last_error, created_at, sent_at, payload,
               coalesce(alert_key, '') <> ? AS grouped
        FROM notifications
        WHERE alert_key = ?
           OR (id LIKE 'grp-%' AND date_trunc('second', created_at) IN (SELECT t FROM moments)
               AND (? = '' OR contains(payload, ?)))
        ORDER BY created_at, id
        """, [key, key, key, key, account, account])


def delivery_summary(store: Store, since: datetime) -> pd.DataFrame:
    """Slack messages created since ``since`` by status. Columns: status, messages, attempts."""
    return store.query(
        "SELECT status, count(*) AS messages, sum(attempts) AS attempts FROM notifications "
        "WHERE created_at >= ? GROUP BY status ORDER BY status", [since])


def silences(store: Store, now: datetime) -> pd.DataFrame:
    """Every silence (newest row per id) with its status at ``now``.

    Columns: id, matchers (dict label -> pattern), starts_at, ends_at, created_by, comment,
    created_at, expired_at, source, status ('active', 'scheduled', 'expired' = ended early by
    someone, 'ended' = reached its end time). Active and scheduled first, by end time; then
    the rest, most recent first.
    """
    frame = store.query(
        "SELECT id, matchers, starts_at, ends_at, created_by, comment, created_at, expired_at, "
        "source FROM silences ORDER BY created_at DESC, id")
    frame["matchers"] = frame["matchers"].map(_matchers)
    frame["status"] = [
        _silence_status(row, now) for row in frame.to_dict("records")
    ]
    order = {"active": 0, "scheduled": 1, "expired": 2, "ended": 2}
    frame["_rank"] = frame["status"].map(order)
    frame["_end"] = frame["expired_at"].fillna(frame["ends_at"])
    live = frame[frame["_rank"] < 2].sort_values(["_rank", "ends_at", "id"])
    done = frame[frame["_rank"] == 2].sort_values(["_end", "id"], ascending=[False, True])
    return pd.concat([live, done]).drop(columns=["_rank", "_end"]).reset_index(drop=True)


def _matchers(text: Any) -> dict[str, str]:
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        log.warning("silence with matchers that are not JSON: %.80s", text)
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _silence_status(row: Mapping[Any, Any], now: datetime) -> str:
    expired = row["expired_at"]
    if pd.notna(expired) and pd.Timestamp(expired) <= pd.Timestamp(now):
        return "expired"
    if pd.Timestamp(row["ends_at"]) <= pd.Timestamp(now):
        return "ended"
    if pd.Timestamp(row["starts_at"]) > pd.Timestamp(now):
        return "scheduled"
    return "active"


def silence_matches(silence_matchers: Mapping[str, str], alerts: pd.DataFrame) -> list[str]:
    """Keys of the alerts (rows of :func:`active_alerts`) that ``silence_matchers`` match,
    with alerts-core's own matching (alerts.silences.matches)."""
    return [str(row["key"]) for row in alerts.to_dict("records")
            if matches(silence_matchers, {str(name): value for name, value in row.items()})]


def heal_log(store: Store, filters: Filters, now: datetime) -> pd.DataFrame:
    """Auto-heal decisions in scope within the time range, newest first.

    Columns: at, account_name, account_id, region, bus, rule, team, action, dry_run, result,
    reason, disabled_by, disabled_at, actor, id. The organization-wide maintenance skip (no
    account) is kept unless an account, team or region filter is set.
    """
    where, params = _scope(filters)
    sql = f"""
    SELECT "at", account_name, account_id, region, bus, rule, team, action, dry_run, result,
           reason, disabled_by, disabled_at, actor, id
    FROM heal_actions WHERE "at" >= ? AND {where}
    ORDER BY "at" DESC, id
    """
    return store.query(sql, [filters.since(now), *params])


def heal_csv(frame: pd.DataFrame) -> bytes:
    """The heal log as the page's CSV download (UTC timestamps in ISO 8601; a text cell that
    starts like a formula is quoted: :func:`orgscope.untrusted.csv_bytes`)."""
    out = frame.copy()
    for column in ("at", "disabled_at"):
        out[column] = pd.to_datetime(out[column], utc=True).map(
            lambda t: t.isoformat() if pd.notna(t) else "")
    return csv_bytes(out)


# --- Slack messages as sent --------------------------------------------------------------------


#: Slack mrkdwn's own syntax: a control sequence (<url|label>, <!channel>, <@U1>), *bold*,
#: ~strike~ and `code`; everything between them is text.
_MRKDWN = re.compile(r"<(?P<control>[^<>\n]*)>"
                     r"|(?<![\w*])\*(?P<bold>[^*\n]+)\*(?![\w*])"
                     r"|(?<![\w~])~(?P<strike>[^~\n]+)~(?![\w~])"
                     r"|`(?P<code>[^`\n]+)`")
#: Longest line of a message shown (Slack's own limit for a section is 3000 characters).
MAX_LINE = 3000


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _literal(text: str) -> str:
    """Slack text (entities unescaped) as literal Markdown text."""
    return markdown(_unescape(text), MAX_LINE) if text else ""


def _control(inner: str) -> str:
    """A Slack control sequence as the words it shows: a mention as @name, a link as
    'label (url)', never as a link."""
    target, _, label = inner.partition("|")
    if target.startswith("!"):
        return "@" + (label or target[1:].split("^")[0])
    if target.startswith(("@", "#")):
        return label or target
    return f"{label} ({target})" if label else target


def _mrkdwn_line(line: str) -> str:
    parts: list[str] = []
    position = 0
    for match in _MRKDWN.finditer(line):
        parts.append(_literal(line[position:match.start()]))
        if match["control"] is not None:
            parts.append(_literal(_control(match["control"])))
        elif match["bold"] is not None:
            parts.append(f"**{_literal(match['bold'])}**")
        elif match["strike"] is not None:
            parts.append(f"~~{_literal(match['strike'])}~~")
        else:
            parts.append(f"`{_unescape(match['code']).replace('`', chr(0x2cb))}`")
        position = match.end()
    parts.append(_literal(line[position:]))
    return "".join(parts)


def mrkdwn_to_markdown(text: str) -> str:
    """Slack mrkdwn -> Markdown that shows what Slack showed and can do nothing else: *bold*,
    ~strike~ and `code` kept, line breaks kept; every other character literal (escaped with
    :func:`orgscope.untrusted.markdown`), so a stored message (whose text comes from monitored
    accounts) never becomes a link, an image or HTML. A Slack link shows as 'label (url)' and
    a mention as @name, as plain text."""
    lines = [_mrkdwn_line(line) for line in text.split("\n")]
    return "  \n".join(lines)  # a line break in Slack is a hard break in Markdown


def _plain(text: str) -> str:
    return markdown(text, MAX_LINE)


def _text_of(obj: Any) -> str:
    if isinstance(obj, dict):
        value = obj.get("text")
        if isinstance(value, dict):
            return _text_of(value)
        if isinstance(value, str):
            return mrkdwn_to_markdown(value) if obj.get("type") != "plain_text" \
                else _plain(value)
    return ""


def _section_lines(block: Mapping[str, Any], base_url: str | None) -> list[str]:
    lines = [_text_of(block)] if _text_of(block) else []
    fields = [_text_of(f) for f in block.get("fields", []) or []]
    return lines + [f"- {f}" for f in fields if f]


def _context_lines(block: Mapping[str, Any], base_url: str | None) -> list[str]:
    parts = [_text_of(e) for e in block.get("elements", []) or []]
    return [" · ".join(p for p in parts if p)] if any(parts) else []


def ours(url: object, base_url: str | None) -> bool:
    """True when ``url`` points into the dashboard at ``base_url`` (the only links a message
    shown on the page may make clickable)."""
    if not isinstance(url, str) or not base_url:
        return False
    base = base_url.rstrip("/")
    return (url == base or url.startswith((base + "/", base + "?"))) and \
        not any(c in url for c in "()<> \n\\")


def _actions_lines(block: Mapping[str, Any], base_url: str | None) -> list[str]:
    links = []
    for element in block.get("elements", []) or []:
        label = _text_of(element) or "link"
        url = element.get("url") if isinstance(element, dict) else None
        if ours(url, base_url):
            links.append(f"[{label}]({url})")
        else:
            links.append(label + (f" ({_plain(str(url))})" if url else ""))
    return [" · ".join(links)] if links else []


_BLOCKS: dict[str, Callable[[Mapping[str, Any], str | None], list[str]]] = {
    "header": lambda block, _: [f"#### {_text_of(block)}"],
    "divider": lambda block, _: ["---"],
    "section": _section_lines,
    "context": _context_lines,
    "actions": _actions_lines,
    "rich_text": lambda block, _: [_plain(_rich_text(block))],
}


def _block_lines(block: Mapping[str, Any], base_url: str | None) -> list[str]:
    """One Block Kit block as Markdown lines; an unknown block type is named, not dropped."""
    kind = block.get("type")
    render = _BLOCKS.get(str(kind))
    if render is not None:
        return render(block, base_url)
    return [f"({_plain(kind)} block)"] if kind else []


def _rich_text(node: Any) -> str:
    if isinstance(node, dict):
        if isinstance(node.get("text"), str):
            return str(node["text"])
        if node.get("type") == "link":
            return str(node.get("url", ""))
        return "".join(_rich_text(child) for child in node.get("elements", []) or [])
    return ""


@dataclass(frozen=True)
class SlackMessage:
    """A stored payload made readable: ``markdown`` (Block Kit as literal Markdown),
    ``fallback`` (the notification text Slack shows in pushes, as literal Markdown),
    ``colour`` (an attachment's colour bar, if any), ``problem`` (set when the payload could
    not be read)."""

    markdown: str
    fallback: str
    colour: str | None = None
    problem: str | None = None


def slack_message(payload: str, base_url: str | None = None) -> SlackMessage:
    """Render ``notifications.payload`` (the JSON posted to the webhook) for reading: every
    text literal; only buttons whose URL points into ``base_url`` (the dashboard) become
    links."""
    try:
        body = json.loads(payload)
    except (TypeError, ValueError) as error:
        return SlackMessage("", "", problem=f"the stored payload is not JSON ({error})")
    if not isinstance(body, dict):
        return SlackMessage("", "", problem="the stored payload is not a JSON object")
    lines: list[str] = []
    colour = None
    for block in body.get("blocks", []) or []:
        if isinstance(block, dict):
            lines += _block_lines(block, base_url)
    for attachment in body.get("attachments", []) or []:
        if not isinstance(attachment, dict):
            continue
        colour = colour or attachment.get("color")
        for block in attachment.get("blocks", []) or []:
            if isinstance(block, dict):
                lines += _block_lines(block, base_url)
        if isinstance(attachment.get("text"), str):
            lines.append(mrkdwn_to_markdown(attachment["text"]))
    fallback = mrkdwn_to_markdown(str(body.get("text") or ""))
    if not lines and fallback:
        lines = [fallback]
    return SlackMessage("\n\n".join(line for line in lines if line), fallback,
                        colour if isinstance(colour, str) else None)


def pretty_json(payload: str) -> str:
    """The payload indented for the raw view (as stored when it is not JSON)."""
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return payload


# --- silence form helpers -----------------------------------------------------------------------


def matchers_from_alert(alert: Mapping[Any, Any], labels: Sequence[str]) -> dict[str, str]:
    """Matchers that pin the chosen ``labels`` of ``alert`` to its values (null labels are
    left out: a silence on "no team" is not what anyone means)."""
    found = {}
    for label in labels:
        value = alert.get(label)
        if value is not None and not (isinstance(value, float) and pd.isna(value)) \
                and str(value):
            found[label] = str(value)
    return found


def silence_end(now: datetime, duration: timedelta, until: datetime | None) -> datetime:
    """When a new silence ends: ``until`` when given (a naive value is UTC, as the form says),
    else ``now + duration``. create_silence refuses an end that is not in the future."""
    if until is None:
        return now + duration
    return until.replace(tzinfo=UTC) if until.tzinfo is None else until.astimezone(UTC)


def parse_matchers(text: str) -> dict[str, str]:
    """``label=pattern`` lines (or comma-separated) -> a dict; raises ValueError naming the
    first line that is not ``label=pattern``. The labels and patterns are checked by
    alerts.silences.create_silence."""
    found: dict[str, str] = {}
    for raw in re.split(r"[\n,]", text):
        item = raw.strip()
        if not item:
            continue
        label, sep, pattern = item.partition("=")
        if not sep or not label.strip():
            raise ValueError(f"{item!r} is not label=pattern (e.g. account_id=111111111111)")
        found[label.strip()] = pattern.strip()
    return found


# --- cached wrappers ------------------------------------------------------------------------------


def _filters(time_range: str, account_ids: tuple[str, ...], teams: tuple[str, ...],
             regions: tuple[str, ...]) -> Filters:
    return Filters(time_range=time_range, account_ids=account_ids, teams=teams, regions=regions)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_alerts_recorded(store_base: str) -> bool:
    return alerts_recorded(open_store(store_base))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_active_alerts(store_base: str, account_ids: tuple[str, ...], teams: tuple[str, ...],
                       regions: tuple[str, ...]) -> pd.DataFrame:
    return active_alerts(open_store(store_base), _filters("24h", account_ids, teams, regions),
                         datetime.now(UTC))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_resolved_alerts(store_base: str, time_range: str, account_ids: tuple[str, ...],
                         teams: tuple[str, ...], regions: tuple[str, ...]) -> pd.DataFrame:
    return resolved_alerts(open_store(store_base),
                           _filters(time_range, account_ids, teams, regions), datetime.now(UTC))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_alert(store_base: str, key: str) -> pd.DataFrame:
    return alert_by_key(open_store(store_base), key, datetime.now(UTC))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_alert_events(store_base: str, key: str) -> pd.DataFrame:
    return alert_events(open_store(store_base), key)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_alert_notifications(store_base: str, key: str, account_id: str | None) -> pd.DataFrame:
    return alert_notifications(open_store(store_base), key, account_id)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_delivery_summary(store_base: str, time_range: str) -> pd.DataFrame:
    filters = Filters(time_range=time_range)
    return delivery_summary(open_store(store_base), filters.since(datetime.now(UTC)))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_silences(store_base: str) -> pd.DataFrame:
    return silences(open_store(store_base), datetime.now(UTC))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_heal_log(store_base: str, time_range: str, account_ids: tuple[str, ...],
                  teams: tuple[str, ...], regions: tuple[str, ...]) -> pd.DataFrame:
    return heal_log(open_store(store_base), _filters(time_range, account_ids, teams, regions),
                    datetime.now(UTC))
