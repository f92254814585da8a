"""Alerts: what is firing now, what Slack was told, silences, and what auto-heal did.

Top to bottom: the headline (firing, pending, silenced, resolved in the range, Slack messages
that failed); the firing and pending alerts, most urgent first, each with its severity, labels,
for how long and whether it is silenced; the alerts resolved in the time range; one alert in
detail (picked, or named by the deep link ``?alert=<key>``): its history and every Slack
message exactly as sent, with delivery status and attempts; silences (create from an alert's
labels, list, expire: through alerts.silences, which owns them); the auto-heal audit log with a
CSV download.

Changing anything (silences) follows dashboard/access.py: the local user on loopback, the
signed-in, allowed user when the dashboard is exposed (who otherwise never reaches this page:
the entrypoint shows the sign-in page instead).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from alerts.silences import (
    MATCHER_LABELS,
    SilenceError,
    create_silence,
    expire_silence,
    matches,
)
from dashboard import alerts_data as ad
from dashboard.access import Access
from dashboard.context import AppContext, run_page
from dashboard.data import open_store
from orgscope.durations import duration_text
from orgscope.store import StoreError
from orgscope.untrusted import markdown as md

log = logging.getLogger(__name__)

REFRESH_EVERY = timedelta(seconds=60)
ALERT_KEY = "alerts.alert"
MATCHERS_KEY = "alerts.silence_matchers"
DURATION_KEY = "alerts.silence_duration"
UNTIL_KEY = "alerts.silence_until"
COMMENT_KEY = "alerts.silence_comment"
CREATE_KEY = "alerts.silence_create"
FORM_KEY = "alerts.silence_form"
FLASH_KEY = "alerts.flash"
CLEAR_KEY = "alerts.silence_clear"
HEAL_CSV_KEY = "alerts.heal_csv"
QUERY_PARAM = "alert"
#: Matched labels a new silence starts from (those of the selected alert).
DEFAULT_SILENCE_LABELS: tuple[str, ...] = ("alert_name", "account_id", "region", "bus", "rule",
                                           "service")
DURATIONS: dict[str, timedelta] = {
    "1 hour": timedelta(hours=1), "2 hours": timedelta(hours=2),
    "4 hours": timedelta(hours=4), "8 hours": timedelta(hours=8),
    "24 hours": timedelta(hours=24), "3 days": timedelta(days=3), "7 days": timedelta(days=7),
}
MAX_CARDS = 25
#: The heal log's columns in display order: what happened first, the evidence after.
HEAL_COLUMNS: tuple[str, ...] = ("at", "result", "account_name", "region", "bus", "rule",
                                 "reason", "action", "dry_run", "disabled_by", "disabled_at",
                                 "actor", "team", "account_id")


def _severity(severity: str) -> str:
    colour = ad.SEVERITY_MARKDOWN.get(severity, "gray")
    return f":{colour}-badge[{md(severity.upper())}]"


def _state(state: str) -> str:
    colour = {"firing": "red", "pending": "orange", "resolved": "green"}.get(state, "gray")
    return f":{colour}[**{md(state.upper())}**]"


def _labels(row: Mapping[Any, Any], escape: bool = True) -> str:
    """'account **name (id)** · region **...**': the alert's labels as markdown (values
    escaped), or as plain text for a table cell (``escape=False``)."""
    quote = (lambda value: f"**{md(value)}**") if escape else str
    parts = []
    if isinstance(row.get("account_id"), str):
        name = row.get("account_name")
        shown = f"{name} ({row['account_id']})" if isinstance(name, str) else row["account_id"]
        parts.append(f"account {quote(shown)}")
    for label in ("region", "team", "bus", "rule", "service"):
        value = row.get(label)
        if isinstance(value, str) and value:
            parts.append(f"{label} {quote(value)}")
    return " · ".join(parts) or "organization-wide"


def _when(value: Any) -> str:
    if value is None or pd.isna(value):
        return ""
    return f"{pd.Timestamp(value).tz_convert(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _for(row: Mapping[Any, Any]) -> str:
    seconds = row.get("for_s")
    return duration_text(float(seconds)) if seconds is not None and pd.notna(seconds) else "?"


# --- headline and lists ---------------------------------------------------------------------------


def _headline(active: pd.DataFrame, resolved: pd.DataFrame, delivery: pd.DataFrame,
              time_range: str) -> None:
    firing = active[active["state"] == "firing"]
    by_severity = firing["severity"].value_counts()
    cols = st.columns(5)
    cols[0].metric("Firing", len(firing), border=True,
                   delta=" · ".join(f"{by_severity[s]} {s}" for s in ad.SEVERITIES_URGENT_FIRST
                                    if s in by_severity) or None,
                   delta_color="off", delta_arrow="off")
    cols[1].metric("Pending", int((active["state"] == "pending").sum()), border=True,
                   help="Condition true, not yet for its `for` duration: no message sent yet.")
    cols[2].metric("Silenced", int(active["held"].map(bool).sum()), border=True,
                   help="Firing or pending alerts whose Slack messages a silence holds back.")
    cols[3].metric(f"Resolved, last {time_range}", len(resolved), border=True)
    failed = delivery.set_index("status")["messages"].get("failed", 0) if len(delivery) else 0
    pending = delivery.set_index("status")["messages"].get("pending", 0) if len(delivery) else 0
    cols[4].metric(f"Slack failed, last {time_range}", int(failed), border=True,
                   delta=f"{int(pending)} waiting in the outbox" if pending else None,
                   delta_color="off", delta_arrow="off",
                   help="Messages the outbox gave up on (pending ones are still being retried).")


def _silences_for(row: Mapping[Any, Any], live: pd.DataFrame) -> list[str]:
    """Silences holding this alert: the step's verdict, plus live ones that match now (a
    silence made here takes effect at the next evaluation)."""
    found = list(row["silences"])
    if len(live):
        labels = {str(k): v for k, v in row.items()}
        for silence in live.to_dict("records"):
            if silence["status"] == "active" and silence["id"] not in found and \
                    matches(silence["matchers"], labels):
                found.append(str(silence["id"]))
    return found


def _card(row: Mapping[Any, Any]) -> None:
    with st.container(border=True):
        since = "fired" if row["state"] == "firing" else "pending"
        silenced = row["held"]
        badge = (f" · :gray-badge[silenced by {', '.join(md(s) for s in silenced)}]"
                 if silenced else "")
        st.markdown(f"{_severity(str(row['severity']))} {_state(str(row['state']))} "
                    f"**{md(row['alert_name'])}** — {md(row['summary'], 2000)}  \n"
                    f"{_labels(row)}  \n"
                    f":gray[{since} {_for(row)} ago · key {md(row['key'])}]{badge}")


def _active(active: pd.DataFrame) -> None:
    st.subheader("Firing and pending")
    if active.empty:
        st.success("**No alerts firing or pending.** Every condition orgscope evaluates is "
                   "within its threshold.", icon=":material/check_circle:")
        return
    for row in active.head(MAX_CARDS).to_dict("records"):
        _card(row)
    if len(active) > MAX_CARDS:
        st.caption(f"{len(active) - MAX_CARDS} more below in the table.")
        _alert_table(active)


def _alert_table(frame: pd.DataFrame, resolved: bool = False) -> None:
    shown = frame.assign(
        labels=[_labels(r, escape=False) for r in frame.to_dict("records")],
        silenced=frame["silenced"],
        **({"lasted": [duration_text((r - f).total_seconds()) if pd.notna(r) and pd.notna(f)
                       else "" for r, f in zip(frame["resolved_at"], frame["fired_at"],
                                               strict=True)]} if resolved else {}),
    )
    columns = (["resolved_at", "severity", "alert_name", "summary", "labels", "lasted",
                "silenced", "key"] if resolved else
               ["severity", "state", "alert_name", "summary", "labels", "started_at",
                "fired_at", "silenced", "key"])
    st.dataframe(shown[columns], hide_index=True, width="stretch",
                 column_config={"alert_name": "alert",
                                "resolved_at": st.column_config.DatetimeColumn("resolved")})


def _resolved(resolved: pd.DataFrame, time_range: str) -> None:
    st.subheader(f"Resolved in the last {time_range}")
    if resolved.empty:
        st.caption(f"No alert resolved in the last {time_range}.")
        return
    _alert_table(resolved, resolved=True)


@st.fragment(run_every=REFRESH_EVERY)
def _now_section(ctx: AppContext) -> None:
    filters = ctx.filters
    scope = (ctx.store_base, filters.account_ids, filters.teams, filters.regions)
    active = ad.load_active_alerts(*scope)
    resolved = ad.load_resolved_alerts(ctx.store_base, filters.time_range, *scope[1:])
    delivery = ad.load_delivery_summary(ctx.store_base, filters.time_range)
    live = ad.load_silences(ctx.store_base)
    held: list[Any] = [_silences_for(row, live) for row in active.to_dict("records")]
    active = active.assign(held=pd.Series(held, index=active.index, dtype=object))
    _headline(active, resolved, delivery, filters.time_range)
    if filters.narrowed:
        st.caption(f"Narrowed to {filters.describe()} by the alerts' own labels "
                   "(organization-wide alerts are left out while a filter is set).")
    _active(active)
    _resolved(resolved, filters.time_range)


# --- one alert ---------------------------------------------------------------------------------


def _choices(ctx: AppContext) -> dict[str, str]:
    filters = ctx.filters
    active = ad.load_active_alerts(ctx.store_base, filters.account_ids, filters.teams,
                                   filters.regions)
    resolved = ad.load_resolved_alerts(ctx.store_base, filters.time_range, filters.account_ids,
                                       filters.teams, filters.regions)
    labels = {}
    for row in pd.concat([active, resolved]).to_dict("records"):
        where = " ".join(str(row[c]) for c in ("account_name", "region")
                         if isinstance(row[c], str))
        labels[str(row["key"])] = (f"{str(row['state']).upper()} · {row['severity']} · "
                                   f"{row['alert_name']} — {where} · {row['summary']}")
    return labels


def _pick(ctx: AppContext) -> str | None:
    labels = _choices(ctx)
    linked = st.query_params.get(QUERY_PARAM)
    if linked and linked not in labels:
        alert = ad.load_alert(ctx.store_base, linked)
        if alert.empty:
            st.warning(f"The link names alert {md(linked)}, which the store does not hold.")
        else:
            row = alert.iloc[0]
            labels = {linked: f"{str(row['state']).upper()} · {row['severity']} · "
                              f"{row['alert_name']} · {row['summary']}", **labels}
    if not labels:
        st.caption("No alert to show in this scope and time range.")
        return None
    options = list(labels)
    if linked in labels and st.session_state.get("alerts.linked") != linked:
        st.session_state[ALERT_KEY] = linked  # a new deep link selects its alert once
        st.session_state["alerts.linked"] = linked
    if st.session_state.get(ALERT_KEY) not in labels:
        st.session_state[ALERT_KEY] = options[0]
    key = str(st.selectbox("Alert", options=options, key=ALERT_KEY,
                           format_func=lambda k: labels.get(k, k),
                           help="Firing first. The page's link `?alert=<key>` selects one."))
    if st.query_params.get(QUERY_PARAM) != key:
        st.query_params[QUERY_PARAM] = key
        st.session_state["alerts.linked"] = key
    return key


def _message(note: Mapping[Any, Any], base_url: str | None) -> None:
    status = str(note["status"])
    colour = {"sent": "green", "failed": "red", "pending": "orange"}.get(status, "gray")
    attempts = int(note["attempts"])
    timing = f"created {_when(note['created_at'])}"
    if pd.notna(note["sent_at"]):
        timing += f", sent {_when(note['sent_at'])}"
    grouped = " (grouped with other alerts of the account)" if note["grouped"] else ""
    st.markdown(f"**{md(note['kind'])}** message{grouped} to {md(note['channel'])} · "
                f":{colour}[**{status}**] after {attempts} attempt{'s' if attempts != 1 else ''}"
                f" · {timing}")
    if isinstance(note["last_error"], str) and note["last_error"]:
        st.caption(f"Last error: {md(note['last_error'], 2000)}")
    message = ad.slack_message(str(note["payload"]), base_url)
    if message.problem:
        st.warning(f"Cannot render this message: {md(message.problem)}.")
    else:
        with st.container(border=True):
            st.markdown(message.markdown or "*(empty message)*")
        if message.fallback:
            st.caption(f"Notification text: {message.fallback}")
    with st.expander("Raw JSON as sent"):
        st.code(ad.pretty_json(str(note["payload"])), language="json")


def _detail(ctx: AppContext) -> str | None:
    st.subheader("One alert")
    key = _pick(ctx)
    if key is None:
        return None
    alert = ad.load_alert(ctx.store_base, key)
    if alert.empty:
        return None
    row = alert.iloc[0].to_dict()
    st.markdown(f"{_severity(str(row['severity']))} {_state(str(row['state']))} "
                f"**{md(row['alert_name'])}** — {md(row['summary'], 2000)}  \n"
                f"{_labels(row)}  \n"
                f":gray[started {_when(row['started_at'])}"
                + (f" · fired {_when(row['fired_at'])}" if pd.notna(row["fired_at"]) else "")
                + (f" · resolved {_when(row['resolved_at'])}" if pd.notna(row["resolved_at"])
                   else "") + "]")
    history, messages = st.columns([2, 3], gap="large")
    with history:
        st.markdown("**History**")
        events = ad.load_alert_events(ctx.store_base, key)
        if events.empty:
            st.caption("No transitions recorded.")
        else:
            st.dataframe(events, hide_index=True, width="stretch",
                         column_config={"at": st.column_config.DatetimeColumn("at (UTC)")})
        if isinstance(row.get("details"), str) and row["details"]:
            with st.expander("Details (the numbers behind it)"):
                st.code(ad.pretty_json(row["details"]), language="json")
    with messages:
        st.markdown("**Slack messages, as sent**")
        account = row["account_id"] if isinstance(row["account_id"], str) else None
        notes = ad.load_alert_notifications(ctx.store_base, key, account)
        if notes.empty:
            st.caption("No message for this alert (pending alerts, silenced alerts and alerts "
                       "without a route send none).")
        for note in notes.to_dict("records"):
            _message(note, ctx.base_url)
    return key


# --- silences -------------------------------------------------------------------------------------


def _who(access: Access) -> None:
    """Who changes made here are recorded against (signing in and out is the sidebar's)."""
    if access.can_change:
        st.caption(access.message)
    else:
        st.warning(access.message, icon=":material/lock:")


def _flash() -> None:
    flash = st.session_state.pop(FLASH_KEY, None)
    if isinstance(flash, tuple):
        kind, text = flash
        (st.success if kind == "ok" else st.error)(text)


def _changed(text: str) -> None:
    for loader in (ad.load_silences, ad.load_active_alerts, ad.load_alerts_recorded):
        loader.clear()
    st.session_state[FLASH_KEY] = ("ok", text)
    st.rerun()


def _create_form(ctx: AppContext, access: Access, key: str | None) -> None:
    alert = ad.load_alert(ctx.store_base, key) if key else pd.DataFrame()
    default = ""
    if len(alert):
        matchers = ad.matchers_from_alert(alert.iloc[0].to_dict(), DEFAULT_SILENCE_LABELS)
        default = "\n".join(f"{label}={value}" for label, value in matchers.items())
    if st.session_state.pop(CLEAR_KEY, False):
        st.session_state[COMMENT_KEY] = ""  # the silence was made: start the next one afresh
    if st.session_state.get("alerts.silence_for") != key:
        st.session_state[MATCHERS_KEY] = default  # follow the selected alert
        st.session_state["alerts.silence_for"] = key
    with st.form(FORM_KEY, border=True):
        st.markdown("**New silence**" + (" (from the selected alert's labels)" if key else ""))
        text = st.text_area(
            "Matchers, one `label=pattern` a line", key=MATCHERS_KEY, height=130,
            help="Every line must match. A pattern is the exact value or a glob (`payments-*`)."
                 f" Labels: {', '.join(MATCHER_LABELS)}.")
        left, middle, right = st.columns([1, 1, 2])
        duration = left.selectbox("For", options=list(DURATIONS), index=2, key=DURATION_KEY)
        until = middle.datetime_input("Or until (UTC)", value=None, key=UNTIL_KEY,
                                      help="An end time instead of the duration.")
        comment = right.text_input("Why", key=COMMENT_KEY,
                                   placeholder="e.g. planned replay of the DLQ")
        submitted = st.form_submit_button("Create silence", key=CREATE_KEY,
                                          disabled=not access.can_change, type="primary")
    if not submitted:
        return
    if not access.can_change or access.actor is None:
        st.error(access.message)
        return
    try:
        matchers = ad.parse_matchers(text)
        ends_at = ad.silence_end(datetime.now(UTC), DURATIONS[str(duration)],
                                 until if isinstance(until, datetime) else None)
        silence_id = create_silence(open_store(ctx.store_base), matchers, ends_at,
                                    access.actor, comment)
    except (ValueError, StoreError) as error:  # SilenceError is a ValueError
        st.error(f"Silence not created: {md(error, 2000)}")
        return
    log.info("silence %s created from the dashboard by %s", silence_id, access.actor)
    st.session_state[CLEAR_KEY] = True
    _changed(f"Silence {md(silence_id)} created by {md(access.actor)}, until "
             f"{ends_at:%Y-%m-%d %H:%M} UTC. Matching alerts send no Slack message from the "
             "next evaluation on.")


def _expire(ctx: AppContext, access: Access, silence_id: str) -> None:
    if not access.can_change or access.actor is None:
        st.error(access.message)
        return
    try:
        expire_silence(open_store(ctx.store_base), silence_id, access.actor)
    except (SilenceError, StoreError) as error:
        st.error(f"Silence not expired: {md(error, 2000)}")
        return
    log.info("silence %s expired from the dashboard by %s", silence_id, access.actor)
    _changed(f"Silence {md(silence_id)} expired by {md(access.actor)}.")


def _silence_row(ctx: AppContext, access: Access, row: Mapping[Any, Any],
                 active: pd.DataFrame) -> None:
    matchers = " ".join(md(f"{k}={v}") for k, v in row["matchers"].items())
    hits = ad.silence_matches(row["matchers"], active) if row["status"] == "active" else []
    with st.container(border=True):
        left, right = st.columns([6, 1], vertical_alignment="center")
        left.markdown(
            f":{'green' if row['status'] == 'active' else 'orange'}-badge"
            f"[{str(row['status']).upper()}] {matchers}  \n"
            f"{md(row['comment'], 2000)}  \n"
            f":gray[{md(row['id'])} · by {md(row['created_by'])} ({md(row['source'])}) · "
            f"{_when(row['starts_at'])} → {_when(row['ends_at'])} · "
            f"matches {len(hits)} active alert{'s' if len(hits) != 1 else ''} now]")
        from_config = row["source"] == "config"
        if right.button("Expire", key=f"alerts.expire.{row['id']}",
                        disabled=not access.can_change or from_config,
                        help="Remove it from config.toml instead." if from_config
                        else access.message):
            _expire(ctx, access, str(row["id"]))


def _silences(ctx: AppContext, key: str | None) -> None:
    st.subheader("Silences")
    access = ctx.access
    _who(access)
    _flash()
    _create_form(ctx, access, key)
    frame = ad.load_silences(ctx.store_base)
    filters = ctx.filters
    active = ad.load_active_alerts(ctx.store_base, filters.account_ids, filters.teams,
                                   filters.regions)
    live = frame[frame["status"].isin(["active", "scheduled"])]
    done = frame[~frame["status"].isin(["active", "scheduled"])]
    if live.empty:
        st.caption("No silence in force.")
    for row in live.to_dict("records"):
        _silence_row(ctx, access, row, active)
    with st.expander(f"Expired and ended silences ({len(done)})"):
        if done.empty:
            st.caption("None.")
        else:
            st.dataframe(done.assign(matchers=done["matchers"].map(
                lambda m: ", ".join(f"{k}={v}" for k, v in m.items()))),
                hide_index=True, width="stretch")


# --- auto-heal ---------------------------------------------------------------------------------


def _heal(ctx: AppContext) -> None:
    filters = ctx.filters
    st.subheader("Auto-heal audit log")
    log_frame = ad.load_heal_log(ctx.store_base, filters.time_range, filters.account_ids,
                                 filters.teams, filters.regions)
    if log_frame.empty:
        st.caption(f"No auto-heal decision in the last {filters.time_range} in this scope "
                   "(auto-heal writes one row per rule it re-enables, would re-enable in "
                   "dry-run, or leaves alone, with the reason).")
        return
    counts = log_frame["result"].value_counts()
    st.caption(" · ".join(f"{counts[r]} {r}" for r in counts.index)
               + f" in the last {filters.time_range}; newest first.")
    shown = log_frame.assign(
        account_name=log_frame["account_name"].where(log_frame["account_id"].notna(),
                                                     "organization-wide"),
    )[list(HEAL_COLUMNS)]
    text_columns = ["region", "bus", "rule", "disabled_by", "team", "account_id"]
    shown[text_columns] = shown[text_columns].fillna("")
    st.dataframe(
        shown, hide_index=True, width="stretch",
        column_config={
            "at": st.column_config.DatetimeColumn("when (UTC)"),
            "account_name": "account", "dry_run": st.column_config.CheckboxColumn("dry-run"),
            "disabled_by": "disabled by",
            "disabled_at": st.column_config.DatetimeColumn("disabled at (UTC)"),
        })
    st.download_button("Download the audit log (CSV)", data=ad.heal_csv(log_frame),
                       file_name=f"orgscope-heal-actions-{filters.time_range}.csv",
                       mime="text/csv", key=HEAL_CSV_KEY, icon=":material/download:",
                       on_click="ignore")


# --- page ---------------------------------------------------------------------------------------


def render(ctx: AppContext) -> None:
    st.title("Alerts")
    try:
        recorded = ad.load_alerts_recorded(ctx.store_base)
    except StoreError as error:
        st.error(f"**Could not read the alert datasets** in `{ctx.store_base}`: {error}",
                 icon=":material/error:")
        return
    try:
        if not recorded:
            st.info("**No alerts have been evaluated against this store yet.** Alerts are "
                    "evaluated by the scheduler after each collection (`orgscope serve`) or "
                    f"once with\n\n```\n{ctx.alerts_command}\n```",
                    icon=":material/hourglass_empty:")
        else:
            _now_section(ctx)
            st.divider()
        key = _detail(ctx) if recorded else None
        st.divider()
        _silences(ctx, key)
        st.divider()
        _heal(ctx)
    except StoreError as error:
        st.error(f"**Could not read the store** `{ctx.store_base}`: {error}",
                 icon=":material/error:")


run_page(render)
