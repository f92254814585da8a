"""Hostile text: what a monitored account's people can put in a name, a description, a tag, an
X-Ray service name or a span attribute, one string per trick, for the tests that feed it
through the collectors into every output sink (tests/test_hostile_corpus.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

#: Invalid UTF-8 (a lone continuation byte and an overlong slash) decoded the way a reader
#: that must not fail decodes it: lone surrogates in a str.
INVALID_UTF8 = b"bad-\x80-\xc0\xaf-name".decode("utf-8", "surrogateescape")

#: 10 kB of name.
HUGE = "x" * 10_000

#: One string per trick, by what it tries.
CORPUS: dict[str, str] = {
    "slack_broadcast": "<!channel> <!here> <!everyone> pay attention",
    "slack_user_mention": "ping <@U123ABC> and <#C999|ops>",
    "slack_link": "<https://evil.example/login|Open runbook>",
    "slack_bare_link": "see <https://evil.example/x>",
    "bare_words": "@channel @here @everyone wake up",
    "slack_formatting": "*bold* _italic_ ~strike~ `code` ```block```",
    "markdown_link": "[a](http://evil.example/a)",
    "markdown_image": "![i](http://evil.example/i.png)",
    "markdown_emphasis": "**b** __u__ `c`",
    "markdown_heading": "# h",
    "markdown_list": "- item",
    "streamlit_directive": ":red[alarm] :material/bolt: :skull:",
    "autolink": "https://evil.example/landing www.evil.example",
    "html_script": "<script>alert(1)</script>",
    "html_img": "<img src=x onerror=alert(1)>",
    "html_anchor": '<a href="https://evil.example">click</a>',
    "plotly_tags": "svc<br>two<b>bold</b><i>i</i><sub>s</sub>",
    "formula_hyperlink": '=HYPERLINK("http://evil.example","x")',
    "formula_plus": "+1+cmd|' /C calc'!A0",
    "formula_minus": "-1-2",
    "formula_at": "@SUM(1,1)",
    "formula_tab": "\t=1",
    "formula_cr": "\r=1",
    "control_nul": "nul\x00byte",
    "control_ansi": "\x1b[31mred\x1b[0m",
    "control_newlines": "line1\r\nline2\nline3",
    "control_c1": "c1\x85\x9bcontrol",
    "bidi_override": "invoice\u202egpj.exe",
    "bidi_isolates": "a\u2066b\u2069c\u200ed\u200fe",
    "huge": HUGE,
    "invalid_utf8": INVALID_UTF8,
    "ampersand_entity": "&lt;b&gt; &amp; &#60;script&#62;",
}

#: Substrings that must not reach any sink unescaped: live markup in at least one of them.
LIVE_MARKUP: tuple[str, ...] = ("<!", "<@", "<#", "<http", "<script", "<img", "<a ", "<br>",
                                "<b>", "](", "\x1b", "\x00", "\u202e")


def hostile(kind: str, suffix: str = "") -> str:
    """The corpus string ``kind``, with ``suffix`` appended (to keep names distinct)."""
    return CORPUS[kind] + suffix


def all_hostile() -> list[str]:
    """Every string of the corpus, in order."""
    return list(CORPUS.values())


# --- what must not come out of a sink --------------------------------------------------------

#: Control (except the newline, the sinks' own line break), bidi and surrogate characters.
_INVISIBLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f"
                        "\ud800-\udfff]")
_LIVE_BROADCAST = re.compile(r"(?<!\w)@(channel|here|everyone)\b", re.IGNORECASE)
#: mrkdwn formatting a hostile string would bring: *bold*, ~strike~, `code` around its words.
_HOSTILE_FORMATTING = ("*bold*", "~strike~", "`code`", "_italic_")


def slack_problems(payload: Any, base_url: str, page_prefix: str = "<!channel> ") -> list[str]:
    """What in a Slack webhook body (alerts/slack.py) an untrusted string could have made
    live: a '<' control sequence, a broadcast word, mrkdwn formatting, a bare URL, a control
    or bidi character, a mrkdwn object Slack would pre-process, a button to another host.
    ``page_prefix`` at the start of ``text`` is orgscope's own (a page)."""
    found: list[str] = []

    def check_mrkdwn(text: str, where: str) -> None:
        if "<" in text or ">" in text:
            found.append(f"{where}: unescaped < or > in {text[:120]!r}")
        if _LIVE_BROADCAST.search(text):
            found.append(f"{where}: live broadcast word in {text[:120]!r}")
        if "://" in text:
            found.append(f"{where}: a URL Slack would link in {text[:120]!r}")
        found.extend(f"{where}: {mark} survived" for mark in _HOSTILE_FORMATTING if mark in text)

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                check_mrkdwn(str(node.get("text", "")), where)
                if node.get("verbatim") is not True:
                    found.append(f"{where}: mrkdwn object without verbatim")
            if node.get("type") == "plain_text" and \
                    _LIVE_BROADCAST.search(str(node.get("text", ""))):
                found.append(f"{where}: live broadcast word in plain text")
            if "url" in node and not str(node["url"]).startswith(base_url.rstrip("/") + "/"):
                found.append(f"{where}: link to {node['url']!r}, not the dashboard")
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}[{index}]")
        elif isinstance(node, str) and _INVISIBLE.search(node):
            found.append(f"{where}: control, bidi or surrogate character")

    text = str(payload.get("text", ""))
    check_mrkdwn(text.removeprefix(page_prefix), "text")
    walk(payload.get("blocks", []), "blocks")
    walk(payload.get("attachments", []), "attachments")
    return found


_UNESCAPED = r"(?<!\\)(?:\\\\)*"
_MD_LINK = re.compile(_UNESCAPED + r"!?\[[^\]]*?(?<!\\)\]\(([^)\s]*)\)")


def markdown_problems(text: str, base_url: str | None = None) -> list[str]:
    """What in Streamlit markdown an untrusted string could have made live: a link or image
    (other than into ``base_url``), HTML, an autolink, a Streamlit directive, a control or
    bidi character."""
    found = []
    for match in _MD_LINK.finditer(text):
        if not base_url or not match.group(1).startswith(base_url.rstrip("/") + "/") or \
                match.group(0).startswith("!"):
            found.append(f"link or image {match.group(0)[:120]!r}")
    rest = _MD_LINK.sub("", text)
    # GFM's autolinks are found in the text after escapes are resolved: a backslash does
    # not stop them (seen in Chromium), only a character between the parts does
    for pattern, what in ((r"(?<!\\)<[A-Za-z/!]", "HTML"), (r"https?\\?:\\?/\\?/", "autolink"),
                          (r"(?i)(?<![\w])www\\?\.", "autolink"),
                          (r"[\w.+-]\\?@\\?[\w-]+\\?\.", "e-mail autolink"),
                          (r"(?<!\\):red\[alarm", "directive"),
                          (r"(?<!\\):skull:", "emoji"), (r"(?<!\\):material/bolt", "icon"),
                          (r"(?<!\\)\*\*b\*\*", "emphasis"), (r"(?<![\\`])`c`", "code")):
        if re.search(pattern, rest):
            found.append(f"{what} in {rest[:200]!r}")
    if _INVISIBLE.search(text):
        found.append("control, bidi or surrogate character")
    return found


#: Keys of a Plotly figure (as JSON) whose strings Plotly renders as its HTML subset.
PLOTLY_TEXT_KEYS = frozenset({"text", "hovertext", "name", "customdata", "ticktext", "label",
                              "labels", "title", "legendgrouptitle", "header", "cells"})
#: Pieces of the corpus that are live Plotly HTML when they arrive unescaped.
PLOTLY_LIVE = ("<script", "<img", "<a ", "<a>", "<br>two", "<b>bold", "<i>i", "<sub>")


def plotly_problems(figure: Any) -> list[str]:
    """Strings under a figure's text keys (``figure`` as the JSON dict Plotly serialises)
    that hold the corpus's HTML unescaped, or a control or bidi character."""
    found: list[str] = []

    def walk(node: Any, where: str, text: bool) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}.{key}", text or key in PLOTLY_TEXT_KEYS)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}[{index}]", text)
        elif isinstance(node, str) and text:
            found.extend(f"{where}: {live!r} in {node[:120]!r}" for live in PLOTLY_LIVE
                         if live in node)
            if _INVISIBLE.search(node):
                found.append(f"{where}: control, bidi or surrogate character")

    walk(figure, "figure", False)
    return found


def export_problems(cells: Iterable[Any]) -> list[str]:
    """Export cells (CSV read back as text, XLSX values) that a spreadsheet would run as a
    formula (a number such as -1.5 is a number, not a formula)."""
    return [f"formula cell {cell[:60]!r}" for cell in cells
            if isinstance(cell, str) and cell.startswith(("=", "+", "-", "@", "\t", "\r"))
            and not _is_number(cell)]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def shown(markdown: str) -> str:
    """The text Streamlit markdown displays for escaped characters (a backslash escape shows
    the character itself; the word joiners that break autolinks show nothing)."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")
