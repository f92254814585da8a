"""Untrusted text made literal for each output sink: Slack mrkdwn and plain text, Streamlit
markdown, Plotly's HTML-ish labels, CSV/XLSX cells, and log lines and terminals.

Names, descriptions, tags, X-Ray service names and span attributes come from monitored
accounts, written by people orgscope does not trust (docs/architecture.md, "Untrusted text is
made literal at the sink"). Every function here is pure, accepts any value (``None``, numbers,
invalid UTF-8 decoded with ``surrogateescape``) and never raises. All text sinks first apply
:func:`clean`: lone surrogates become U+FFFD, C0/C1 control characters (newlines and tabs
included: an untrusted value is one line) become a space, bidi overrides and direction marks
are dropped, and the result is clipped to ``limit`` characters with an ellipsis. Then each sink
escapes what its own markup reads.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

import pandas as pd

#: Longest untrusted value shown (AWS names are at most 256 characters, descriptions 512).
MAX_CHARS = 512
ELLIPSIS = "…"

#: C0 controls, DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Bidi embeddings and overrides (U+202A-202E), isolates (U+2066-2069), the LTR/RTL marks
#: (U+200E/F) and the Arabic letter mark (U+061C): they reorder what a reader sees.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
#: UTF-16 surrogates: what invalid UTF-8 decoded with surrogateescape leaves in a str.
_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate in its text (also inside lists, tuples and dicts)
    replaced by U+FFFD: such a str cannot be encoded as UTF-8, so Arrow refuses it."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list | tuple):
        return type(value)(replace_surrogates(item) for item in value)
    if isinstance(value, dict):
        return {replace_surrogates(k): replace_surrogates(v) for k, v in value.items()}
    return value


def clean(value: object, limit: int = MAX_CHARS) -> str:
    """``value`` as one line of plain text: ``str(value)`` ('' for None or NaN) with
    surrogates replaced by U+FFFD, control characters by a space, bidi controls removed,
    clipped to ``limit`` characters (the last one an ellipsis)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:
        text = f"<unprintable {type(value).__name__}>"
    text = replace_surrogates(text)
    text = _BIDI.sub("", _CONTROL.sub(" ", text))
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


# --- Slack -----------------------------------------------------------------------------------

#: Slack's broadcast words, live even without the ``<!...>`` syntax when a client parses them.
_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
WORD_JOINER = "\u2060"
#: mrkdwn's formatting characters and the look-alikes shown instead (Slack has no escape for
#: them). An underscore between two word characters (``order_placed``) cannot start or end
#: italics in Slack and is kept.
_LOOKALIKES: dict[str, str] = {"*": "\u2217", "~": "\u223c", "`": "\u02cb", "_": "\uff3f"}
_FORMATTING = re.compile(r"[*~`]|(?<!\w)_|_(?!\w)")
#: A scheme's ``://``: Slack would turn a bare URL into a link.
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*):(?=//)")


def slack_mrkdwn(value: object, limit: int = MAX_CHARS) -> str:
    """``value`` as literal text inside a Slack mrkdwn text object: ``& < >`` escaped as
    entities (which defuses ``<!channel>``, ``<@U123>`` and ``<url|label>``), ``@channel``,
    ``@here`` and ``@everyone`` broken by a word joiner, ``* ~ `` ` and word-edge ``_``
    replaced by look-alikes, and a URL's ``://`` broken so Slack does not link it."""
    text = clean(value, limit)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _BROADCAST.sub(lambda m: "@" + WORD_JOINER + m.group(1), text)
    text = _FORMATTING.sub(lambda m: _LOOKALIKES[m.group(0)], text)
    return _SCHEME.sub(lambda m: m.group(1) + ":" + WORD_JOINER, text)


def slack_plain(value: object, limit: int = MAX_CHARS) -> str:
    """``value`` for a Slack ``plain_text`` object (headers, buttons): Slack shows it as is,
    so only :func:`clean` (one line, no controls, clipped); broadcast words are still broken
    so a notification preview built from it cannot read as a mention."""
    return _BROADCAST.sub(lambda m: "@" + WORD_JOINER + m.group(1), clean(value, limit))


# --- Streamlit markdown ----------------------------------------------------------------------

#: What makes markup inside a line of Streamlit markdown, each escaped with a backslash:
#: links, images, emphasis, code, HTML, entities, math, tables, headings, strike-through; ``_``
#: only at a word's edge (CommonMark never reads ``order_placed`` as emphasis); ``:`` when it
#: could start Streamlit's ``:emoji:`` or ``:color[...]``; a leading ``-``, ``+`` or ``1.``
#: (a list).
_MARKDOWN = re.compile(r"[\\`*\[\]()!<>~$|#&@{}]|(?<![^\W_])_|_(?![^\W_])|:(?=[\w/\[-])"
                       r"|(?<=^)[-+]|(?<=^\d)\.|(?<=^\d\d)\.")
#: GFM's autolinks (``https://...``, ``www.``, ``name@host.tld``) are found in the text after
#: the escapes are resolved, so a backslash does not stop them: a word joiner inside each
#: breaks them and shows nothing.
_AUTOLINK = re.compile(r"(?i)(?<=[a-z0-9+.-]:)(?=//)|(?<=\bwww)(?=\.)|(?<=@)(?=[\w-])")


def markdown(value: object, limit: int = MAX_CHARS) -> str:
    """``value`` as literal text inside Streamlit markdown (st.markdown, st.warning, a
    metric's label, a widget's help...): one line, every character that could make markup
    backslash-escaped and autolinks broken by a word joiner, so it never becomes a link, an
    image, HTML, emphasis or a heading."""
    text = _AUTOLINK.sub(WORD_JOINER, clean(value, limit))
    return _MARKDOWN.sub(lambda m: "\\" + m.group(0), text)


# --- Plotly ----------------------------------------------------------------------------------


def plotly_text(value: object, limit: int = MAX_CHARS) -> str:
    """``value`` for a Plotly text, hovertext, name, label, tick label or title, and for
    customdata a hovertemplate shows: Plotly renders a subset of HTML there (``<a href>``,
    ``<br>``, ``<b>``...), so ``& < > " '`` become entities, which Plotly shows literally;
    ``%`` too, so a value put into a hovertemplate cannot name a ``%{variable}``."""
    return html.escape(clean(value, limit), quote=True).replace("%", "&#37;")


# --- CSV and XLSX ----------------------------------------------------------------------------

#: A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


#: What neither UTF-8 nor an XLSX cell can hold: surrogates, and the C0 controls XML 1.0
#: forbids (openpyxl refuses them).
_UNWRITABLE = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f]")


def csv_cell(value: Any) -> Any:
    """One export cell: in a text cell, what no file can hold (surrogates, C0 controls but
    tab, CR and LF) becomes U+FFFD, and a cell that then starts like a formula gets a leading
    single quote (OWASP); everything else (numbers, dates, booleans, None) is returned as it
    is."""
    if not isinstance(value, str):
        return value
    text = _UNWRITABLE.sub("\ufffd", value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` for CSV/XLSX export with :func:`csv_cell` applied to every cell of
    every text (object, string or category) column, column names included; numeric and
    datetime columns are unchanged."""
    out = frame.copy()
    for column in out.columns:
        dtype = out[column].dtype
        if isinstance(dtype, pd.CategoricalDtype):
            out[column] = out[column].astype(object)
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column].dtype):
            out[column] = pd.Series([csv_cell(value) for value in out[column]],
                                    index=out.index, dtype=object)
    out.columns = [csv_cell(name) for name in out.columns]
    return out


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as a CSV download (UTF-8, no index, RFC 4180's CRLF line ends), through
    :func:`safe_frame`. With CRLF line ends Python's writer quotes a cell holding a lone CR,
    which would otherwise end the row early for every reader."""
    text: str = safe_frame(frame).to_csv(index=False, lineterminator="\r\n")
    return text.encode("utf-8")


# --- log lines and terminals -----------------------------------------------------------------

#: What a terminal or a log reader acts on: control characters (C0, DEL, C1), the line and
#: paragraph separators, and the bidi controls.
_INVISIBLE = re.compile(f"{_CONTROL.pattern}|[\u2028\u2029]|{_BIDI.pattern}")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` for a log line or a terminal: every control character written as an escape
    (``\\n``, ``\\x1b``, ``\\u202e``), so it says what it holds, on one line, with nothing a
    terminal would act on (``orgscope.logsafety``; config errors quoting the file)."""
    return _INVISIBLE.sub(_escape, text)
