"""Builders of core models for storage tests."""

from __future__ import annotations

import datetime as dt

from bot.core.models import Mention, Paper

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def make_paper(
    arxiv_id: str = "2503.00001",
    *,
    title: str = "A paper",
    abstract: str = "An abstract.",
    authors: tuple[str, ...] = ("Ada Lovelace",),
    categories: tuple[str, ...] = ("cs.LG",),
    published: dt.datetime = T0,
    **extra: object,
) -> Paper:
    return Paper(
        arxiv_id=arxiv_id,
        title=title,
        abstract=abstract,
        authors=authors,
        primary_category=categories[0],
        categories=categories,
        published=published,
        updated=published,
        **extra,  # type: ignore[arg-type]
    )


def make_mention(
    post_id: str = "1",
    *,
    source: str = "x",
    arxiv_ids: tuple[str, ...] = ("2503.00001",),
    created_at: dt.datetime = T0,
    metrics: dict[str, int] | None = None,
    text: str = "look at this paper",
) -> Mention:
    return Mention(
        source=source,
        post_id=post_id,
        url=f"https://example.org/{source}/{post_id}",
        author="someone",
        text=text,
        created_at=created_at,
        arxiv_ids=arxiv_ids,
        metrics={"reposts": 1, "likes": 2} if metrics is None else metrics,
        author_name="Some One",
        lang="en",
    )
