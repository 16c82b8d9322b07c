"""render_markdown: the reference post's layout, line for line, other sources' lines, escaping."""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType

import pytest

from bot.core.models import Digest, Mention, Paper, RankedPaper, ScoredPost, Window
from bot.fakes.demo import dataset_papers, load_dataset
from bot.render.markdown import popularity_lines, render_markdown
from tests.cli.test_reference import parse_post

UTC = dt.UTC
DAY = dt.date(2020, 12, 22)
FETCHED = dt.datetime(2020, 12, 23, 10, 50, tzinfo=UTC)
PAPERS = {p.arxiv_id: p for p in dataset_papers(load_dataset())}
LIE = PAPERS["2012.10885"]
AK_TEXT = (
    "LieTransformer: Equivariant self-attention for Lie Groups\n"
    "pdf: https://t.co/NTiZMzwFoO\nabs: https://t.co/Lho5i79dLy"
)


def x_post(
    text: str = AK_TEXT,
    *,
    post_id: str = "1341202937956233217",
    author: str = "ak92501",
    name: str | None = "AK",
    reposts: int = 1000,
    likes: int = 155,
    created_at: dt.datetime = dt.datetime(2020, 12, 22, 2, 4, 33, tzinfo=UTC),
    lang: str | None = "en",
) -> ScoredPost:
    mention = Mention(
        source="x",
        post_id=post_id,
        url=f"https://twitter.com/{author}/status/{post_id}",
        author=author,
        text=text,
        created_at=created_at,
        arxiv_ids=(LIE.arxiv_id,),
        metrics={"reposts": reposts, "likes": likes, "replies": 0, "quotes": 0},
        author_name=name,
        lang=lang,
    )
    return ScoredPost(mention, float(reposts + likes))


def other_post(source: str, metrics: dict[str, int], text: str = "Show HN") -> ScoredPost:
    mention = Mention(
        source=source,
        post_id="25500000",
        url=f"https://example.org/{source}/25500000",
        author="hn_user",
        text=text,
        created_at=dt.datetime(2020, 12, 22, 15, 0, tzinfo=UTC),
        arxiv_ids=(LIE.arxiv_id,),
        metrics=metrics,
        author_name=None,
    )
    return ScoredPost(mention, float(sum(metrics.values())))


def ranked(
    paper: Paper = LIE,
    posts: tuple[ScoredPost, ...] | None = None,
    by_source: dict[str, dict[str, int]] | None = None,
    as_of: dt.datetime | None = FETCHED,
) -> RankedPaper:
    posts = (x_post(),) if posts is None else posts
    by_source = {"x": {"reposts": 1000, "likes": 155}} if by_source is None else by_source
    return RankedPaper(
        paper=paper,
        score=sum(p.score for p in posts),
        by_source=MappingProxyType(by_source),
        top_posts=posts,
        as_of=as_of,
    )


def digest(*papers: RankedPaper, generated_at: dt.datetime = FETCHED) -> Digest:
    return Digest(
        day=DAY,
        window=Window.for_day(DAY),
        categories=(),
        papers=papers,
        generated_at=generated_at,
        threshold=50,
    )


@pytest.fixture(scope="module")
def reference_text() -> str:
    from tests.conftest import shared_dir

    return (shared_dir() / "reference" / "hot-papers-2020-12-22.md").read_text("utf-8")


def test_front_matter_is_the_reference_byte_for_byte(reference_text):
    ours = render_markdown(digest(ranked()))
    head = reference_text.split("# 1. ", 1)[0]
    assert ours.startswith(head)
    assert head.count("\n") == 17


def test_a_section_is_the_reference_layout_line_for_line(reference_text):
    ours = render_markdown(digest(ranked())).split("# 1. ", 1)[1]
    theirs = reference_text.split("# 1. ", 1)[1].split("# 2. ", 1)[0]
    ours_lines, their_lines = ours.split("\n"), theirs.split("\n")
    assert len(ours_lines) == len(their_lines)
    blockquote = 11
    for i, (mine, ref) in enumerate(zip(ours_lines, their_lines, strict=True)):
        if i != blockquote:
            assert mine == ref, f"line {i}"
    # The reference's tweet also showed a picture link, which is not in this post's text.
    assert ours_lines[blockquote] == (
        '<blockquote class="twitter-tweet"><p lang="en" dir="ltr">'
        "LieTransformer: Equivariant self-attention for Lie Groups<br>"
        'pdf: <a href="https://t.co/NTiZMzwFoO">https://t.co/NTiZMzwFoO</a><br>'
        'abs: <a href="https://t.co/Lho5i79dLy">https://t.co/Lho5i79dLy</a></p>'
        "&mdash; AK (@ak92501) "
        '<a href="https://twitter.com/ak92501/status/1341202937956233217?ref_src=twsrc%5Etfw">'
        "December 22, 2020</a></blockquote>"
    )
    assert their_lines[blockquote].startswith(ours_lines[blockquote].split("</p>")[0])


def test_exact_text_of_a_small_digest():
    paper = Paper(
        arxiv_id="2101.00001",
        title="A Small Paper",
        abstract="It is small.",
        authors=("Ada Lovelace", "Alan Turing"),
        primary_category="cs.LG",
        categories=("cs.LG", "cs.AI"),
        published=FETCHED,
        updated=FETCHED,
    )
    post = x_post("small & <b>bold</b> https://arxiv.org/abs/2101.00001?a=1&b=2", reposts=40)
    text = render_markdown(
        digest(ranked(paper, (post,), {"x": {"reposts": 40, "likes": 155}}), generated_at=FETCHED)
    )
    assert text == (
        "---\n"
        "title: Hot Papers 2020-12-22\n"
        "date: 2020-12-23T10:50:00.Z\n"
        'template: "post"\n'
        "draft: false\n"
        'slug: "hot-papers-2020-12-22"\n'
        'category: "arXiv"\n'
        "tags:\n"
        '  - "arXiv"\n'
        '  - "Twitter"\n'
        '  - "Machine Learning"\n'
        '  - "Computer Science"\n'
        'description: "Hot papers 2020-12-22"\n'
        'socialImage: "/media/flying-marine.jpg"\n'
        "\n"
        "---\n"
        "\n"
        "# 1. A Small Paper\n"
        "\n"
        "Ada Lovelace, Alan Turing\n"
        "\n"
        "- retweets: 40, favorites: 155 (12/23/2020 10:50:00)\n"
        "\n"
        "- links: [abs](https://arxiv.org/abs/2101.00001) | [pdf](https://arxiv.org/pdf/2101.00001)\n"
        "- [cs.LG](https://arxiv.org/list/cs.LG/recent) | [cs.AI](https://arxiv.org/list/cs.AI/recent)\n"
        "\n"
        "It is small.\n"
        "\n"
        '<blockquote class="twitter-tweet"><p lang="en" dir="ltr">'
        "small &amp; &lt;b&gt;bold&lt;/b&gt; "
        '<a href="https://arxiv.org/abs/2101.00001?a=1&amp;b=2">'
        "https://arxiv.org/abs/2101.00001?a=1&amp;b=2</a></p>&mdash; AK (@ak92501) "
        '<a href="https://twitter.com/ak92501/status/1341202937956233217?ref_src=twsrc%5Etfw">'
        "December 22, 2020</a></blockquote>\n"
        '<script async src="https://platform.twitter.com/widgets.js" charset="utf-8"></script>\n'
        "\n"
        "\n"
        "\n"
        "\n"
    )  # fmt: skip


def test_papers_are_numbered_best_first_and_parse_back():
    bow = PAPERS["2012.11552"]
    post = x_post(post_id="2", reposts=399, likes=88)
    second = ranked(bow, (post,), {"x": {"reposts": 399, "likes": 88}})
    text = render_markdown(digest(ranked(), second))
    _, sections = parse_post(text)
    assert [(s.rank, s.retweets, s.favorites) for s in sections] == [(1, 1000, 155), (2, 399, 88)]
    assert sections[1].categories == ("cs.CV", "cs.LG")
    assert sections[1].links == (
        "- links: [abs](https://arxiv.org/abs/2012.11552) | [pdf](https://arxiv.org/pdf/2012.11552)"
    )


def test_html_in_post_text_and_names_is_escaped():
    evil = x_post(
        'Hi <script>alert("x")</script> & <img src=x onerror=alert(1)>\nline two',
        author="eve",
        name="<b>Eve</b> & co",
        lang='en"><script>',
    )
    text = render_markdown(digest(ranked(posts=(evil,))))
    assert "<script>alert" not in text
    assert "<img" not in text
    assert "<b>Eve" not in text
    assert (
        '&lt;script&gt;alert("x")&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;' in text
    )
    assert "<br>line two" in text
    assert "&mdash; &lt;b&gt;Eve&lt;/b&gt; &amp; co (@eve)" in text
    assert 'lang="en&quot;&gt;&lt;script&gt;"' in text
    # The only script element is the widget loader.
    assert text.count("<script") == 1


def test_no_extra_lines_when_only_x_contributed():
    text = render_markdown(digest(ranked()))
    assert "hacker news" not in text
    assert "hugging face" not in text
    assert '  - "Hacker News"' not in text


def test_hacker_news_and_hugging_face_lines_when_they_contributed():
    posts = (
        x_post(),
        other_post("hackernews", {"points": 70, "comments": 12}, "Show HN: <LieTransformer>"),
        other_post("huggingface", {"upvotes": 12}),
    )
    by_source = {
        "x": {"reposts": 1000, "likes": 155},
        "hackernews": {"points": 70, "comments": 12},
        "huggingface": {"upvotes": 12},
    }
    text = render_markdown(digest(ranked(posts=posts, by_source=by_source)))
    lines = text.split("\n")
    at = lines.index("- retweets: 1000, favorites: 155 (12/23/2020 10:50:00)")
    assert lines[at + 1 : at + 4] == ["- Hacker News: 70 points", "- Hugging Face: 12 upvotes", ""]
    assert '  - "Hacker News"' in text
    assert '  - "Hugging Face"' in text
    # Other sources' posts are plain blockquotes linking the post, escaped too.
    assert (
        "<blockquote><p>Show HN: &lt;LieTransformer&gt;</p>&mdash; hn_user on Hacker News, "
        '70 points, 12 comments <a href="https://example.org/hackernews/25500000">'
        "December 22, 2020</a></blockquote>\n"
    ) in text
    # The reference parser still reads the section.
    _, (section,) = parse_post(text)
    assert (section.retweets, section.favorites) == (1000, 155)


def test_a_paper_only_hacker_news_found():
    only_hn = ranked(
        posts=(other_post("hackernews", {"points": 80}),), by_source={"hackernews": {"points": 80}}
    )
    assert popularity_lines(only_hn) == [
        "- retweets: 0, favorites: 0 (12/23/2020 10:50:00)",
        "- Hacker News: 80 points",
    ]
    text = render_markdown(digest(only_hn))
    assert '  - "Twitter"' not in text
    assert '  - "Hacker News"' in text


def test_without_a_fetch_time_the_counts_line_has_no_stamp():
    assert popularity_lines(ranked(as_of=None)) == ["- retweets: 1000, favorites: 155"]


def test_the_date_is_utc_whatever_the_zone():
    tokyo = dt.timezone(dt.timedelta(hours=9))
    evening = dt.datetime(2020, 12, 23, 19, 50, tzinfo=tokyo)
    text = render_markdown(digest(ranked(), generated_at=evening))
    assert "date: 2020-12-23T10:50:00.Z\n" in text


def test_an_empty_digest_is_the_front_matter_alone():
    text = render_markdown(digest())
    assert text.endswith("---\n\n")
    assert "# 1." not in text
    assert '  - "Twitter"' in text  # the seed's tag set


def test_urls_in_post_text_stop_before_sentence_punctuation():
    from bot.render.markdown import _text_html

    out = _text_html(
        "See https://t.co/abc, and (https://t.co/xyz). Also https://en.wikipedia.org/wiki/A_(b)!"
    )
    assert '<a href="https://t.co/abc">https://t.co/abc</a>,' in out
    assert '(<a href="https://t.co/xyz">https://t.co/xyz</a>).' in out
    assert 'href="https://en.wikipedia.org/wiki/A_(b)"' in out
