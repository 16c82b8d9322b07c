"""``/digest archive on|off`` through INTERACTION_CREATE, ``/digest status`` showing it, and a
digest the bot really posted appearing on the archive's page (and going away with opt-out)."""

from __future__ import annotations

import dataclasses

import lxml.html
from aiohttp.test_utils import TestClient, TestServer

from bot.services.archive import slugify
from tests.bot.conftest import said
from tests.web.conftest import app_for


async def test_a_moderator_turns_the_archive_on_and_gets_its_address(botworld):
    _, cb = await botworld.run("digest", "archive", member=botworld.mod, state="on")
    assert cb.ephemeral
    slug = (await botworld.rt.guild_settings.config(botworld.guild_id)).archive_slug
    assert slug is not None
    # No web.public_url in the test's settings: the path, and why there is no full address.
    text = said(cb)
    assert text.startswith(f"✅ This server's public archive is now on: `/s/{slug}/`")
    assert "`web.public_url`" in text
    assert "nothing of this server's members, channels or settings" in text
    config = await botworld.rt.guild_settings.config(botworld.guild_id)
    assert config.archive is True

    _, cb = await botworld.run("digest", "archive", member=botworld.mod, state="on")
    assert "was already on" in said(cb)

    _, cb = await botworld.run("digest", "archive", member=botworld.mod, state="off")
    assert cb.ephemeral
    assert said(cb).startswith("✅ This server's public archive is now off")
    config = await botworld.rt.guild_settings.config(botworld.guild_id)
    assert (config.archive, config.archive_slug) == (False, slug)  # the address is kept
    _, cb = await botworld.run("digest", "archive", member=botworld.mod, state="off")
    assert "was already off" in said(cb)


async def test_the_slug_comes_from_the_servers_name(botworld):
    await botworld.run("digest", "archive", member=botworld.mod, state="on")
    config = await botworld.rt.guild_settings.config(botworld.guild_id)
    name = botworld.bot.get_guild(botworld.guild_id).name
    assert config.archive_slug == slugify(name)


async def test_with_a_public_address_the_reply_is_a_full_link(botworld):
    web = botworld.rt.settings.web.model_copy(update={"public_url": "https://papers.example.org"})
    botworld.rt = dataclasses.replace(
        botworld.rt, settings=botworld.rt.settings.model_copy(update={"web": web})
    )
    botworld.bot.rt = botworld.rt
    _, cb = await botworld.run("digest", "archive", member=botworld.mod, state="on")
    slug = (await botworld.rt.guild_settings.config(botworld.guild_id)).archive_slug
    assert said(cb).startswith(
        f"✅ This server's public archive is now on: <https://papers.example.org/s/{slug}/>"
    )
    cb = await botworld.reply("digest", "status")
    assert f"Public archive: On: <https://papers.example.org/s/{slug}/>" in said(cb)


async def test_other_members_may_not_publish_the_archive(botworld):
    _, cb = await botworld.run("digest", "archive", member=botworld.reader, state="on")
    assert cb.ephemeral
    assert said(cb) == "⚠️ You need the **Manage Server** permission to do that."
    config = await botworld.rt.guild_settings.config(botworld.guild_id)
    assert (config.archive, config.archive_slug) == (False, None)


async def test_status_shows_the_archive(botworld):
    cb = await botworld.reply("digest", "status")
    assert "Public archive: Off. A moderator can publish" in said(cb)
    await botworld.run("digest", "archive", member=botworld.mod, state="on")
    slug = (await botworld.rt.guild_settings.config(botworld.guild_id)).archive_slug
    cb = await botworld.reply("digest", "status")
    assert f"Public archive: On: `/s/{slug}/`" in said(cb)


async def test_a_posted_digest_is_on_the_archive_while_it_is_published(botworld):
    """End to end: the bot posts the reference day's digest through the fake Discord; the
    archive's page shows exactly the papers posted, in order, once a moderator opts in."""
    await botworld.ingest_reference_day()
    await botworld.configure(post_time="10:30", top=3)
    await botworld.jobs.deliver_guild(botworld.guild_id)
    day = botworld.clock.now.date()
    record = await botworld.rt.digest_log.get(botworld.guild_id, day)
    assert record is not None
    assert record.status == "sent"
    posted = await botworld.rt.digest_log.planned(record.id)
    assert len(posted) == 3

    async with TestClient(TestServer(app_for(botworld.rt.db, clock=botworld.clock))) as client:
        await botworld.run("digest", "archive", member=botworld.mod, state="on")
        slug = (await botworld.rt.guild_settings.config(botworld.guild_id)).archive_slug
        page = await client.get(f"/s/{slug}/{day}")
        assert page.status == 200
        doc = lxml.html.document_fromstring(await page.text())
        shown = [
            href.rsplit("/", 1)[-1]
            for href in doc.xpath("//article[@class='paper']/p[@class='links']/a[1]/@href")
        ]
        assert shown == posted
        listing = await client.get(f"/s/{slug}/")
        assert f"/s/{slug}/{day}" in await listing.text()

        await botworld.run("digest", "archive", member=botworld.mod, state="off")
        assert (await client.get(f"/s/{slug}/{day}")).status == 404
        assert (await client.get(f"/s/{slug}/")).status == 404
