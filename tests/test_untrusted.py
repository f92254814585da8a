"""orgscope.untrusted: each sink's escaping, on every string of the hostile corpus."""

from __future__ import annotations

import io
import re

import pandas as pd
import pytest

from orgscope.untrusted import (
    ELLIPSIS,
    MAX_CHARS,
    WORD_JOINER,
    clean,
    csv_bytes,
    csv_cell,
    markdown,
    plotly_text,
    safe_frame,
    slack_mrkdwn,
    slack_plain,
)
from testkit.hostile import CORPUS, HUGE, INVALID_UTF8, all_hostile, export_problems

SINKS = (clean, slack_mrkdwn, slack_plain, markdown, plotly_text)


@pytest.mark.parametrize("sink", SINKS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("text", all_hostile(), ids=list(CORPUS))
def test_every_sink_takes_every_hostile_string(sink: object, text: str) -> None:
    out = sink(text)  # type: ignore[operator]
    assert isinstance(out, str)
    assert len(out) <= 6 * MAX_CHARS  # clipped before escaping (an entity is at most 6)
    assert not re.search("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]", out)
    assert not re.search("[\ud800-\udfff]", out)
    out.encode("utf-8")  # never a surrogate: always encodable


def test_clean_is_one_clipped_line_and_never_raises() -> None:
    assert clean(None) == "" and clean(float("nan")) == "" and clean(12) == "12"
    assert clean("a\r\nb\tc\x1b[31m") == "a  b c [31m"
    assert clean("invoice\u202egpj.exe") == "invoicegpj.exe"
    assert clean(INVALID_UTF8) == "bad-\ufffd-\ufffd\ufffd-name"
    clipped = clean(HUGE)
    assert len(clipped) == MAX_CHARS and clipped.endswith(ELLIPSIS)
    assert clean("abcdef", 4) == "abc" + ELLIPSIS

    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert clean(Hostile()) == "<unprintable Hostile>"


def test_slack_mrkdwn_defuses_mentions_links_and_formatting() -> None:
    out = slack_mrkdwn("<!channel> <https://evil.example/login|Open runbook> <@U123> & co")
    assert "<" not in out and ">" not in out
    assert out.startswith("&lt;!channel&gt; &lt;https") and out.endswith("&amp; co")
    assert slack_mrkdwn("@channel @Here @everyone @channels") == (
        f"@{WORD_JOINER}channel @{WORD_JOINER}Here @{WORD_JOINER}everyone @channels")
    assert slack_mrkdwn("*b* _i_ ~s~ `c`") == (
        "\u2217b\u2217 \uff3fi\uff3f \u223cs\u223c \u02cbc\u02cb")
    assert slack_mrkdwn("order_placed_to_billing") == "order_placed_to_billing"
    assert "://" not in slack_mrkdwn("see https://evil.example")


def test_slack_plain_only_cleans() -> None:
    assert slack_plain("<b> & *x*") == "<b> & *x*"
    assert slack_plain("@here now\n") == f"@{WORD_JOINER}here now "


@pytest.mark.parametrize(("text", "escaped"), [
    ("[a](http://x)", "\\[a\\]\\(http:\u2060//x\\)"),
    ("![i](http://x/i.png)", "\\!\\[i\\]\\(http:\u2060//x/i.png\\)"),
    ("**b** `c`", r"\*\*b\*\* \`c\`"),
    ("# h", r"\# h"),
    ("- item", r"\- item"),
    ("1. item", r"1\. item"),
    (":red[alarm] :skull:", r"\:red\[alarm\] \:skull:"),
    # GFM autolinks ignore backslashes (they match the text after escapes are resolved):
    # a word joiner breaks them
    ("https://evil.example www.evil.example a@b.example",
     "https:\u2060//evil.example www\u2060.evil.example a\\@\u2060b.example"),
    ("<script>&lt;", r"\<script\>\&lt;"),
    ("order_placed __u__", r"order_placed \_\_u\_\_"),
    ("CRITICAL: rule orders-in", "CRITICAL: rule orders-in"),
])
def test_markdown_escapes_what_makes_markup(text: str, escaped: str) -> None:
    assert markdown(text) == escaped


def test_plotly_text_escapes_its_html_subset() -> None:
    assert plotly_text("svc<br><a href='x'>&") == "svc&lt;br&gt;&lt;a href=&#x27;x&#x27;&gt;&amp;"


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\")", "+1", "-1", "@SUM(1)", "\t=1",
                                  "\r=1"])
def test_csv_cell_quotes_formulas(text: str) -> None:
    assert csv_cell(text) == "'" + text


def test_csv_cell_leaves_numbers_and_plain_text() -> None:
    assert csv_cell(-1) == -1 and csv_cell(-1.5) == -1.5 and csv_cell(None) is None
    assert csv_cell("orders") == "orders" and csv_cell("") == ""


def test_safe_frame_quotes_text_cells_only() -> None:
    frame = pd.DataFrame({"name": ["=1+1", "ok", None], "amount": [-1.0, 2.0, 3.0],
                          "team": pd.Categorical(["@x", "b", "b"]),
                          "s": pd.array(["-2", "x", None], dtype="string")})
    out = safe_frame(frame)
    assert list(out["name"][:2]) == ["'=1+1", "ok"] and pd.isna(out["name"].iloc[2])
    assert list(out["amount"]) == [-1.0, 2.0, 3.0] and out["amount"].dtype == float
    assert list(out["team"]) == ["'@x", "b", "b"] and out["s"].iloc[0] == "'-2"
    assert frame["name"].iloc[0] == "=1+1"  # a copy
    back = pd.read_csv(io.StringIO(out.to_csv(index=False)))
    assert back["amount"].tolist() == [-1.0, 2.0, 3.0]


def test_csv_bytes_reads_back_without_formulas() -> None:
    frame = pd.DataFrame({"rule": pd.Series(list(CORPUS.values()), dtype=object),
                          "n": range(len(CORPUS))})
    back = pd.read_csv(io.BytesIO(csv_bytes(frame)), dtype=str, keep_default_na=False)
    assert export_problems(back.to_numpy().ravel()) == []
    assert len(back) == len(CORPUS)  # nothing lost
