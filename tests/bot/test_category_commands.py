"""``/category list|add|remove|top`` driven through INTERACTION_CREATE."""

from __future__ import annotations

import pytest

from tests.bot.conftest import said


async def test_list_for_a_new_server_says_every_category(botworld):
    _, cb = await botworld.run("category", "list")
    assert cb.ephemeral
    assert "follows **every category**" in said(cb)


async def test_add_list_remove_round_trip(botworld):
    mod = botworld.mod
    _, cb = await botworld.run("category", "add", name=" CS.lg ", member=mod)
    assert cb.ephemeral
    assert said(cb) == "✅ This server now follows `cs.LG` Machine Learning."

    _, cb = await botworld.run("category", "add", name="cs.LG", member=mod)
    assert "already follows `cs.LG`" in said(cb)

    _, cb = await botworld.run("category", "add", name="cs", member=mod)
    assert "`cs` Computer Science (whole archive)" in said(cb)

    _, cb = await botworld.run("category", "list", member=botworld.reader)
    assert cb.ephemeral
    assert "• `cs` Computer Science (whole archive)\n• `cs.LG` Machine Learning" in said(cb)

    _, cb = await botworld.run("category", "remove", name="cs.lg", member=mod)
    assert cb.ephemeral
    assert said(cb) == "✅ Removed `cs.LG` Machine Learning."
    _, cb = await botworld.run("category", "remove", name="cs", member=mod)
    assert "The server now follows every category." in said(cb)
    assert await botworld.rt.guild_settings.categories(botworld.guild_id) == []


async def test_add_typo_suggests_close_categories(botworld):
    _, cb = await botworld.run("category", "add", name="cs.LF", member=botworld.mod)
    assert cb.ephemeral
    text = said(cb)
    assert "Unknown arXiv category `cs.LF`" in text
    assert "Did you mean" in text
    assert "`cs.LG`" in text
    assert await botworld.rt.guild_settings.categories(botworld.guild_id) == []


async def test_add_an_alias_stores_the_canonical_category(botworld):
    _, cb = await botworld.run("category", "add", name="cs.SY", member=botworld.mod)
    assert "`eess.SY`" in said(cb)
    assert await botworld.rt.guild_settings.categories(botworld.guild_id) == ["eess.SY"]


async def test_remove_a_category_the_server_does_not_follow(botworld):
    _, cb = await botworld.run("category", "remove", name="cs.CV", member=botworld.mod)
    assert cb.ephemeral
    assert "does not follow `cs.CV`" in said(cb)


async def test_at_most_25_categories(botworld):
    gid = botworld.guild_id
    archives = ["astro-ph", "cond-mat", "cs", "econ", "eess", "gr-qc", "hep-ex", "hep-lat"]
    archives += ["hep-ph", "hep-th", "math", "math-ph", "nlin", "nucl-ex", "nucl-th", "physics"]
    archives += ["q-bio", "q-fin", "quant-ph", "stat"]
    for name in [*archives, "cs.LG", "cs.CV", "cs.CL", "cs.AI", "stat.ML"]:
        await botworld.rt.guild_settings.add_category(gid, name)
    _, cb = await botworld.run("category", "add", name="math.AG", member=botworld.mod)
    assert cb.ephemeral
    assert "at most 25 categories" in said(cb)


async def test_add_autocomplete_is_the_taxonomy(botworld):
    h = botworld.harness
    choices = await h.autocomplete(
        "category", "add", focused="name", value="cs", member=botworld.mod
    )
    assert choices[0] == {"name": "cs — Computer Science (whole archive)", "value": "cs"}
    assert len(choices) == 25
    choices = await h.autocomplete(
        "category", "add", focused="name", value="machine learning", member=botworld.mod
    )
    values = [c["value"] for c in choices]
    assert "cs.LG" in values
    assert "stat.ML" in values


async def test_remove_autocomplete_offers_only_the_servers_categories(botworld):
    gid = botworld.guild_id
    for name in ("cs.LG", "cs.CV", "stat.ML"):
        await botworld.rt.guild_settings.add_category(gid, name)
    h = botworld.harness
    choices = await h.autocomplete(
        "category", "remove", focused="name", value="", member=botworld.mod
    )
    assert [c["value"] for c in choices] == ["cs.CV", "cs.LG", "stat.ML"]
    choices = await h.autocomplete(
        "category", "remove", focused="name", value="cs.", member=botworld.mod
    )
    assert [c["value"] for c in choices] == ["cs.CV", "cs.LG"]


async def test_top_of_a_category(botworld):
    await botworld.ingest_reference_day()
    result, cb = await botworld.run("category", "top", name="cs.LG")
    assert cb.deferred
    (message,) = await result.followups(count=1)
    embed = message["embeds"][0]
    assert embed["title"] == "Top papers · cs.LG"
    lines = embed["description"].splitlines()
    assert lines[0].startswith("**1.** [Online Bag-of-Visual-Words")  # cross-listed in cs.LG
    assert all("Domain specific BERT" not in line for line in lines)  # cs.CL only


async def test_top_of_an_archive_and_an_empty_category(botworld):
    await botworld.ingest_reference_day()
    result, _ = await botworld.run("category", "top", name="cs", days=2)
    (message,) = await result.followups(count=1)
    lines = message["embeds"][0]["description"].splitlines()
    assert len(lines) == 10  # the ten best of the whole archive
    assert lines[0].startswith("**1.** [LieTransformer")
    result, _ = await botworld.run("category", "top", name="math.AG", days=3)
    (message,) = await result.followups(count=1)
    assert said(message) == "No paper in `math.AG` has been shared in the last 3 days yet."


async def test_top_typo_is_an_ephemeral_suggestion(botworld):
    h = botworld.harness
    _, cb = await botworld.run("category", "top", name="cs.CVV")
    assert cb.type == 4
    assert cb.ephemeral
    assert "Did you mean `cs.CV`" in said(cb)
    assert h.fake.messages(h.channel) == []


@pytest.mark.parametrize("sub", ["add", "remove"])
async def test_members_without_manage_server_are_refused(botworld, sub):
    await botworld.rt.guild_settings.add_category(botworld.guild_id, "cs.LG")
    _, cb = await botworld.run("category", sub, name="cs.LG", member=botworld.reader)
    assert cb.ephemeral
    assert said(cb) == "⚠️ You need the **Manage Server** permission to do that."
    assert await botworld.rt.guild_settings.categories(botworld.guild_id) == ["cs.LG"]


async def test_top_autocompletes_categories_and_archives(botworld):
    choices = await botworld.harness.autocomplete(
        "category", "top", focused="name", value="cs.l", member=botworld.reader
    )
    values = [c["value"] for c in choices]
    assert "cs.LG" in values
    assert all(len(c["name"]) <= 100 for c in choices)
    assert len(choices) <= 25
    choices = await botworld.harness.autocomplete(
        "category", "top", focused="name", value="", member=botworld.reader
    )
    assert 0 < len(choices) <= 25
