"""``/paper``, ``/hot`` and ``/about`` driven through INTERACTION_CREATE on the fake Discord."""

from __future__ import annotations

import pytest

from bot.fakes.demo import load_dataset
from tests.bot.conftest import buttons, said


@pytest.fixture
async def ingested(botworld):
    await botworld.ingest_reference_day()
    return botworld


# -- /paper -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "2012.11552",
        "arXiv:2012.11552v1",
        "https://arxiv.org/abs/2012.11552v1",
        "https://arxiv.org/pdf/2012.11552.pdf",
        "Online Bag-of-Visual-Words",
    ],
)
async def test_paper_by_id_url_or_title_words(ingested, query):
    result, cb = await ingested.run("paper", query=query)
    assert cb.deferred  # the look-up may reach arXiv: deferred before the deadline
    (message,) = await result.followups(count=1)
    assert not message["flags"] & 64  # a look-up is shared with the channel
    embed = message["embeds"][0]
    assert embed["title"].startswith("Online Bag-of-Visual-Words Generation")
    assert embed["url"] == "https://arxiv.org/abs/2012.11552"
    assert "Score" in said(message)  # it was shared today, so its score is shown
    links = {b["label"]: b["url"] for b in buttons(message)}
    assert links == {
        "Abstract": "https://arxiv.org/abs/2012.11552",
        "PDF": "https://arxiv.org/pdf/2012.11552",
        "HTML": "https://arxiv.org/html/2012.11552",
    }
    assert all(b["style"] == 5 for b in buttons(message))  # link buttons, no custom ids


async def test_paper_unknown_to_storage_is_fetched_from_arxiv(botworld):
    # Nothing ingested: the id is looked up on (fake) arXiv.
    result, cb = await botworld.run("paper", query="2012.10885")
    assert cb.deferred
    (message,) = await result.followups(count=1)
    assert "LieTransformer" in said(message)
    assert await botworld.rt.papers.get("2012.10885") is not None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("2012.99999", "arXiv has no paper `2012.99999`"),
        ("https://arxiv.org/abs/not-an-id", "arXiv"),
        ("zzzqqq xyzzy plugh", "No paper matches"),
    ],
)
async def test_paper_errors_are_ephemeral_and_specific(ingested, query, expected):
    h = ingested.harness
    result, cb = await ingested.run("paper", query=query)
    if cb.deferred:
        messages = await result.followups(count=1)
        answer = messages[-1]
        assert answer["flags"] & 64
        text = said(answer)
    else:
        assert cb.ephemeral
        text = said(cb)
    assert expected in text
    assert "⚠️" in text
    assert len(text) < 300
    # Nothing public is left behind: no "thinking…" placeholder, no error in the channel.
    assert h.fake.messages(h.channel) == []


async def test_bad_id_is_refused_at_once_without_a_public_placeholder(ingested):
    _, cb = await ingested.run("paper", query="https://arxiv.org/abs/not-an-id")
    assert cb.type == 4
    assert cb.ephemeral
    assert "arXiv" in said(cb)


async def test_paper_autocomplete_offers_at_most_25_stored_matches(ingested):
    h = ingested.harness
    ids = [p["arxiv_id"] for p in load_dataset()["papers"]]
    stored = set(await ingested.rt.papers.get_many(ids))
    choices = await h.autocomplete("paper", focused="query", value="learning")
    assert 1 <= len(choices) <= 25
    for choice in choices:
        assert choice["value"] in stored
        assert choice["name"].endswith(f"({choice['value']})")
        assert 1 <= len(choice["name"]) <= 100
    assert await h.autocomplete("paper", focused="query", value="") == []


async def test_paper_autocomplete_is_capped_at_25(ingested, monkeypatch):
    h = ingested.harness
    many = [(f"2012.{i:05d}", f"Learning paper number {i}") for i in range(60)]

    async def autocomplete(prefix, *, limit=25):
        return many[:limit]

    monkeypatch.setattr(ingested.rt.paper_lookup, "autocomplete", autocomplete)
    choices = await h.autocomplete("paper", focused="query", value="learning")
    assert len(choices) == 25


# -- /hot -------------------------------------------------------------------------------------


async def test_hot_without_category_ranks_every_category(ingested):
    result, cb = await ingested.run("hot")
    assert cb.deferred
    (message,) = await result.followups(count=1)
    text = said(message)
    # The injected clock's date, not the wall clock's.
    assert message["embeds"][0]["title"] == "Hot now · 2020-12-23"
    lines = message["embeds"][0]["description"].splitlines()
    assert lines[0].startswith("**1.** [Online Bag-of-Visual-Words")
    assert "Evaluating Agents without Rewards" in lines[1]
    assert "all categories" in text


async def test_hot_with_category_and_days(ingested):
    result, _ = await ingested.run("hot", category="cs.cl", days=2)
    (message,) = await result.followups(count=1)
    description = message["embeds"][0]["description"]
    assert "Domain specific BERT" in description
    assert "Online Bag-of-Visual-Words" not in description  # cs.CV/cs.LG, not cs.CL


async def test_hot_uses_the_servers_categories(ingested):
    await ingested.rt.guild_settings.add_category(ingested.guild_id, "cs.CL")
    result, _ = await ingested.run("hot", days=2)
    (message,) = await result.followups(count=1)
    assert "Domain specific BERT" in said(message)
    assert "Online Bag-of-Visual-Words" not in said(message)


async def test_hot_with_nothing_shared_says_so(botworld):
    result, _ = await botworld.run("hot", category="math.AG")
    (message,) = await result.followups(count=1)
    assert said(message) == "No paper in math.AG has been shared today yet."


async def test_hot_unknown_category_suggests(ingested):
    h = ingested.harness
    _, cb = await ingested.run("hot", category="cs.LF")
    assert cb.type == 4
    assert cb.ephemeral
    assert "Unknown arXiv category `cs.LF`" in said(cb)
    assert "Did you mean" in said(cb)
    assert h.fake.messages(h.channel) == []


async def test_hot_category_autocomplete_is_the_taxonomy(ingested):
    choices = await ingested.harness.autocomplete("hot", focused="category", value="cs.c")
    values = [c["value"] for c in choices]
    assert "cs.CV" in values
    assert "cs.CL" in values
    assert len(choices) <= 25


# -- /about -----------------------------------------------------------------------------------


async def test_about_explains_the_ranking(botworld):
    _, cb = await botworld.run("about")
    assert cb.type == 4
    assert cb.ephemeral
    text = said(cb)
    assert "How ranking works" in text
    assert "1×reposts + 1×likes" in text
    assert "**50**" in text
