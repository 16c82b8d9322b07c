"""Digest → JSON: the same data as the markdown post, for machines."""

from __future__ import annotations

import json
from typing import Any

from bot.core.models import Digest, RankedPaper
from bot.sources.registry import SEED


def _paper(rank: int, ranked: RankedPaper) -> dict[str, Any]:
    p = ranked.paper
    return {
        "rank": rank,
        "arxiv_id": p.arxiv_id,
        "version": p.version,
        "title": p.title,
        "authors": list(p.authors),
        "abstract": p.abstract,
        "primary_category": p.primary_category,
        "categories": list(p.categories),
        "published": p.published.isoformat(),
        "updated": p.updated.isoformat(),
        "comment": p.comment,
        "journal_ref": p.journal_ref,
        "doi": p.doi,
        "links": {"abs": p.abs_url, "pdf": p.pdf_url, "html": p.html_url},
        "score": ranked.score,
        # The seed's counts (X's reposts and likes), as the markdown post's first line.
        "retweets": ranked.by_source.get(SEED.key, {}).get("reposts", 0),
        "favorites": ranked.by_source.get(SEED.key, {}).get("likes", 0),
        "by_source": {src: dict(m) for src, m in ranked.by_source.items()},
        "as_of": ranked.as_of.isoformat() if ranked.as_of else None,
        # Its standing in its cohort (its category's papers of its arXiv day): a percentile.
        "heat": None if ranked.heat is None else round(ranked.heat.percentile, 1),
        "cohort": None
        if ranked.heat is None
        else {
            "category": ranked.heat.cohort.category,
            "day": ranked.heat.cohort.day.isoformat(),
            "size": ranked.heat.cohort.size,
        },
        "gain_24h": ranked.gain,
        "rising": ranked.rising,
        "second_chance": ranked.second_chance,
        "top_posts": [
            {
                "source": post.mention.source,
                "post_id": post.mention.post_id,
                "url": post.mention.url,
                "author": post.mention.author,
                "author_name": post.mention.author_name,
                "text": post.mention.text,
                "created_at": post.mention.created_at.isoformat(),
                "metrics": dict(post.mention.metrics),
                "score": post.score,
            }
            for post in ranked.top_posts
        ],
    }


def digest_to_dict(digest: Digest) -> dict[str, Any]:
    return {
        "title": f"Hot Papers {digest.day.isoformat()}",
        "date": digest.day.isoformat(),
        "window": {"start": digest.window.start.isoformat(), "end": digest.window.end.isoformat()},
        "generated_at": digest.generated_at.isoformat(),
        "categories": list(digest.categories),
        "threshold": digest.threshold,
        "ranking": digest.ranking.value,
        "sort": digest.sort.value,
        "failed_sources": dict(digest.failed_sources),
        "papers": [_paper(i, p) for i, p in enumerate(digest.papers, start=1)],
    }


def render_json(digest: Digest) -> str:
    return json.dumps(digest_to_dict(digest), ensure_ascii=False, indent=2) + "\n"
