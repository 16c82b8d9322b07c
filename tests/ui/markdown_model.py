"""A small model of how Discord's client parses markdown, to check what escaped text renders as.

Discord parses messages and embed descriptions with simple-markdown style rules: at each
position the rules are tried in order and the first whose pattern matches there wins; plain
text runs only up to the next character that could start a rule. Modelled here:

* escapes: ``\\`` before any ASCII punctuation shows that character;
* inline formatting: ``**bold**``, ``__underline__``, ``*italic*``/``_italic_``,
  ``~~strike~~``, ``||spoiler||``, inline code (one or two backticks) and fenced code blocks.
  As in Discord, bold, underline, strike-through and spoiler do not look at escapes inside
  them: ``~~a\\~~`` is struck-through ``a\\``;
* masked links ``[text](target)`` (the text may hold escaped ``]``; the target ends at the
  first ``)``), ``<scheme:...>`` autolinks and bare ``scheme://`` URLs;
* mentions and markup in angle brackets: ``<@id>``, ``<@!id>``, ``<@&id>``, ``<#id>``,
  ``@everyone``, ``@here``, custom emoji ``<:name:id>``/``<a:name:id>``, emoji shortcodes
  ``:name:``, timestamps ``<t:123:R>``, slash-command mentions ``</name:id>``, ``<id:home>``;
* at the start of a line only: headings ``#``..``###``, subtext ``-#``, block quotes ``>`` and
  ``>>>``, list items ``-``, ``*``, ``+``, ``1.``. As in Discord, "the start of a line" is a
  parser state: it is set by a line break and cleared by the first non-blank character that
  plain text or an escape consumes (also inside bold, links and the like, whose content is
  parsed with the same state); other nodes leave it alone, so after an inline code span or a
  mention at the start of a line the parser is still at the start of the line.

Where the exact rule is unsure, the model errs on the side of finding markup (any URL scheme
links, quotes and headings need no space after ``>``/``#``, lists also take ``1)``, any
character that Python or Discord counts as a line break starts a line). So text the model
reads as plain is plain for Discord too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


@dataclass(frozen=True)
class Node:
    """``text`` for plain text and code; ``target`` for links; ``children`` for the rest."""

    kind: str
    text: str = ""
    children: tuple[Node, ...] = ()
    target: str = ""


@dataclass
class _State:
    line_start: bool = True
    in_quote: bool = False


def _c(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.DOTALL)


_ESCAPE = _c(r"\\([^0-9A-Za-z\s])")
_CODE_BLOCK = _c(r"```(?:([\w+\-.]+?)?(\s*\n))?([^\n].*?)\n*```")
_INLINE_CODE = _c(r"(``?)(.*?)\1")
_QUOTE = _c(r" *>>> ?(.*)| *>(?!>>) ?([^\n]*\n?)")
_SUBTEXT = _c(r"-#[ \t]+([^\n]*\n?)")
_HEADING = _c(r"(#{1,3})[ \t]+([^\n]*\n?)")
_LIST = _c(r"( *)([+*-]|[0-9]+[.)])[ \t]+([^\n]+(?:\n\1  [^\n]+)*\n?)")
_BOLD = _c(r"\*\*(.+?)\*\*(?!\*)")
_UNDERLINE = _c(r"__(.+?)__(?!_)")
_ITALIC = _c(
    r"\b_((?:__|\\.|[^\\_])+?)_\b"
    r"|\*(?=\S)((?:\\\*|\*\*|\s+(?:[^*\s]|\\\*|\*\*)|[^\s*])+?)(?<!\\)\*(?!\*)"
)
_STRIKE = _c(r"~~(.+?)~~")
_SPOILER = _c(r"\|\|(.+?)\|\|")
_LINK = _c(r"\[((?:\\.|[^\]\\])*)\]\(\s*<?([^\n]*?)>?\s*\)")
_AUTOLINK = _c(r"<([^: >]+:/[^ >]+)>")
_URL = _c(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s<]+")
_MENTIONS = {
    "mention": _c(r"<@!?[0-9]+>|<@&[0-9]+>|<#[0-9]+>|@everyone|@here|<id:[A-Za-z_]+>"),
    "emoji": _c(r"<a?:[A-Za-z0-9_]+:[0-9]+>|:[A-Za-z0-9_+\-]+:"),
    "timestamp": _c(r"<t:-?[0-9]+(?::[tTdDfFR])?>"),
    "command": _c(r"</[^:>\n]+:[0-9]+>"),
}
# Plain text stops before anything that could start a rule: punctuation, a line break, two
# spaces before a line break, a word followed by ":" (a URL scheme). JavaScript strings hold
# astral characters as surrogates in \ud800-\udfff, which counts as "word" here.
_TEXT = _c(
    r".+?(?=[^0-9A-Za-z\s\u00c0-\uffff\U00010000-\U0010ffff]|\n| {2,}\n|[0-9A-Za-z_]+:\S|\Z)"
)

_Match = tuple[Node, int]
_Rule = Callable[[str, _State], "_Match | None"]


def _has_non_backtick(text: str) -> bool:
    return any(ch != "`" for ch in text)


def _code_block(src: str, state: _State) -> _Match | None:
    m = _CODE_BLOCK.match(src)
    if m and _has_non_backtick(m.group(3)):
        return Node("code_block", m.group(3)), m.end()
    return None


def _inline_code(src: str, state: _State) -> _Match | None:
    m = _INLINE_CODE.match(src)
    if m and _has_non_backtick(m.group(2)):
        return Node("code", m.group(2)), m.end()
    return None


def _quote(src: str, state: _State) -> _Match | None:
    if not state.line_start or state.in_quote:
        return None
    m = _QUOTE.match(src)
    if not m:
        return None
    state.in_quote = True
    children = _parse(m.group(1) if m.group(1) is not None else m.group(2), state)
    state.in_quote = False
    return Node("quote", children=children), m.end()


def _line_start_rule(kind: str, pattern: re.Pattern[str], group: int) -> _Rule:
    def rule(src: str, state: _State) -> _Match | None:
        if not state.line_start:
            return None
        m = pattern.match(src)
        if not m:
            return None
        return Node(kind, children=_parse(m.group(group), state)), m.end()

    return rule


def _wrapping(kind: str, pattern: re.Pattern[str]) -> _Rule:
    def rule(src: str, state: _State) -> _Match | None:
        m = pattern.match(src)
        if not m:
            return None
        inner = next(g for g in m.groups() if g is not None)
        return Node(kind, children=_parse(inner, state)), m.end()

    return rule


def _link(src: str, state: _State) -> _Match | None:
    m = _LINK.match(src)
    if not m:
        return None
    return Node("link", children=_parse(m.group(1), state), target=m.group(2)), m.end()


def _plain_link(pattern: re.Pattern[str]) -> _Rule:
    def rule(src: str, state: _State) -> _Match | None:
        m = pattern.match(src)
        if not m:
            return None
        url = m.group(m.lastindex or 0)
        return Node("link", children=(Node("text", url),), target=url), m.end()

    return rule


def _atom(kind: str, pattern: re.Pattern[str]) -> _Rule:
    def rule(src: str, state: _State) -> _Match | None:
        m = pattern.match(src)
        return (Node(kind, m.group(0)), m.end()) if m else None

    return rule


def _escape(src: str, state: _State) -> _Match | None:
    m = _ESCAPE.match(src)
    if not m:
        return None
    state.line_start = False
    return Node("text", m.group(1)), m.end()


def _text(src: str, state: _State) -> _Match | None:
    m = _TEXT.match(src)
    assert m, src  # always matches at least one character
    for ch in m.group(0):
        if ch in LINE_BREAKS:
            state.line_start = True
        elif not ch.isspace():
            state.line_start = False
    return Node("text", m.group(0)), m.end()


_RULES: tuple[_Rule, ...] = (
    _code_block,
    _quote,
    _line_start_rule("heading", _HEADING, 2),
    _line_start_rule("subtext", _SUBTEXT, 1),
    _line_start_rule("list", _LIST, 3),
    _escape,
    *(_atom(kind, pattern) for kind, pattern in _MENTIONS.items()),
    _plain_link(_AUTOLINK),
    _plain_link(_URL),
    _link,
    _wrapping("bold", _BOLD),
    _wrapping("underline", _UNDERLINE),
    _wrapping("italic", _ITALIC),
    _wrapping("strike", _STRIKE),
    _wrapping("spoiler", _SPOILER),
    _inline_code,
    _text,
)


def _parse(src: str, state: _State) -> tuple[Node, ...]:
    nodes: list[Node] = []
    pos = 0
    while pos < len(src):
        rest = src[pos:]
        for rule in _RULES:
            found = rule(rest, state)
            if found:
                node, length = found
                break
        else:  # pragma: no cover - the text rule always matches
            raise AssertionError(rest)
        if node.kind == "text" and nodes and nodes[-1].kind == "text":
            nodes[-1] = Node("text", nodes[-1].text + node.text)
        else:
            nodes.append(node)
        pos += length
    return tuple(nodes)


def parse(source: str) -> list[Node]:
    """The nodes Discord would render ``source`` as (top level; children nested)."""
    return list(_parse(source, _State()))


def is_plain(nodes: Iterable[Node]) -> bool:
    """Only plain text: no formatting, code, link, mention, emoji, heading, list or quote."""
    return all(node.kind == "text" for node in nodes)


def plain_text(nodes: Iterable[Node]) -> str:
    """What plain-text nodes show, escapes resolved."""
    return "".join(node.text for node in nodes if node.kind == "text")


def kinds(nodes: Iterable[Node]) -> set[str]:
    """Every node kind in the tree."""
    found: set[str] = set()
    for node in nodes:
        found.add(node.kind)
        found |= kinds(node.children)
    return found
