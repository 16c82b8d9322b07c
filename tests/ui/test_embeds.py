"""Embeds built from hostile papers always fit Discord's limits and never ping anyone."""

from __future__ import annotations

import datetime as dt
import re

import discord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.models import Digest, Mention, Paper, RankedPaper, ScoredPost, Window
from bot.ui import limits
from bot.ui.autocomplete import category_choices, paper_choices, timezone_choices
from bot.ui.embeds import compact_embed, digest_header, paper_embed, paper_links
from bot.ui.text import authors_line, clip, safe

WHEN = dt.datetime(2020, 12, 22, 12, tzinfo=dt.UTC)
PING = re.compile(r"@(everyone|here)|<@[!&]?\d+>|<#\d+>")

HOSTILE = [
    "@everyone",
    "@here",
    "<@&123456789012345678>",
    "<@123456789012345678>",
    "<@!123456789012345678>",
    "**bold** __under__ ~~strike~~ ||spoiler|| `code` ```block```",
    "[click](https://evil.example)",
    "> quote\n# heading",
    "\u202eRTL override\u202c",
    "مرحبا بالعالم",
    "עברית",
    "\\",
    ")](https://evil.example",
]
hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(min_size=0, max_size=60),
    st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=8).map(" ".join),
)


@st.composite
def papers(draw: st.DrawFn) -> Paper:
    title = draw(st.one_of(hostile_text, st.just("T" * 300), st.text(min_size=280, max_size=320)))
    n_authors = draw(st.sampled_from([0, 1, 6, 7, 50, 3000]))
    author = draw(hostile_text)
    abstract = draw(
        st.one_of(hostile_text, st.just(("word " * 4000) + "@everyone"), st.text(max_size=200))
    )
    return Paper(
        arxiv_id="2012.10885",
        title=title or "x",
        abstract=abstract,
        authors=tuple(f"{author} {i}" for i in range(n_authors)),
        primary_category="cs.LG",
        categories=("cs.LG", "stat.ML", draw(st.sampled_from(["cs.CV", "not.real", "@everyone"]))),
        published=WHEN,
        updated=WHEN,
        version=2,
        journal_ref=draw(st.none() | hostile_text),
    )


def ranked(paper: Paper, text: str, n_posts: int) -> RankedPaper:
    posts = tuple(
        ScoredPost(
            Mention(
                "x",
                str(i),
                f"https://twitter.com/u/status/{i}?q=a)b",
                text or "@here",
                text,
                WHEN,
                (paper.arxiv_id,),
                {"reposts": 10, "likes": 20},
            ),
            30.0,
        )
        for i in range(n_posts)
    )
    return RankedPaper(
        paper,
        30.0 * n_posts,
        {"x": {"reposts": 10 * n_posts, "likes": 20 * n_posts}, "hackernews": {"points": 5}},
        posts,
        WHEN,
    )


def assert_fits(embed: discord.Embed) -> None:
    data = embed.to_dict()
    assert len(data.get("title", "")) <= limits.TITLE
    assert len(data.get("description", "")) <= limits.DESCRIPTION
    assert len(data.get("fields", [])) <= limits.FIELDS
    for f in data.get("fields", []):
        assert 0 < len(f["name"]) <= limits.FIELD_NAME
        assert 0 < len(f["value"]) <= limits.FIELD_VALUE
    assert len(data.get("footer", {}).get("text", "")) <= limits.FOOTER
    assert len(embed) <= limits.EMBED_TOTAL


def assert_no_ping(text: str) -> None:
    assert not PING.search(text), text


def embed_text(embed: discord.Embed) -> str:
    data = embed.to_dict()
    parts = [
        data.get("title", ""),
        data.get("description", ""),
        data.get("footer", {}).get("text", ""),
    ]
    parts += [f["name"] + f["value"] for f in data.get("fields", [])]
    return "\n".join(parts)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(papers(), hostile_text, st.integers(0, 12))
def test_paper_embeds_fit_and_never_ping(paper, post_text, n_posts):
    for embed in (
        paper_embed(paper, ranked=ranked(paper, post_text, n_posts), rank=1),
        paper_embed(paper, abstract_limit=4000),
    ):
        assert_fits(embed)
        assert_no_ping(embed_text(embed))
        assert "\u202e" not in embed_text(embed)
    view = paper_links(paper)
    assert [b.label for b in view.children] == ["Abstract", "PDF", "HTML"]  # type: ignore[attr-defined]
    assert all(b.url.startswith("https://arxiv.org/") for b in view.children)  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(papers(), min_size=0, max_size=25), hostile_text)
def test_compact_digest_and_header_fit(paper_list, text):
    digest = Digest(
        day=WHEN.date(),
        window=Window.for_day(WHEN.date()),
        categories=("cs.LG",),
        papers=tuple(ranked(p, text, 2) for p in paper_list),
        generated_at=WHEN,
        threshold=50,
    )
    embed = compact_embed(digest, ["cs.LG", "cs"])
    assert_fits(embed)
    assert_no_ping(embed_text(embed))
    header = digest_header(digest, ["cs.LG"])
    assert len(header) <= limits.CONTENT
    assert_no_ping(header)


def test_safe_escapes_markdown_and_mentions():
    out = safe("@everyone **x** <@&123456789012345678>")
    assert_no_ping(out)
    assert "\\*\\*x\\*\\*" in out


def test_clip_cuts_at_sentence_or_word():
    text = "First sentence here. Second sentence is much longer than the first one."
    assert clip(text, 30) == "First sentence here."
    assert clip(text, 40) == "First sentence here. Second sentence…"
    assert clip("alpha beta gamma delta", 15) == "alpha beta…"
    assert clip("short", 10) == "short"
    assert not clip("a\\*b" * 10, 7).removesuffix("…").endswith("\\")


def test_long_author_lists_are_shortened():
    line = authors_line([f"Author {i}" for i in range(3000)])
    assert line.endswith("and 2,994 others")
    assert len(line) <= 250


def test_autocomplete_choices_respect_limits():
    pairs = [(f"2012.{i:05d}", "A very long title " * 20) for i in range(40)]
    for choices in (
        paper_choices(pairs),
        category_choices(""),
        category_choices("cs"),
        timezone_choices("a"),
    ):
        assert len(choices) <= 25
        for c in choices:
            assert 1 <= len(c.name) <= 100
            assert len(str(c.value)) <= 100
    assert category_choices("cs.l")[0].value.startswith("cs.L")
    assert timezone_choices("europe/par")[0].value == "Europe/Paris"


def test_the_header_says_what_the_ranking_counted():
    paper = Paper(
        arxiv_id="2012.11552",
        title="A paper",
        abstract="An abstract.",
        authors=("Ada Lovelace",),
        primary_category="cs.LG",
        categories=("cs.LG",),
        published=WHEN,
        updated=WHEN,
    )

    def header(*by_source: dict[str, dict[str, int]]) -> str:
        digest = Digest(
            day=WHEN.date(),
            window=Window.for_day(WHEN.date()),
            categories=(),
            papers=tuple(RankedPaper(paper, 60.0, sources, (), WHEN) for sources in by_source),
            generated_at=WHEN,
            threshold=50,
        )
        return digest_header(digest, []).splitlines()[1]

    x_only = {"x": {"reposts": 10, "likes": 50}}
    assert header(x_only) == "all categories · 1 paper ranked by reposts and likes"
    assert header(x_only, {"huggingface": {"upvotes": 70}}) == (
        "all categories · 2 papers ranked by social attention on Hugging Face and X"
    )
    assert header({"hackernews": {"points": 90}}) == (
        "all categories · 1 paper ranked by social attention on Hacker News"
    )


def test_the_compact_footer_names_no_formula_the_weights_could_contradict():
    paper = Paper(
        arxiv_id="2012.11552",
        title="A paper",
        abstract="An abstract.",
        authors=("Ada Lovelace",),
        primary_category="cs.LG",
        categories=("cs.LG",),
        published=WHEN,
        updated=WHEN,
    )
    digest = Digest(
        day=WHEN.date(),
        window=Window.for_day(WHEN.date()),
        categories=(),
        papers=(RankedPaper(paper, 60.0, {"hackernews": {"points": 60}}, (), WHEN),),
        generated_at=WHEN,
        threshold=50,
    )
    footer = compact_embed(digest, ["cs.LG"]).footer.text
    assert footer == "cs.LG · ranked by weighted social attention — /about explains"


def test_fit_embeds_shortens_the_longest_description_to_fit_one_message():
    embeds = [
        discord.Embed(title="One", description="word " * 900),
        discord.Embed(title="Two", description="word " * 700),
        *(discord.Embed(description=f"tail {n}") for n in range(12)),
    ]
    fitted = limits.fit_embeds(embeds)
    assert len(fitted) == limits.EMBEDS_PER_MESSAGE
    assert sum(limits.embed_size(e) for e in fitted) <= limits.EMBED_TOTAL
    assert [e.title for e in fitted[:2]] == ["One", "Two"]
    assert fitted[1].description == ("word " * 700)  # only the longest was cut
