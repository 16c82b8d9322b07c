"""Safe text for Discord: escaped markdown, neutralised mentions, clipped at clean boundaries."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote

import discord

ELLIPSIS = "…"
_MENTION = re.compile(r"@(everyone|here|[!&]?[0-9]{15,21})")
_CHANNEL_OR_ROLE = re.compile(r"<(@[!&]?|#)([0-9]{15,21})>")
_LINK_CHARS = str.maketrans({"[": "(", "]": ")", "\n": " ", "\r": " "})
# Bidi controls let external text reorder what follows it in the client; isolate them instead.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def neutralise(text: str) -> str:
    """No ping can come out of this text, whatever AllowedMentions says; no bidi override."""
    text = _BIDI.sub("", text)
    text = _CHANNEL_OR_ROLE.sub(lambda m: f"<{m.group(1)}\u200b{m.group(2)}>", text)
    return _MENTION.sub("@\u200b\\1", text)


def safe(text: str) -> str:
    """External text made inert: markdown escaped, mentions broken, bidi overrides removed."""
    return neutralise(discord.utils.escape_markdown(text, ignore_links=False))


def link_text(text: str) -> str:
    """Text that can sit inside ``[...](...)`` without breaking out of it."""
    return safe(" ".join(text.translate(_LINK_CHARS).split()))


def safe_url(url: str) -> str:
    """An http(s) URL that cannot close a markdown link or carry whitespace."""
    url = url.strip()
    if not url.lower().startswith(("https://", "http://")):
        return "https://arxiv.org"
    return quote(url, safe=":/?#@!$&'*+,;=%~-._[]")


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a sentence end or else a word boundary."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return text[:limit]
    head = text[: limit - len(ELLIPSIS)]
    sentence = max(head.rfind(". "), head.rfind("? "), head.rfind("! "))
    if sentence >= limit * 0.6:
        cut = head[: sentence + 1]
    else:
        space = head.rfind(" ")
        cut = (head[:space] if space >= limit * 0.5 else head).rstrip(" ,;:") + ELLIPSIS
    return _drop_dangling_escape(cut)


def _drop_dangling_escape(text: str) -> str:
    # Clipping can split "\*" into "\", which would escape whatever Discord puts next.
    stripped = text.removesuffix(ELLIPSIS)
    trailing = len(stripped) - len(stripped.rstrip("\\"))
    if trailing % 2:
        stripped = stripped[:-1]
        return stripped + (ELLIPSIS if text.endswith(ELLIPSIS) else "")
    return text


def authors_line(authors: Sequence[str], limit: int = 250, shown: int = 6) -> str:
    """``A, B, C, D, E, F and 2,994 others``, never longer than ``limit``."""
    names = [" ".join(a.split()) for a in authors if a.strip()]
    if not names:
        return "Unknown authors"
    if len(names) <= shown:
        line = ", ".join(names)
    else:
        line = f"{', '.join(names[:shown])} and {len(names) - shown:,} others"
    return clip(safe(line), limit)
