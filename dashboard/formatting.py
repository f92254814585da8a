"""Small display helpers shared by the entrypoint and the pages."""

from __future__ import annotations

import re


def format_age(seconds: float) -> str:
    """A short age: '45s', '12m', '3h 5m', '2d 4h' (negative ages count as 0)."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


#: Characters that make markup anywhere in a line of Streamlit's markdown: links and images,
#: emphasis, code, HTML, math, tables, strike-through, its :emoji: and :color[...] directives.
#: (Line-start ones, headings and lists, cannot occur: the text is inline, newlines removed.)
_MARKDOWN = re.compile(r"([\\`*_\[\]()!|<>~$:])")


def md_text(text: object) -> str:
    """``text`` (an account name, a tag, a reason from AWS: written by people we do not
    trust) as literal text inside Streamlit markdown: every markdown character escaped, so
    it never becomes a link, an image, HTML, emphasis or math."""
    return _MARKDOWN.sub(r"\\\1", str(text)).replace("\n", " ")
