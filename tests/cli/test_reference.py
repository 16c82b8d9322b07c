"""The offline demo reproduces the reference "Hot Papers" post, section by section."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from bot.cli import main


@dataclass(frozen=True)
class Section:
    rank: int
    title: str
    authors: str
    retweets: int
    favorites: int
    links: str
    categories: tuple[str, ...]
    abstract: str


def _norm(text: str) -> str:
    return " ".join(text.split())


def _demojibake(text: str) -> str:
    # The reference post was saved through Mac Roman: "P√©rez" is "Pérez".
    try:
        return text.encode("mac_roman").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def parse_post(markdown: str) -> tuple[str, list[Section]]:
    front, body = markdown.split("\n---\n", 1)
    sections = []
    for chunk in re.split(r"\n(?=# \d+\. )", body):
        lines = chunk.strip("\n").split("\n")
        head = re.match(r"# (\d+)\. (.*)", lines[0])
        if not head:
            continue
        counts = re.match(r"- retweets: (\d+), favorites: (\d+)", lines[4])
        assert counts, lines[4]
        rest = [ln for ln in lines[5:] if ln.strip()]
        links = next(ln for ln in rest if ln.startswith("- links:"))
        cats_line = rest[rest.index(links) + 1]
        abstract = rest[rest.index(links) + 2]
        sections.append(
            Section(
                rank=int(head.group(1)),
                title=_norm(head.group(2)),
                authors=_norm(_demojibake(lines[2])),
                retweets=int(counts.group(1)),
                favorites=int(counts.group(2)),
                links=links,
                categories=tuple(
                    re.findall(r"\[([^\]]+)\]\(https://arxiv\.org/list/\1/recent\)", cats_line)
                ),
                abstract=_norm(_demojibake(abstract)),
            )
        )
    return front, sections


_BLOCKQUOTE = re.compile(
    r'<blockquote class="twitter-tweet"><p[^>]*>(.*?)</p>.*?twitter\.com/\w+/status/(\d+)', re.S
)


def _posts_by_section(markdown: str) -> dict[int, dict[str, str]]:
    """Rank → {status id: post text html} for every embedded post."""
    found: dict[int, dict[str, str]] = {}
    for chunk in re.split(r"\n(?=# \d+\. )", markdown.split("\n---\n", 1)[1]):
        head = re.match(r"\s*# (\d+)\. ", chunk)
        if head:
            found[int(head.group(1))] = {s: t for t, s in _BLOCKQUOTE.findall(chunk)}
    return found


def _visible(html_text: str) -> str:
    """What a reader sees of a post: tags dropped, links by their text, spaces folded."""
    import html as html_lib

    text = re.sub(r"<br\s*/?>", " ", html_text)
    text = re.sub(r"<[^>]+>", "", text)
    return " ".join(_demojibake(html_lib.unescape(text)).split())


def _reference_text() -> str:
    from tests.conftest import shared_dir

    return (shared_dir() / "reference" / "hot-papers-2020-12-22.md").read_text("utf-8")


@pytest.fixture(scope="module")
def reference() -> tuple[str, list[Section]]:
    from tests.conftest import shared_dir

    text = (shared_dir() / "reference" / "hot-papers-2020-12-22.md").read_text("utf-8")
    return parse_post(text)


def test_demo_reproduces_the_reference_post(reference, capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    ours_front, ours = parse_post(out)
    ref_front, ref = reference
    assert len(ref) == 16
    assert [s.rank for s in ours] == list(range(1, 17))
    for mine, theirs in zip(ours, ref, strict=True):
        assert mine.title == theirs.title
        assert mine.authors == theirs.authors
        assert (mine.retweets, mine.favorites) == (theirs.retweets, theirs.favorites)
        assert mine.links == theirs.links
        assert mine.categories == theirs.categories
        assert mine.abstract == theirs.abstract
    # The last paper scores 30 + 23 = 53: the list stops below 50.
    assert ours[-1].retweets + ours[-1].favorites >= 50
    # Front matter: same keys, same title and slug, the fetch time as the date.
    for line in (
        "title: Hot Papers 2020-12-22",
        'slug: "hot-papers-2020-12-22"',
        "date: 2020-12-23T10:50:00.Z",
    ):
        assert line in ours_front
        assert line in ref_front
    # Under each paper, the post the reference shows, linked to X, with its text.
    ours_posts = _posts_by_section(out)
    ref_posts = _posts_by_section(_reference_text())
    for rank, posts in ref_posts.items():
        for status, text in posts.items():
            assert status in ours_posts[rank], (rank, status)
            assert _visible(ours_posts[rank][status]).startswith(_visible(text)[:60])
    assert out.count('<blockquote class="twitter-tweet">') >= 16
