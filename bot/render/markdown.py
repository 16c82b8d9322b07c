"""Digest → the seed's "Hot Papers" markdown post (see shared/reference/)."""

from __future__ import annotations

import datetime as dt
import html
import re

from bot.core.models import Digest, Mention, RankedPaper, ScoredPost
from bot.sources.registry import REGISTRY, SEED, entry, metrics_text

_URL = re.compile(r"https?://[^\s<>\"]+")


def _front_matter(digest: Digest) -> str:
    day = digest.day.isoformat()
    contributed = {src for p in digest.papers for src in p.by_source}
    tags = ["arXiv"]
    tags += [entry.tag for entry in REGISTRY if entry.key in contributed]
    if not contributed:
        tags.append(SEED.tag)
    tags += ["Machine Learning", "Computer Science"]
    tag_lines = "".join(f'  - "{t}"\n' for t in tags)
    return (
        "---\n"
        f"title: Hot Papers {day}\n"
        f"date: {digest.generated_at.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%S}.Z\n"
        'template: "post"\n'
        "draft: false\n"
        f'slug: "hot-papers-{day}"\n'
        'category: "arXiv"\n'
        "tags:\n"
        f"{tag_lines}"
        f'description: "Hot papers {day}"\n'
        'socialImage: "/media/flying-marine.jpg"\n'
        "\n"
        "---\n"
        "\n"
    )


def _trim_url(url: str) -> str:
    """Drop the sentence punctuation a URL was written against (keep balanced brackets)."""
    while url and url[-1] in ".,;:!?'\"":
        url = url[:-1]
    while url.endswith(")") and url.count("(") < url.count(")"):
        url = url[:-1]
    return url


def _text_html(text: str) -> str:
    """Post text as the embed HTML the seed printed: escaped, links anchored, <br> lines."""
    parts: list[str] = []
    last = 0
    for m in _URL.finditer(text):
        raw = _trim_url(m.group(0))
        parts.append(html.escape(text[last : m.start()], quote=False))
        url = html.escape(raw)
        parts.append(f'<a href="{url}">{url}</a>')
        last = m.start() + len(raw)
    parts.append(html.escape(text[last:], quote=False))
    return "".join(parts).replace("\n", "<br>")


def _long_date(moment: dt.datetime) -> str:
    moment = moment.astimezone(dt.UTC)
    return f"{moment:%B} {moment.day}, {moment.year}"


def _post_block(post: ScoredPost) -> str:
    m: Mention = post.mention
    when = _long_date(m.created_at)
    if m.source == SEED.key:
        name = html.escape(m.author_name or m.author, quote=False)
        handle = html.escape(m.author)
        lang = html.escape(m.lang or "en")
        href = html.escape(f"{m.url}?ref_src=twsrc%5Etfw")
        return (
            f'<blockquote class="twitter-tweet"><p lang="{lang}" dir="ltr">{_text_html(m.text)}'
            f'</p>&mdash; {name} (@{handle}) <a href="{href}">{when}</a></blockquote>\n'
            '<script async src="https://platform.twitter.com/widgets.js" charset="utf-8">'
            "</script>\n"
        )
    found = entry(m.source)
    where = found.tag if found else m.source
    counts = metrics_text(m.source, m.metrics) if found else ""
    detail = f", {counts}" if counts else ""
    return (
        f"<blockquote><p>{_text_html(m.text)}</p>&mdash; "
        f"{html.escape(m.author_name or m.author, quote=False)} on {where}{detail} "
        f'<a href="{html.escape(m.url)}">{when}</a></blockquote>\n'
    )


def popularity_lines(paper: RankedPaper) -> list[str]:
    """The seed's counts line, plus one line per other source that contributed."""
    stamp = f" ({paper.as_of.astimezone(dt.UTC):%m/%d/%Y %H:%M:%S})" if paper.as_of else ""
    seed = paper.by_source.get(SEED.key, {})
    counts = ", ".join(f"{s.unit}: {seed.get(s.metric, 0)}" for s in SEED.markdown_metrics)
    lines = [f"- {counts}{stamp}"]
    for other in REGISTRY:
        metrics = paper.by_source.get(other.key)
        if other.seed or not metrics:
            continue
        shown = ", ".join(f"{metrics.get(m.metric, 0):,} {m.unit}" for m in other.markdown_metrics)
        lines.append(f"- {other.name}: {shown}")
    return lines


def render_paper(rank: int, paper: RankedPaper) -> str:
    p = paper.paper
    cats = " | ".join(f"[{c}](https://arxiv.org/list/{c}/recent)" for c in p.categories)
    posts = "".join(_post_block(post) + "\n" for post in paper.top_posts)
    return (
        f"# {rank}. {p.title}\n\n"
        f"{', '.join(p.authors)}\n\n" + "\n".join(popularity_lines(paper)) + "\n\n"
        f"- links: [abs]({p.abs_url}) | [pdf]({p.pdf_url})\n"
        f"- {cats}\n\n"
        f"{p.abstract}\n\n"
        f"{posts}\n\n\n"
    )


def render_markdown(digest: Digest) -> str:
    """The whole post: front matter, then one section per paper, best first."""
    return _front_matter(digest) + "".join(
        render_paper(i, paper) for i, paper in enumerate(digest.papers, start=1)
    )
