"""Small display helpers shared by the entrypoint and the pages."""

from __future__ import annotations

import re

#: Characters that make markup anywhere in a line of Streamlit's markdown: links and images,
#: emphasis, code, HTML, math, tables, strike-through, its :emoji: and :color[...] directives.
#: (Line-start ones, headings and lists, cannot occur: the text is inline, newlines removed.)
_MARKDOWN = re.compile(r"([\\`*_\[\]()!|<>~$:])")


def md_text(text: object) -> str:
    """``text`` (an account name, a tag, a reason from AWS: written by people we do not
    trust) as literal text inside Streamlit markdown: every markdown character escaped, so
    it never becomes a link, an image, HTML, emphasis or math."""
    return _MARKDOWN.sub(r"\\\1", str(text)).replace("\n", " ")
