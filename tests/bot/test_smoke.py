"""First contact: the real bot connects to the fake Discord and answers commands."""

from __future__ import annotations


async def test_about_and_category_flow(botworld):
    h = botworld.harness
    mod = h.member(manage_guild=True)
    member = h.member()

    r = await h.slash("about", member=member)
    cb = await r.response(timeout=3.0)
    assert cb.ephemeral
    assert "hotpapers" in str(cb.embeds)

    r = await h.slash("category", "add", name="cs.lg", member=mod)
    cb = await r.response(timeout=3.0)
    assert cb.ephemeral
    assert "cs.LG" in str(cb.embeds)

    r = await h.slash("category", "add", name="cs.LF", member=mod)
    cb = await r.response(timeout=3.0)
    assert cb.ephemeral
    assert "Did you mean" in str(cb.embeds)

    r = await h.slash("category", "add", name="cs.CV", member=member)
    cb = await r.response(timeout=3.0)
    assert cb.ephemeral
    assert "Manage Server" in str(cb.embeds)

    assert await botworld.rt.guild_settings.categories(botworld.guild_id) == ["cs.LG"]


async def test_paper_and_hot(botworld):
    await botworld.ingest_reference_day()
    h = botworld.harness
    r = await h.slash("paper", query="https://arxiv.org/abs/2012.10885v2", member=h.member())
    await r.response(timeout=3.0)
    msgs = await r.followups(count=1)
    assert "LieTransformer" in str(msgs)
    choices = await h.autocomplete("paper", focused="query", value="lie", member=h.member())
    assert choices
    r = await h.slash("hot", days=2, member=h.member())
    await r.response(timeout=3.0)
    msgs = await r.followups(count=1)
    assert "LieTransformer" in str(msgs)
