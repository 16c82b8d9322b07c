"""Safe text for Discord: escaped markdown, neutralised mentions, clipped at clean boundaries.

Every string that comes from outside (titles, authors, abstracts, post texts, handles, display
names) goes through :func:`safe` (or :func:`link_text` inside ``[...](...)``) before it is put
in a message or an embed. The escaping is correct by construction, not by pattern matching on
markup: each character that can open or close a Discord markdown construct gets a backslash,
wherever it could act, so nothing in the result can pair up with anything else:

* everywhere: backslash, ``*``, ``_``, ``~``, ``|``, backtick, ``[``, ``]`` (defensive:
  with ``[`` escaped no link can open) and ``<`` (mentions, custom emoji, timestamps, slash
  commands, ``<url>``); ``:`` when it starts ``//`` (a bare ``https://`` would autolink) or
  an emoji shortcode (``:name:``);
* at the start of a line (and of the string, which a caller may put at a line start), after
  any indentation: ``#`` (headings), ``-`` (lists, ``-#`` subtext), ``+`` (lists), ``>``
  (``>`` and ``>>>`` quotes), and the ``.`` or ``)`` of ``12.`` / ``12)`` before a space.

Nothing else is touched (``3.5``, ``a-b``, ``(x)``, ``C#`` mid-line stay as they are), and
Discord shows ``\\*`` as ``*``, so the escaped text reads exactly like the original. No two of
the characters escaped everywhere are ever adjacent in the result (``~~`` comes out as
``\\~\\~``), so even the rules that ignore escapes (spoilers, strike-through, bold) find
nothing to pair. Bare URLs in the text are shown but not linked.

Mentions are neutralised on top of that: a zero-width space goes after the ``@`` of
``@everyone``/``@here`` and after ``<@``/``<#``, so no ping can come out of the text whatever
AllowedMentions says. Bidi override and isolate controls are removed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from urllib.parse import quote

ELLIPSIS = "…"
ZWSP = "\u200b"
# Bidi controls let external text reorder what follows it in the client; remove them.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
# What can ping: @everyone, @here (Discord matches them case-sensitively; be broader) and the
# <@id>, <@!id>, <@&id>, <#id> forms. A zero-width space after the @ or # breaks each of them.
_PINGABLE = re.compile(r"<[@#]|@(?=everyone|here)", re.IGNORECASE)
_LINK_CHARS = str.maketrans({"[": "(", "]": ")"})

# Markup characters escaped wherever they stand.
_ALWAYS = frozenset("\\*_~|`[]<")
# Markup characters escaped when they are the first non-blank character of a line.
_LINE_START = frozenset("#->+")
# ``:`` opening ``//`` (``https://`` autolinks) or an emoji shortcode such as ``:smile:``.
_COLON = re.compile(r":(?=//|[0-9A-Za-z_+\-]+:)")
# ``12.`` or ``12)`` then a blank (or the end, where a caller's text may follow): a list item.
_ORDERED = re.compile(r"[0-9]+[.)](?=\s|$)")
# Everything Python's str.splitlines() breaks on: a superset of what Discord treats as a new line.
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def _blank(ch: str) -> bool:
    """White space as JavaScript's ``\\s`` or Python's ``str.isspace`` sees it."""
    return ch.isspace() or ch == "\ufeff"


def _escape_markdown(text: str) -> str:
    colons = {m.start() for m in _COLON.finditer(text)}
    out: list[str] = []
    line_start = True
    escape_at = -1  # index of an ordered-list "." or ")" to escape
    for i, ch in enumerate(text):
        if ch in _LINE_BREAKS:
            line_start = True
            out.append(ch)
            continue
        if line_start:
            if _blank(ch):
                out.append(ch)
                continue
            line_start = False
            if ch in _LINE_START:
                out.append("\\" + ch)
                continue
            marker = _ORDERED.match(text, i)
            if marker:
                escape_at = marker.end() - 1
        if ch in _ALWAYS or i in colons or i == escape_at:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _break_mentions(text: str) -> str:
    return _PINGABLE.sub(lambda m: m.group(0) + ZWSP, text)


def neutralise(text: str) -> str:
    """No ping can come out of this text, whatever AllowedMentions says; no bidi override.

    For places where Discord renders no markdown (embed footers, author names): it adds no
    backslashes, only zero-width spaces after the ``@`` of ``@everyone``/``@here`` and after
    ``<@``/``<#``.
    """
    return _break_mentions(_BIDI.sub("", text))


def safe(text: str) -> str:
    """External text made inert: every markdown character escaped, mentions broken, no bidi.

    The result renders as the original text (modulo the zero-width spaces of
    :func:`neutralise`) anywhere Discord renders markdown, including at the start of a line
    and next to the caller's own markup.
    """
    return _break_mentions(_escape_markdown(_BIDI.sub("", text)))


def link_text(text: str) -> str:
    """Text that can sit inside ``[...](...)`` without breaking out of it.

    Square brackets become parentheses (simple-markdown's link pattern pairs brackets whatever
    escapes say), line breaks and runs of blanks become one space, and the rest is :func:`safe`, so
    the text can neither close the caller's ``]`` nor start a nested link or autolink. Empty
    text becomes ``link`` (Discord shows ``[](url)`` as raw markdown).
    """
    return safe(" ".join(text.translate(_LINK_CHARS).split())) or "link"


def inline_code(text: str) -> str:
    """External text shown as ``inline code``: backslashes would show there, so none are
    added; backticks and line breaks are dropped and mentions neutralised instead."""
    inner = " ".join(neutralise(text).replace("`", "").split())
    return f"`{inner}`" if inner else "`?`"


_FALLBACK_URL = "https://arxiv.org"
_HTTP_URL = re.compile(r"(https?)://([^/?#\\]*)(.*)\Z", re.IGNORECASE | re.DOTALL)
# Kept as they are: the URL's structure and what is harmless inside ``(...)``. Everything else
# (blanks, quotes, ``( ) < > [ ] \\ | ^ { }`` and non-ASCII) is percent-encoded.
_URL_SAFE = ":/?#@!$&'*+,;=%~-._"


def safe_url(url: str) -> str:
    """An http(s) URL that cannot close a markdown link or carry whitespace.

    Anything else (another scheme, no host) becomes ``https://arxiv.org``.
    """
    m = _HTTP_URL.match(url.strip())
    if not m:
        return _FALLBACK_URL
    scheme, netloc, rest = m.group(1).lower(), m.group(2), m.group(3)
    host = netloc.rpartition("@")[2]
    if not host.startswith("["):
        host = host.partition(":")[0]
    if not host or any(_blank(ch) for ch in host):
        return _FALLBACK_URL
    if not host.isascii():
        try:
            netloc = netloc.replace(host, host.encode("idna").decode("ascii"))
        except UnicodeError:
            return _FALLBACK_URL
    # Brackets stay only in the host part (IPv6 literals); only ``)`` could close the link.
    return f"{scheme}://{quote(netloc, safe=_URL_SAFE + '[]')}{quote(rest, safe=_URL_SAFE)}"


_ZWJ = "\u200d"


def _joins_previous(ch: str) -> bool:
    """Whether ``ch`` belongs to the grapheme of the character before it."""
    cp = ord(ch)
    return (
        unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or ch == _ZWJ
        or 0xFE00 <= cp <= 0xFE0F  # variation selectors (emoji / text presentation)
        or 0x1F3FB <= cp <= 0x1F3FF  # skin-tone modifiers
        or 0xE0020 <= cp <= 0xE007F  # tag characters (subdivision flags)
        or 0xE0100 <= cp <= 0xE01EF  # variation selectors supplement
        or 0xDC00 <= cp <= 0xDFFF  # a low surrogate after its high one
    )


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _clean_cut(text: str, end: int) -> int:
    """The largest index <= ``end`` where ``text`` can be cut: not inside a grapheme (combining
    marks, ZWJ sequences, flags, surrogate pairs, CRLF) nor between a backslash and the
    character it escapes."""
    while end > 0:
        prev = text[end - 1]
        nxt = text[end] if end < len(text) else ""
        backslashes = regionals = 0
        while backslashes < end and text[end - 1 - backslashes] == "\\":
            backslashes += 1
        if nxt and _regional(nxt):
            while regionals < end and _regional(text[end - 1 - regionals]):
                regionals += 1
        if (
            backslashes % 2
            or prev == _ZWJ
            or 0xD800 <= ord(prev) <= 0xDBFF
            or (nxt and _joins_previous(nxt))
            or (prev == "\r" and nxt == "\n")
            or regionals % 2
        ):
            end -= 1
        else:
            break
    return end


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a sentence end or else a word boundary.

    A cut never splits a backslash escape (a dangling ``\\`` would escape whatever the caller
    puts next) nor a grapheme (an emoji ZWJ sequence, a flag, a letter and its accents).
    """
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return text[: _clean_cut(text, limit)]
    head = text[: _clean_cut(text, limit - len(ELLIPSIS))]
    sentence = max(head.rfind(". "), head.rfind("? "), head.rfind("! "))
    if sentence >= limit * 0.6:
        return head[: sentence + 1]
    space = head.rfind(" ")
    cut = (head[:space] if space >= limit * 0.5 else head).rstrip(" ,;:")
    return cut[: _clean_cut(cut, len(cut))] + ELLIPSIS


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
