"""Text from platforms made safe to store and show: one implementation for every client.

PostgreSQL refuses a NUL anywhere in a text, and a lone surrogate (which a JSON escape such
as "\\ud800" can produce) cannot even be encoded as UTF-8: either would make the whole page
fail. HTML fragments (Hacker News comments, feed summaries) become plain text in one linear
pass, never html.parser, which is quadratic on some hostile input.
"""

from __future__ import annotations

import re
from html import unescape

_LONE_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_CONTROL_CHARS_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A tag (its "/" and name), a comment's start, or a declaration or processing instruction.
# Possessive quantifiers that stop at the next "<": each "<" is tried once, without
# backtracking, so the search is linear however hostile the fragment.
_MARKUP_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*+)[^<>]*+>|<!--|<[!?][^<>]*+>")
_SPACES_RE = re.compile(r"\s+")
_BLOCK_TAGS = frozenset(
    {"p", "div", "pre", "blockquote", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr"}
)


def clean_text(text: str) -> str:
    """`text` made safe to store and show: no control characters but tab and newlines, and
    each lone surrogate replaced by U+FFFD."""
    return _LONE_SURROGATE_RE.sub("\ufffd", _CONTROL_CHARS_RE.sub("", text))


def html_to_text(html: str) -> str:
    """The plain text of an HTML fragment (HN's comment_text, a feed's summary): its text,
    entities decoded, with paragraphs and line breaks kept and script or style left out.

    One linear pass rather than html.parser, which takes quadratic time on some hostile
    fragments (half a minute for 200 kB of "<a<a<a...").
    """
    parts: list[str] = []
    in_pre = 0
    lowered = ""  # made once, if a script or style element needs its end found
    position, size = 0, len(html)
    while position < size:
        markup = _MARKUP_RE.search(html, position)
        start = size if markup is None else markup.start()
        text = unescape(html[position:start])
        # Outside <pre>, HTML shows a run of white space as one space.
        parts.append(text if in_pre else _SPACES_RE.sub(" ", text))
        if markup is None:
            break
        position = markup.end()
        if markup.group(0) == "<!--":
            end = html.find("-->", position)
            position = size if end == -1 else end + 3
            continue
        closing, name = markup.group(1) == "/", (markup.group(2) or "").lower()
        if name in ("script", "style") and not closing:
            lowered = lowered or html.lower()
            end = lowered.find(f"</{name}", position)
            end = -1 if end == -1 else html.find(">", end)
            position = size if end == -1 else end + 1
        elif name == "br":
            parts.append("\n")
        elif name in _BLOCK_TAGS:
            # HN separates paragraphs with an unclosed <p>.
            parts.append("\n\n" if name == "p" and not closing else "\n")
            if name == "pre":
                in_pre = max(0, in_pre + (-1 if closing else 1))
    return plain_text_tidy("".join(parts))


def plain_text_tidy(text: str) -> str:
    """Trim every line, keep at most one empty line in a row, strip the ends; clean it."""
    lines = [line.strip() for line in clean_text(text).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
