"""External text reaches members as the plain text it is: no markup, link, mention or ping.

The oracle is tests/ui/markdown_model.py, a model of Discord's markdown parser: whatever the
input, the escaped text must parse as plain text only, and show the input itself (with the
documented neutralisation: bidi controls removed, a zero-width space after the ``@`` of
``@everyone``/``@here`` and after ``<@``/``<#``).
"""

from __future__ import annotations

import datetime as dt
import re

import discord
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.core.models import Mention, Paper, RankedPaper, ScoredPost
from bot.ui.embeds import paper_embed
from bot.ui.text import (
    ELLIPSIS,
    authors_line,
    clip,
    inline_code,
    link_text,
    neutralise,
    safe,
    safe_url,
)
from tests.ui.markdown_model import Node, is_plain, kinds, parse, plain_text

ZWSP = "\u200b"
BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
PING = re.compile(r"@(everyone|here)|<@[!&]?\d+>|<#\d+>")
ATTACK = (
    "We beat [SOTA](https://arxiv.org/abs/1) **now** ||hidden|| `code` ```block``` "
    "[click me](https://evil.example/x) on two benchmarks ([paper](https://x.example/y))."
)

PIECES = [
    "[",
    "]",
    "(",
    ")",
    "[a](https://evil.example/x)",
    "[click me](https://evil.example/x)",
    "](",
    "*",
    "**",
    "_",
    "__",
    "~",
    "~~",
    "|",
    "||",
    "`",
    "``",
    "```",
    "\\",
    ">",
    "> ",
    ">>> ",
    "#",
    "# ",
    "## ",
    "### ",
    "-# ",
    "- ",
    "* ",
    "+ ",
    "1. ",
    "12) ",
    "\n",
    "\r\n",
    "\u2028",
    " ",
    "  ",
    "\u00a0",
    ":",
    "://",
    "https://evil.example/x)",
    "<https://evil.example>",
    "@everyone",
    "@here",
    "@EVERYONE",
    "<@123>",
    "<@!123456789012345678>",
    "<@&123>",
    "<#123>",
    "<:name:123>",
    "<a:name:123>",
    "<t:1:R>",
    "<t:1700000000>",
    "</cmd:123>",
    "</cmd sub:1>",
    "<id:home>",
    ":smile:",
    "\u202e",
    "\u2066",
    "é",
    "e\u0301",
    "👨\u200d👩\u200d👧",
    "🇫🇷",
    "word",
    "3.5",
]
markup_chars = st.text(alphabet=st.sampled_from(list("[]()*_~|`>#-+.:/\\<@&!t\n \r0123456789ab")))
external_text = st.lists(
    st.one_of(st.sampled_from(PIECES), markup_chars, st.text(max_size=3)), max_size=30
).map("".join)


def expected(text: str) -> str:
    """What the escaped text must show: the input, neutralised as documented."""
    text = BIDI.sub("", text)
    return re.sub(r"<[@#]|@(?=everyone|here)", lambda m: m.group(0) + ZWSP, text, flags=re.I)


def expected_link_text(text: str) -> str:
    shown = expected(" ".join(text.replace("[", "(").replace("]", ")").split()))
    return shown or "link"


def assert_plain(escaped: str, shown: str) -> None:
    nodes = parse(escaped)
    assert is_plain(nodes), (escaped, nodes)
    assert plain_text(nodes) == shown
    assert not PING.search(plain_text(nodes))


# The model finds the markup it must find, or passing tests would prove nothing.


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("**b**", "bold"),
        ("__u__", "underline"),
        ("*i*", "italic"),
        ("_i_", "italic"),
        ("~~s~~", "strike"),
        ("||s||", "spoiler"),
        ("`c`", "code"),
        ("```c```", "code_block"),
        ("[click me](https://evil.example/x)", "link"),
        ("see https://evil.example", "link"),
        ("<https://evil.example>", "link"),
        ("# heading", "heading"),
        ("### heading", "heading"),
        ("-# subtext", "subtext"),
        ("> quote", "quote"),
        (">>> quote", "quote"),
        ("- item", "list"),
        ("* item", "list"),
        ("1. item", "list"),
        ("@everyone", "mention"),
        ("@here", "mention"),
        ("<@123>", "mention"),
        ("<@&123>", "mention"),
        ("<#123>", "mention"),
        ("<:name:123>", "emoji"),
        ("<a:name:123>", "emoji"),
        (":smile:", "emoji"),
        ("<t:1:R>", "timestamp"),
        ("</cmd:123>", "command"),
        ("text\n# heading", "heading"),
        ("`x` # heading", "heading"),  # code leaves the parser at the line start
    ],
)
def test_the_model_sees_discord_markup(source, kind):
    assert kind in kinds(parse(source))


def test_the_model_resolves_escapes():
    assert parse("\\*not italic\\* a\\b \\\\") == [Node("text", "*not italic* a\\b \\")]


def test_discord_py_greedy_link_pattern_lets_the_attack_through():
    """Issue 7: escape_markdown escapes the first ``[`` of ``[...](...)...(...)`` only."""
    leaked = kinds(parse(discord.utils.escape_markdown(ATTACK, ignore_links=False)))
    assert {"link", "bold", "spoiler", "code"} <= leaked


# The property: any external text comes out as itself, as plain text.


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(external_text)
@example(ATTACK)
@example("[a](https://x.example/1) **b** [c](https://y.example/2)")
@example("a\n \u00a0# heading")
@example("x\r> quote")
@example("~~\\~~")
def test_escaped_text_renders_as_plain_input(text):
    assert_plain(safe(text), expected(text))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(external_text)
def test_escaped_text_stays_inside_the_callers_markup(text):
    escaped = safe(text)
    shown = expected(text)
    if escaped:
        [bold] = parse(f"**{escaped}**")
        assert bold.kind == "bold"
        assert is_plain(bold.children)
        assert plain_text(bold.children) == shown
    nodes = parse(f"**1.** {escaped} · `cs.LG`")
    assert [n.kind for n in nodes] == ["bold", "text", "code"]
    assert nodes[1].text == f" {shown} · "


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(external_text, external_text)
def test_link_text_and_url_cannot_leave_the_link(text, url_tail):
    url = safe_url("https://evil.example/" + url_tail)
    for line in (f"[{link_text(text)}]({url})", f"**1.** [{link_text(text)}]({url}) — x"):
        nodes = parse(line)
        [link] = [n for n in nodes if n.kind == "link"]
        assert link.target == url
        assert is_plain(link.children), link.children
        assert plain_text(link.children) == expected_link_text(text)
        assert plain_text(nodes).endswith(" — x") == line.endswith(" — x")


# Regressions: the attacks of issue 7 and each construct on its own.


def test_the_issue_attack_is_inert():
    out = safe(ATTACK)
    assert_plain(out, ATTACK)
    assert out == (
        "We beat \\[SOTA\\](https\\://arxiv.org/abs/1) \\*\\*now\\*\\* \\|\\|hidden\\|\\| "
        "\\`code\\` \\`\\`\\`block\\`\\`\\` \\[click me\\](https\\://evil.example/x) on two "
        "benchmarks (\\[paper\\](https\\://x.example/y))."
    )


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("[click me](https://evil.example/x)", "\\[click me\\](https\\://evil.example/x)"),
        (
            "**bold** __u__ ~~s~~ ||sp||",
            "\\*\\*bold\\*\\* \\_\\_u\\_\\_ \\~\\~s\\~\\~ \\|\\|sp\\|\\|",
        ),
        ("`code`", "\\`code\\`"),
        ("@everyone and @here", f"@{ZWSP}everyone and @{ZWSP}here"),
        ("<@123>", f"\\<@{ZWSP}123>"),
        ("<@&123> <#456>", f"\\<@{ZWSP}&123> \\<#{ZWSP}456>"),
        ("<t:1:R>", "\\<t\\:1:R>"),
        ("</cmd:1>", "\\</cmd:1>"),
        ("<:name:1> <a:name:2>", "\\<\\:name:1> \\<a\\:name:2>"),
        ("# heading", "\\# heading"),
        ("intro\n## heading", "intro\n\\## heading"),
        ("-# subtext", "\\-# subtext"),
        ("> quote", "\\> quote"),
        (">>> quote", "\\>>> quote"),
        ("  - item\n* item\n+ item", "  \\- item\n\\* item\n\\+ item"),
        ("1. first\n2) second", "1\\. first\n2\\) second"),
        ("see https://evil.example", "see https\\://evil.example"),
        ("C:\\path", "C:\\\\path"),
        ("\u202eevil\u2066", "evil"),
    ],
)
def test_each_construct_is_escaped(text, escaped):
    assert safe(text) == escaped
    assert_plain(escaped, expected(text))


@pytest.mark.parametrize(
    "text",
    [
        "We propose a new method for image classification, with 3.5x fewer parameters (ours).",
        "Graph neural networks - a survey; results: 92% accuracy at 1.2 GFLOPs!",
        "Ünïcödé, 日本語, עברית and emoji 🔥 stay as they are.",
        "e.g. arXiv 2012.10885 # of samples > 10, a-b, x+y, 10:30",
    ],
)
def test_plain_sentences_are_left_alone(text):
    assert safe(text) == text


def test_only_line_starts_get_line_start_escapes():
    assert safe("a # b - c > d 1. e") == "a # b - c > d 1. e"
    assert safe("3.5 times\n2024 was") == "3.5 times\n2024 was"


def test_mentions_never_ping():
    for text in ("@everyone", "@here", "<@123456789012345678>", "<@!1>", "<@&1>", "<#1>"):
        assert not PING.search(safe(text))
        assert not PING.search(neutralise(text))


def test_neutralise_adds_no_backslashes():
    assert neutralise("**x** @everyone <@1> \u202e") == f"**x** @{ZWSP}everyone <@{ZWSP}1> "


def test_inline_code_shows_no_escapes():
    assert inline_code("cs.LG") == "`cs.LG`"
    assert inline_code("a_b*c") == "`a_b*c`"
    assert inline_code("`@everyone`\nx") == f"`@{ZWSP}everyone x`"
    assert inline_code("``") == "`?`"
    [code] = parse(inline_code("x``` **y**"))
    assert code.kind == "code"


def test_link_text_cannot_close_the_bracket():
    out = link_text("a](https://evil.example) [b\nc")
    line = f"[{out}](https://arxiv.org/abs/1)"
    [link] = parse(line)
    assert link.target == "https://arxiv.org/abs/1"
    assert plain_text(link.children) == "a)(https://evil.example) (b c"
    assert link_text(" \n ") == "link"


@pytest.mark.parametrize(
    ("url", "safe_form"),
    [
        ("https://twitter.com/u/status/1?q=a)b", "https://twitter.com/u/status/1?q=a%29b"),
        ("https://en.wikipedia.org/wiki/Foo_(bar)", "https://en.wikipedia.org/wiki/Foo_%28bar%29"),
        ("https://x.example/a b<c>", "https://x.example/a%20b%3Cc%3E"),
        ("https://x.example/a\\)b", "https://x.example/a%5C%29b"),
        ("  HTTPS://arxiv.org/abs/2012.10885  ", "https://arxiv.org/abs/2012.10885"),
        (
            "http://news.ycombinator.com/item?id=1&x=%20",
            "http://news.ycombinator.com/item?id=1&x=%20",
        ),
        ("https://例え.jp/ü", "https://xn--r8jz45g.jp/%C3%BC"),
    ],
)
def test_safe_url_cannot_break_out_of_the_parentheses(url, safe_form):
    assert safe_url(url) == safe_form
    [link] = parse(f"[x]({safe_url(url)})")
    assert link.target == safe_form


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "ftp://x.example", "data:text/html,x", "https://", "//x.example", ""],
)
def test_safe_url_rejects_other_schemes(url):
    assert safe_url(url) == "https://arxiv.org"


# clip() after escaping: never a dangling backslash, never half a character.


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(external_text, st.integers(0, 120))
@example("a\\*b" * 10, 7)
@example("x" * 20 + "\\" * 9, 25)
def test_clip_after_escaping_never_breaks_an_escape(text, limit):
    clipped = clip(safe(text), limit)
    assert len(clipped) <= limit
    body = clipped.removesuffix(ELLIPSIS)
    assert expected(text).startswith(plain_text(parse(body)))
    nodes = parse(clipped + "**next**")  # the caller's markup still works after the cut
    assert nodes[-1] == Node("bold", children=(Node("text", "next"),))
    assert is_plain(nodes[:-1])


@pytest.mark.parametrize(
    "text",
    [
        "family 👨\u200d👩\u200d👧\u200d👦 here",
        "flags 🇫🇷🇩🇪🇮🇹 here",
        "accent e\u0301\u0301 here",
        "thumbs 👍🏽 here",
        "keycap 1\ufe0f\u20e3 here",
        "crlf\r\nhere",
        "escaped \\*\\*\\* here",
    ],
)
def test_clip_never_splits_a_character(text):
    for limit in range(1, len(text) + 2):
        body = clip(text, limit).removesuffix(ELLIPSIS)
        assert text.startswith(body)
        assert _is_boundary(text, len(body)), (limit, body)


def _is_boundary(text: str, i: int) -> bool:
    """Hand-written grapheme and escape boundaries for the examples above."""
    if i in (0, len(text)):
        return True
    before, after = text[i - 1], text[i]
    if after in "\u200d\u0301\ufe0f\u20e3🏽" or before == "\u200d" or before + after == "\r\n":
        return False
    flags = backslashes = 0
    while flags < i and "\U0001f1e6" <= text[i - 1 - flags] <= "\U0001f1ff":
        flags += 1
    while backslashes < i and text[i - 1 - backslashes] == "\\":
        backslashes += 1
    return flags % 2 == 0 and backslashes % 2 == 0


def test_clip_keeps_the_old_cutting_rules():
    text = "First sentence here. Second sentence is much longer than the first one."
    assert clip(text, 30) == "First sentence here."
    assert clip(text, 40) == "First sentence here. Second sentence…"
    assert clip("alpha beta gamma delta", 15) == "alpha beta…"
    assert clip("short", 10) == "short"
    assert clip("\\*" * 5, 1) == ""
    assert clip("\\*" * 5, 4) == "\\*…"


def test_authors_are_escaped_then_clipped():
    line = authors_line(["# Ada **Lovelace**", "<@1> @everyone", "Grace_Hopper"])
    assert_plain(line, f"# Ada **Lovelace**, <@{ZWSP}1> @{ZWSP}everyone, Grace_Hopper")
    long = authors_line([f"A_{i}" for i in range(3000)], limit=40)
    assert len(long) <= 40
    assert is_plain(parse(long + "**x**")[:-1])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(external_text, external_text, external_text, external_text)
def test_a_hostile_paper_embed_shows_its_text_as_plain_text(title, author, abstract, post):
    when = dt.datetime(2020, 12, 22, 12, tzinfo=dt.UTC)
    paper = Paper(
        arxiv_id="2012.10885",
        title=title or "x",
        abstract=abstract,
        authors=(author, "B"),
        primary_category="cs.LG",
        categories=("cs.LG",),
        published=when,
        updated=when,
    )
    mention = Mention(
        "x", "1", "https://x.com/u/status/1?q=a)b", post, post, when, (paper.arxiv_id,), {}
    )
    ranked = RankedPaper(paper, 30.0, {"x": {"likes": 30}}, (ScoredPost(mention, 30.0),), when)
    embed = paper_embed(paper, ranked=ranked)
    for text in (embed.title or "", embed.description or ""):
        assert is_plain(parse(text)), text
    [posts] = [f.value or "" for f in embed.fields if f.name == "Top posts"]
    nodes = parse(posts)
    assert kinds(nodes) == {"text", "link"}
    [link] = [n for n in nodes if n.kind == "link"]
    assert link.target == "https://x.com/u/status/1?q=a%29b"
    assert is_plain(link.children)
