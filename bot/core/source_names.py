"""Display names of the sources, for any text a member reads (storage keys are for machines)."""

from __future__ import annotations

from collections.abc import Iterable

SOURCE_NAMES = {
    "arxiv": "arXiv",
    "arxiv feed": "arXiv feed",
    "x": "X",
    "bluesky": "Bluesky",
    "hackernews": "Hacker News",
    "huggingface": "Hugging Face",
}


def source_name(key: str) -> str:
    """``"hackernews"`` → ``"Hacker News"``; an unknown key is shown as it is."""
    return SOURCE_NAMES.get(key, key)


def source_list(keys: Iterable[str]) -> str:
    """Display names in a sentence: ``"X, Hacker News and Hugging Face"`` (sorted by name)."""
    names = sorted({source_name(k) for k in keys})
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"
