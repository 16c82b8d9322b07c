"""Digests and papers → Discord embeds and link-button views."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence

import discord

from bot.core.heat import is_rising
from bot.core.models import Digest, Paper, RankedPaper, ScoredPost
from bot.core.taxonomy import CATEGORIES
from bot.sources.registry import (
    REGISTRY,
    metrics_text,
    post_label,
    source_list,
    source_name,
)
from bot.ui import limits
from bot.ui.text import authors_line, clip, inline_code, link_text, neutralise, safe, safe_url

COLOR = discord.Colour(0xB31B1B)  # arXiv red
DIGEST_ABSTRACT = 700
PAPER_ABSTRACT = 1800


def categories_text(paper: Paper, limit: int = limits.FIELD_VALUE) -> str:
    parts = []
    for cat in paper.categories:
        name = CATEGORIES[cat].name if cat in CATEGORIES else None
        label = inline_code(cat) + (f" {name}" if name else "")
        parts.append(label)
    return clip(" · ".join(parts) or "—", limit)


def score_text(ranked: RankedPaper) -> str:
    """``**1,155** — X: 1,000 reposts, 155 likes · Hacker News: 120 points``."""
    parts = [
        f"{source_name(source)}: {metrics_text(source, metrics)}"
        for source, metrics in sorted(ranked.by_source.items())
    ]
    return clip(f"**{ranked.score:,.0f}** — " + " · ".join(parts), limits.FIELD_VALUE)


def standing_text(ranked: RankedPaper, *, explain: bool = False) -> str:
    """Why a paper ranks beyond its score: its heat in its field, and whether it is rising
    (``explain``: say so when it is not, too).

    ``🔥 top 3% of `math.AG` on 2026-12-01 (142 papers) · 📈 rising: +120 in 24 h``."""
    parts = []
    heat = ranked.heat
    if heat is not None:
        top = max(1, math.ceil(100 - heat.percentile - 1e-9))
        cohort = heat.cohort
        papers = f"{cohort.size} paper{'s' if cohort.size != 1 else ''}"
        parts.append(
            f"🔥 top {top}% of {inline_code(cohort.category)} on {cohort.day.isoformat()} "
            f"({papers})"
        )
    if ranked.second_chance:
        parts.append(f"📈 second chance: +{ranked.gain or 0:,.0f} in the last 24 h")
    elif ranked.gain is not None and is_rising(ranked):
        parts.append(f"📈 rising: +{ranked.gain:,.0f} in the last 24 h")
    elif explain and ranked.gain is not None:
        parts.append(f"not rising: +{ranked.gain:,.0f} in the last 24 h")
    return " · ".join(parts)


def post_line(post: ScoredPost) -> str:
    m = post.mention
    who = post_label(m)
    return f"• [{clip(link_text(who), 80)}]({safe_url(m.url)}) — {post.score:,.0f}"


def posts_text(posts: Sequence[ScoredPost], limit: int = limits.FIELD_VALUE) -> str:
    lines: list[str] = []
    used = 0
    for post in posts:
        line = post_line(post)
        if used + len(line) + 1 > limit:
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)


def paper_embed(
    paper: Paper,
    *,
    ranked: RankedPaper | None = None,
    rank: int | None = None,
    abstract_limit: int = DIGEST_ABSTRACT,
    explain: bool = False,
) -> discord.Embed:
    """One paper: linked title, authors, abstract, categories, score breakdown, top posts;
    ``explain`` (``/paper``): why it ranks, rising or not, and a word when nobody posted it."""
    prefix = f"{rank}. " if rank is not None else ""
    title = clip(prefix + safe(" ".join(paper.title.split())), limits.TITLE)
    description = f"{authors_line(paper.authors)}\n\n{clip(safe(paper.abstract), abstract_limit)}"
    embed = discord.Embed(
        title=title,
        url=safe_url(paper.abs_url),
        description=clip(description, limits.DESCRIPTION),
        colour=COLOR,
    )
    embed.add_field(name="Categories", value=categories_text(paper), inline=False)
    if ranked is not None:
        embed.add_field(name="Score", value=score_text(ranked), inline=False)
        standing = standing_text(ranked, explain=explain)
        if standing:
            embed.add_field(
                name="Why it ranks", value=clip(standing, limits.FIELD_VALUE), inline=False
            )
        posts = posts_text(ranked.top_posts[:5])
        if posts:
            embed.add_field(name="Top posts", value=posts, inline=False)
    elif explain:
        embed.add_field(
            name="Score", value="Nobody has posted this paper in the last 7 days.", inline=False
        )
    footer = f"arXiv:{paper.arxiv_id}"
    if paper.version:
        footer += f"v{paper.version}"
    footer += f" · submitted {paper.published:%Y-%m-%d}"
    if paper.journal_ref:
        footer += f" · {neutralise(' '.join(paper.journal_ref.split()))}"
    embed.set_footer(text=clip(footer, 200))
    return embed


def paper_links(paper: Paper) -> discord.ui.View:
    """Link buttons: abstract, PDF, HTML."""
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label="Abstract", url=safe_url(paper.abs_url)))
    view.add_item(discord.ui.Button(label="PDF", url=safe_url(paper.pdf_url)))
    view.add_item(discord.ui.Button(label="HTML", url=safe_url(paper.html_url)))
    return view


def digest_header(digest: Digest, categories: Sequence[str]) -> str:
    """The message that opens a daily post."""
    day = digest.day.isoformat()
    cats = ", ".join(f"`{c}`" for c in categories) if categories else "all categories"
    n = len(digest.papers)
    count = f"{n} paper{'s' if n != 1 else ''}"
    return clip(f"## 🔥 Hot Papers {day}\n{cats} · {count} {ranked_by(digest)}", limits.CONTENT)


_REPOSTS_AND_LIKES = frozenset({"reposts", "likes"})
# The sources whose score is reposts + likes by default (the seed's X).
_ENGAGEMENT = frozenset(
    e.key for e in REGISTRY if set(map(str, e.default_weights)) <= _REPOSTS_AND_LIKES
)


def ranked_by(digest: Digest) -> str:
    """What the ranking counted: reposts and likes when only such sources (the seed's X)
    contributed, else the sources by name, so a day carried by Hacker News is not credited to
    reposts."""
    sources = {source for ranked in digest.papers for source in ranked.by_source}
    if sources <= _ENGAGEMENT:
        return "ranked by reposts and likes"
    return f"ranked by social attention on {source_list(sources)}"


def compact_embed(
    digest: Digest, categories: Sequence[str], *, title: str | None = None
) -> discord.Embed:
    """The whole digest as one ranked embed."""
    lines = []
    for i, ranked in enumerate(digest.papers, start=1):
        p = ranked.paper
        name = clip(link_text(" ".join(p.title.split())), 150)
        score = f"**{ranked.score:,.0f}**"
        mark = " · 📈" if ranked.second_chance else ""
        category = inline_code(p.primary_category)
        lines.append(f"**{i}.** [{name}]({safe_url(p.abs_url)}) — {score} · {category}{mark}")
    description = ""
    for line in lines:
        if len(description) + len(line) + 1 > limits.DESCRIPTION - 50:
            description += f"\n…and {len(lines) - description.count(chr(10)) - 1} more"
            break
        description = f"{description}\n{line}" if description else line
    cats = ", ".join(categories) if categories else "all categories"
    embed = discord.Embed(
        title=clip(title or f"Hot Papers {digest.day.isoformat()}", limits.TITLE),
        description=description or "No papers.",
        colour=COLOR,
    )
    embed.set_footer(
        # The weights are configuration: the footer names no formula, /about shows the one in use.
        text=clip(f"{cats} · ranked by weighted social attention — /about explains", 300)
    )
    return embed


def pack(count: int) -> list[tuple[int, ...]]:
    """The papers (by index) of each message of a digest of ``count`` papers, best first."""
    per = limits.PAPERS_PER_MESSAGE
    return [tuple(range(i, min(i + per, count))) for i in range(0, count, per)]


def part_marker(day: dt.date, part: int, parts: int) -> str:
    """What tells a message of a day's digest apart, and which part it is, when the bot reads
    its channel back (crash recovery): it survives in fetched messages, unlike the nonce."""
    return f"Hot Papers {day.isoformat()} · part {part} of {parts}"


_MARKER = re.compile(r"Hot Papers (\d{4}-\d{2}-\d{2}) · part (\d+) of (\d+)\Z")
_HEADER = re.compile(r"(?:## 🔥 |\*\*)Hot Papers (\d{4}-\d{2}-\d{2})\b")


def read_marker(content: str, footers: Sequence[str]) -> tuple[dt.date, int] | None:
    """``(day, part)`` of a digest message the bot posted: part 0 is the header (or the one
    message of a compact or empty digest), parts 1 to n its paper messages. None otherwise."""
    for footer in footers:
        found = _MARKER.search(footer)
        if found:
            return dt.date.fromisoformat(found.group(1)), int(found.group(2))
    head = _HEADER.match(content)
    if head:
        return dt.date.fromisoformat(head.group(1)), 0
    return None


def papers_message(
    digest: Digest, indices: Sequence[int], part: int, parts: int
) -> tuple[list[discord.Embed], discord.ui.View]:
    """One message of a digest: the papers at ``indices`` (one embed each, abstracts shortened
    until the message fits Discord's 6,000 characters) and a row of link buttons per paper.
    The last embed's footer carries the part marker."""
    marker = part_marker(digest.day, part, parts)
    abstract = DIGEST_ABSTRACT
    while True:
        embeds = [
            paper_embed(
                digest.papers[i].paper, ranked=digest.papers[i], rank=i + 1, abstract_limit=abstract
            )
            for i in indices
        ]
        last = embeds[-1]
        last.set_footer(text=clip(f"{last.footer.text} · {marker}", limits.FOOTER))
        if sum(limits.embed_size(e) for e in embeds) <= limits.EMBED_TOTAL or abstract <= 100:
            break
        abstract -= 100
    view = discord.ui.View(timeout=None)
    for row, i in enumerate(indices):
        paper = digest.papers[i].paper
        for label, url in (
            (f"#{i + 1} Abstract", paper.abs_url),
            ("PDF", paper.pdf_url),
            ("HTML", paper.html_url),
        ):
            view.add_item(discord.ui.Button(label=label, url=safe_url(url), row=row))
    return limits.fit_embeds(embeds), view


def digest_messages(digest: Digest) -> list[tuple[list[discord.Embed], discord.ui.View]]:
    """The paper messages of a digest, as posted (four papers each), best first."""
    groups = pack(len(digest.papers))
    return [
        papers_message(digest, indices, part, len(groups))
        for part, indices in enumerate(groups, start=1)
    ]
