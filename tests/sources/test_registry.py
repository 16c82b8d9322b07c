"""The source registry: one declaration per source, which settings, docs and display follow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.core.models import Mention, Metric, RankedPaper
from bot.render.markdown import popularity_lines
from bot.settings import Settings, load_settings
from bot.sources.registry import (
    BY_KEY,
    REGISTRY,
    SECRET_VARIABLES,
    SEED,
    default_weights,
    metrics_text,
    post_label,
    readme_tables,
    source_name,
)
from bot.storage.tables import METRIC_COLUMNS
from bot.ui.embeds import score_text
from bot.ui.messages import about_embed
from tests.storage.factories import make_paper

README = Path(__file__).resolve().parents[2] / "README.md"


def test_keys_and_names_are_unique() -> None:
    assert len({e.key for e in REGISTRY}) == len(REGISTRY)
    assert len({e.name for e in REGISTRY}) == len(REGISTRY)
    assert [e for e in REGISTRY if e.seed] == [SEED]


@pytest.mark.parametrize("entry", REGISTRY, ids=lambda e: e.key)
def test_every_metric_has_a_column_and_a_weight_is_a_metric(entry) -> None:
    for shown in (*entry.metrics, *entry.markdown_metrics):
        assert shown.metric in METRIC_COLUMNS
    assert set(map(str, entry.default_weights)) <= {m.value for m in Metric}


def test_settings_have_a_section_per_source_and_the_secrets_come_from_the_registry() -> None:
    settings = Settings()
    for entry in REGISTRY:
        assert isinstance(getattr(settings.sources, entry.key), entry.settings_model)
    assert "BLUESKY_APP_PASSWORD" in SECRET_VARIABLES
    assert "X_BEARER_TOKEN" in SECRET_VARIABLES
    assert default_weights() == {k: dict(v) for k, v in Settings().ranking.weights.items()}


def test_bluesky_needs_no_account_and_counts_likes_reposts_and_quotes() -> None:
    assert Settings().sources.bluesky.enabled is True
    assert default_weights()["bluesky"] == {"likes": 1.0, "reposts": 1.0, "quotes": 1.0}


def test_readme_tables_are_the_registry_s() -> None:
    text = README.read_text("utf-8")
    block = re.search(r"<!-- sources:start[^>]*-->\n(.*?)<!-- sources:end -->", text, re.S)
    assert block, "README lacks the generated sources block"
    assert block.group(1) == readme_tables(), "run: python -m bot.sources.registry"


def test_unknown_weight_keys_are_refused(monkeypatch) -> None:
    from bot.core.errors import ConfigError

    monkeypatch.setenv("HOTPAPERS_RANKING__WEIGHTS__X__FAVOURITES", "1")
    with pytest.raises(ConfigError, match=r"`ranking\.weights\.x\.favourites`: unknown metric"):
        load_settings(environ={})
    monkeypatch.delenv("HOTPAPERS_RANKING__WEIGHTS__X__FAVOURITES")
    monkeypatch.setenv("HOTPAPERS_RANKING__WEIGHTS__MASTODON__LIKES", "1")
    with pytest.raises(ConfigError, match=r"`ranking\.weights\.mastodon`: unknown source"):
        load_settings(environ={})


def _ranked(by_source: dict[str, dict[str, int]]) -> RankedPaper:
    return RankedPaper(paper=make_paper(), score=0, by_source=by_source, top_posts=())


def test_display_follows_the_registry() -> None:
    ranked = _ranked({"bluesky": {"likes": 7, "reposts": 2, "quotes": 1}, "x": {"likes": 3}})
    assert score_text(ranked) == "**0** — Bluesky: 7 likes, 2 reposts · X: 0 reposts, 3 likes"
    assert popularity_lines(ranked) == [
        "- retweets: 0, favorites: 3",
        "- Bluesky: 7 likes, 2 reposts",
    ]
    assert metrics_text("hackernews", {"points": 5, "comments": 2}) == "5 points, 2 comments"
    assert source_name("bluesky") == "Bluesky"
    assert source_name("arxiv feed") == "arXiv feed"


def test_post_labels() -> None:
    import datetime as dt

    def mention(source: str, author: str, text: str = "") -> Mention:
        moment = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        return Mention(source, "1", "https://e.x/1", author, text, moment, ())

    assert post_label(mention("bluesky", "alice.bsky.social")) == "@alice.bsky.social"
    assert post_label(mention("x", "bob")) == "@bob"
    assert post_label(mention("hackernews", "carol", "A title")) == "HN: A title"


def test_about_lists_every_source_with_its_weights() -> None:
    weights = default_weights()
    embed = about_embed(weights, 50, 25)
    text = embed.fields[0].value or ""
    for entry in REGISTRY:
        assert f"• {entry.name}: " in text
    assert "• Bluesky: 1×likes + 1×reposts + 1×quotes" in text
    assert BY_KEY["huggingface"].name in text
