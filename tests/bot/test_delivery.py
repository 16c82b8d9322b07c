"""The daily digest on the fake Discord: styles, exactly once, crashes, missed slots, failures."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from typing import Any

import pytest

from bot.core.errors import StorageError
from bot.core.models import Mention
from bot.jobs import Jobs
from bot.ui.publisher import DiscordPublisher
from tests.bot.conftest import posted_ids, said
from tests.fakes.discord import Permission
from tests.storage.factories import make_mention, make_paper

RANKED = ["2012.11552", "2012.11538", "2012.11547", "2012.11233", "2012.11145"]
HEADER = "## 🔥 Hot Papers 2020-12-23\nall categories · 5 papers ranked by reposts and likes"


@pytest.fixture
async def ready(botworld):
    """The reference day ingested; the clock (10:50Z) 20 minutes after a 10:30 UTC slot."""
    await botworld.ingest_reference_day()
    return botworld


async def eventually(probe, timeout: float = 3.0):  # noqa: ASYNC109 - a bounded poll
    """The first truthy result of ``await probe()`` within ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not (found := await probe()):  # noqa: ASYNC110 - polls the database
            await asyncio.sleep(0.01)
    return found


def message_posts(botworld) -> list[Any]:
    return [r for r in botworld.fake.requests_to("POST", "/channels/*/messages") if not r.dropped]


# -- the three styles -------------------------------------------------------------------------


async def test_thread_style_posts_a_header_and_the_papers_in_its_thread(ready):
    h = ready.harness
    await ready.configure(post_time="10:30")
    await ready.jobs.deliver_guild(ready.guild_id)

    (header,) = h.fake.messages(h.channel)
    assert header["content"] == HEADER
    thread = h.world.channels[int(header["id"])]
    assert thread.is_thread
    assert thread.parent_id == h.channel.id
    assert thread.name == "Hot Papers 2020-12-23"
    papers = sorted(h.fake.messages(thread.id), key=lambda m: int(m["id"]))
    assert posted_ids(papers) == RANKED  # best first
    # Four papers to a message: 5 papers are two messages, of 4 and 1.
    assert [len(m["embeds"]) for m in papers] == [4, 1]
    first = papers[0]["embeds"][0]
    assert first["title"].startswith("1. Online Bag-of-Visual-Words")
    assert "**487** — X: " in said(papers[0])
    rank = 0
    for part, message in enumerate(papers, start=1):
        # One row of link buttons per paper, in the order of the embeds.
        rows = message["components"]
        assert len(rows) == len(message["embeds"])
        for row, embed in zip(rows, message["embeds"], strict=True):
            rank += 1
            labels = [b["label"] for b in row["components"]]
            assert labels == [f"#{rank} Abstract", "PDF", "HTML"]
            arxiv_id = embed["url"].rsplit("/", 1)[-1]
            assert [b["url"] for b in row["components"]] == [
                f"https://arxiv.org/{kind}/{arxiv_id}" for kind in ("abs", "pdf", "html")
            ]
        # The last embed's footer says which part of which day's digest this is.
        footer = message["embeds"][-1]["footer"]["text"]
        assert footer.endswith(f" · Hot Papers 2020-12-23 · part {part} of 2")
    record = await ready.rt.digest_log.get(ready.guild_id, dt.date(2020, 12, 23))
    assert record.status == "sent"
    assert record.paper_count == 5
    assert len(record.message_ids) == 3  # the header and two paper messages
    assert list(record.message_ids) == [int(header["id"])] + [int(m["id"]) for m in papers]


async def test_channel_style_posts_every_message_in_the_channel(ready):
    h = ready.harness
    await ready.configure(post_time="10:30", style="channel", top=3)
    await ready.jobs.deliver_guild(ready.guild_id)
    messages = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    assert messages[0]["content"].startswith("## 🔥 Hot Papers 2020-12-23")
    assert "3 papers" in messages[0]["content"]
    assert len(messages) == 2  # the header, then the three papers in one message
    assert posted_ids(messages[1:]) == RANKED[:3]
    assert not any(c.is_thread for c in h.world.channels.values())


async def test_compact_style_is_one_ranked_embed(ready):
    h = ready.harness
    await ready.configure(post_time="10:30", style="compact", categories=("cs.LG",))
    await ready.jobs.deliver_guild(ready.guild_id)
    (message,) = h.fake.messages(h.channel)
    assert message["content"].startswith("## 🔥 Hot Papers 2020-12-23\n`cs.LG` · 4 papers")
    (embed,) = message["embeds"]
    assert embed["title"] == "Hot Papers 2020-12-23"
    lines = embed["description"].splitlines()
    assert [line.split("](")[1].split(")")[0].rsplit("/", 1)[-1] for line in lines] == RANKED[:4]


@pytest.mark.parametrize("style", ["thread", "channel", "compact"])
async def test_the_largest_digest_stays_within_discords_limits(ready, style):
    """Every paper of the day at threshold 0: the validator checks each message at teardown
    (content ≤2000, ≤10 embeds, ≤6000 characters, field and title limits)."""
    h = ready.harness
    ready.clock.now = dt.datetime(2020, 12, 23, 0, 30, tzinfo=dt.UTC)  # the whole 22nd
    await ready.configure(post_time="00:15", style=style, top=25, threshold=0)
    await ready.jobs.deliver_guild(ready.guild_id)
    record = await ready.rt.digest_log.get(ready.guild_id, dt.date(2020, 12, 23))
    assert record.status == "sent"
    assert record.paper_count > 10  # more than one message can carry
    for request in message_posts(ready):
        embeds = request.body.get("embeds") or []
        assert len(embeds) <= 10
        assert len(request.body.get("content") or "") <= 2000
    assert h.fake.violations == []


async def test_every_message_disables_mentions(ready):
    await ready.configure(post_time="10:30")
    await ready.jobs.deliver_guild(ready.guild_id)
    posts = message_posts(ready)
    assert len(posts) == 3  # the header and two paper messages
    for request in posts:
        assert request.body["allowed_mentions"] == {"parse": []}
        assert len(request.body.get("embeds") or []) <= 10


# -- when: the schedule and the injected clock ------------------------------------------------


async def test_nothing_before_the_slot_and_the_digest_at_the_slot(ready):
    h = ready.harness
    await ready.configure(post_time="13:00", timezone="Europe/Paris")  # 12:00Z
    await ready.jobs.sweep()
    assert h.fake.messages(h.channel) == []
    ready.clock.now = dt.datetime(2020, 12, 23, 12, 0, tzinfo=dt.UTC)
    await ready.jobs.sweep()
    (header,) = h.fake.messages(h.channel)
    assert header["content"].startswith("## 🔥 Hot Papers 2020-12-23")


async def test_the_local_date_names_the_digest(ready):
    h = ready.harness
    # 10:50Z is already 2020-12-24 in Kiritimati (UTC+14).
    await ready.configure(post_time="00:30", timezone="Pacific/Kiritimati")
    await ready.jobs.sweep()
    (header,) = h.fake.messages(h.channel)
    assert header["content"].startswith("## 🔥 Hot Papers 2020-12-24")
    assert await ready.rt.digest_log.get(ready.guild_id, dt.date(2020, 12, 24))


# -- exactly once -----------------------------------------------------------------------------


async def test_delivering_twice_posts_once(ready):
    h = ready.harness
    await ready.configure(post_time="10:30", style="channel")
    await ready.jobs.deliver_guild(ready.guild_id)
    await ready.jobs.deliver_guild(ready.guild_id)
    await ready.jobs.sweep()
    ready.clock.advance(hours=1)
    await ready.jobs.sweep()
    assert len(h.fake.messages(h.channel)) == 3
    assert len(message_posts(ready)) == 3


async def test_concurrent_deliveries_post_once(ready):
    h = ready.harness
    await ready.configure(post_time="10:30", style="channel")
    await asyncio.gather(*(ready.jobs.deliver_guild(ready.guild_id) for _ in range(3)))
    assert len(h.fake.messages(h.channel)) == 3
    assert posted_ids(h.fake.messages(h.channel)) == RANKED


class ProcessDied(BaseException):
    """The bot's process ends mid-digest (nothing in it gets to catch this)."""


class DiesAfter(DiscordPublisher):
    """The real publisher, whose process dies after ``n`` messages."""

    def __init__(self, client, n: int) -> None:
        super().__init__(client)
        self.left = n

    async def _send(self, channel_id: int, nonce: str | None, **kwargs: object) -> int:
        if self.left == 0:
            raise ProcessDied
        self.left -= 1
        return await super()._send(channel_id, nonce, **kwargs)


@pytest.mark.parametrize("style", ["thread", "channel"])
async def test_a_crash_mid_digest_resumes_after_the_last_recorded_message(ready, style):
    h = ready.harness
    config = await ready.configure(post_time="10:30", style=style)
    day = dt.date(2020, 12, 23)
    with pytest.raises(ProcessDied):
        await ready.rt.delivery.deliver(config, day, DiesAfter(ready.bot, 2))
    record = await ready.rt.digest_log.get(ready.guild_id, day)
    assert record.status == "sending"
    assert len(record.message_ids) == 2  # the header and the first four papers

    # The restart takes a while: past two minutes without a heartbeat, the digest is taken over.
    ready.clock.advance(minutes=3)
    await ready.restart()
    await ready.jobs.sweep()

    (header,) = h.fake.messages(h.channel) if style == "thread" else [None]
    if style == "thread":
        papers = h.fake.messages(int(header["id"]))
        assert len(h.world.channels[int(header["id"])].name) > 0
    else:
        messages = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
        assert sum(1 for m in messages if m["content"].startswith("## 🔥")) == 1
        papers = messages[1:]
    assert posted_ids(papers) == RANKED  # every paper once, in rank order
    assert len(papers) == 2  # the second paper message only was sent after the restart
    record = await ready.rt.digest_log.get(ready.guild_id, day)
    assert record.status == "sent"
    assert record.attempts == 2
    assert len(record.message_ids) == 3
    # Only one thread was ever opened.
    assert len(h.fake.requests_to("POST", "/channels/*/messages/*/threads")) == (
        2 if style == "thread" else 0
    )
    assert sum(1 for c in h.world.channels.values() if c.is_thread) == (style == "thread")


async def test_a_dropped_connection_mid_digest_is_resumed_by_the_sweep(ready):
    h = ready.harness
    await ready.configure(post_time="10:30", style="channel")
    # The third message's connection is cut before Discord sees it.
    h.fake.drop_next("POST", f"/channels/{h.channel.id}/messages", skip=2)
    await ready.jobs.deliver_guild(ready.guild_id)
    day = dt.date(2020, 12, 23)
    record = await ready.rt.digest_log.get(ready.guild_id, day)
    assert record.status == "failed"
    assert record.error.startswith("Discord unavailable")
    assert len(record.message_ids) == 2
    assert len(h.fake.messages(h.channel)) == 2

    ready.clock.advance(minutes=10)  # the next sweep
    await ready.jobs.sweep()
    messages = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    assert posted_ids(messages[1:]) == RANKED
    assert (await ready.rt.digest_log.get(ready.guild_id, day)).status == "sent"


async def test_a_message_posted_but_unconfirmed_is_not_posted_again(ready):
    h = ready.harness
    await ready.configure(post_time="10:30", style="channel")
    # Discord posts the third message, but the answer never reaches the bot.
    h.fake.drop_next("POST", f"/channels/{h.channel.id}/messages", skip=2, after=True)
    await ready.jobs.deliver_guild(ready.guild_id)
    assert len(h.fake.messages(h.channel)) == 3
    ready.clock.advance(minutes=1)
    await ready.jobs.sweep()  # the retry reads the channel back and finds the message
    messages = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    assert len(messages) == 3
    assert posted_ids(messages[1:]) == RANKED
    nonces = [r.body["nonce"] for r in h.fake.requests_to("POST", "/channels/*/messages")]
    assert len(nonces) == 3  # found on Discord: not even sent again
    assert len(set(nonces)) == 3
    record = await ready.rt.digest_log.get(ready.guild_id, dt.date(2020, 12, 23))
    assert record.status == "sent"
    assert list(record.message_ids) == [int(m["id"]) for m in messages]


async def test_a_quick_retry_that_cannot_read_the_channel_back_relies_on_the_nonce(ready):
    """Without Read Message History (which the channel style doesn't need) the bot can't read
    its messages back: within Discord's nonce window, the same nonce returns the message."""
    h = ready.harness
    await ready.configure(post_time="10:30", style="channel")
    await bot_lacks(ready, h.channel, Permission.READ_MESSAGE_HISTORY, "read_message_history")
    h.fake.drop_next("POST", f"/channels/{h.channel.id}/messages", skip=2, after=True)
    await ready.jobs.deliver_guild(ready.guild_id)
    assert len(h.fake.messages(h.channel)) == 3
    ready.clock.advance(minutes=1)
    await ready.jobs.sweep()
    messages = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    assert len(messages) == 3
    assert posted_ids(messages[1:]) == RANKED
    nonces = [r.body["nonce"] for r in h.fake.requests_to("POST", "/channels/*/messages")]
    assert len(nonces) == 4  # three messages, the third one sent twice
    assert len(set(nonces)) == 3
    record = await ready.rt.digest_log.get(ready.guild_id, dt.date(2020, 12, 23))
    assert (record.status, record.attempts) == ("sent", 2)
    assert list(record.message_ids) == [int(m["id"]) for m in messages]


async def test_a_missed_digest_goes_out_on_restart_within_the_grace_period(ready):
    h = ready.harness
    await ready.configure(post_time="08:00")
    ready.clock.now = dt.datetime(2020, 12, 23, 13, 0, tzinfo=dt.UTC)  # down from 7:30 to 13:00
    await ready.restart()
    await ready.jobs.catch_up()  # what on_ready does
    await ready.jobs.drain()
    (header,) = h.fake.messages(h.channel)
    assert header["content"].startswith("## 🔥 Hot Papers 2020-12-23")


async def test_a_missed_digest_is_dropped_after_the_grace_period(ready):
    h = ready.harness
    await ready.configure(post_time="04:00")
    ready.clock.now = dt.datetime(2020, 12, 23, 10, 1, tzinfo=dt.UTC)  # 6 h 1 min late
    await ready.restart()
    await ready.jobs.sweep()
    assert h.fake.messages(h.channel) == []
    assert await ready.rt.digest_log.get(ready.guild_id, dt.date(2020, 12, 23)) is None


# -- Discord failures -------------------------------------------------------------------------


async def test_a_429_is_waited_out(ready):
    h = ready.harness
    await ready.configure(post_time="10:30", style="channel")
    h.fake.fail_next("POST", "/channels/*/messages", 429, retry_after=0.05, skip=1)
    await ready.jobs.deliver_guild(ready.guild_id)
    statuses = [r.status for r in message_posts(ready)]
    assert statuses == [200, 429, 200, 200]
    messages = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    assert posted_ids(messages[1:]) == RANKED


async def test_a_500_is_retried_by_discord_py(ready):
    h = ready.harness
    await ready.configure(post_time="10:30", style="compact")
    h.fake.fail_next("POST", "/channels/*/messages", 500)
    await ready.jobs.deliver_guild(ready.guild_id)
    assert [r.status for r in message_posts(ready)] == [500, 200]
    assert len(h.fake.messages(h.channel)) == 1


async def test_a_503_fails_the_digest_and_the_sweep_finishes_it(ready):
    h = ready.harness
    await ready.configure(post_time="10:30", style="channel")
    h.fake.fail_next("POST", "/channels/*/messages", 503, skip=1)  # the first paper message
    await ready.jobs.deliver_guild(ready.guild_id)
    day = dt.date(2020, 12, 23)
    record = await ready.rt.digest_log.get(ready.guild_id, day)
    assert record.status == "failed"
    assert record.error == "Discord unavailable: Discord answered 503"
    assert len(record.message_ids) == 1
    ready.clock.advance(minutes=10)
    await ready.jobs.sweep()
    messages = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    assert len(messages) == 3
    assert posted_ids(messages[1:]) == RANKED
    assert (await ready.rt.digest_log.get(ready.guild_id, day)).status == "sent"


async def test_a_403_is_recorded_and_retried_once_the_permission_is_back(ready):
    h = ready.harness
    await ready.configure(post_time="10:30", style="channel")
    h.fake.fail_next("POST", "/channels/*/messages", 403)
    await ready.jobs.deliver_guild(ready.guild_id)
    day = dt.date(2020, 12, 23)
    record = await ready.rt.digest_log.get(ready.guild_id, day)
    assert record.status == "failed"
    assert record.error.startswith("missing permissions: not allowed to post in channel")
    # Moderators are told at once (here in the digest channel: no alert channel is set).
    (notice,) = h.fake.messages(h.channel)
    assert "could not be posted" in notice["content"]
    assert "retried" in notice["content"]
    ready.clock.advance(minutes=10)
    await ready.jobs.sweep()
    messages = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    # The same papers as planned: the failed attempt's plan doesn't count as "posted".
    assert posted_ids(messages[2:]) == RANKED


async def test_missing_permissions_are_found_before_posting(ready):
    h = ready.harness
    await ready.configure(post_time="10:30")
    await h.fake.restrict_bot(h.channel, deny=Permission.EMBED_LINKS)
    await h.fake.wait_until(
        lambda: (
            not ready.bot.get_channel(h.channel.id)
            .permissions_for(ready.bot.get_guild(ready.guild_id).me)
            .embed_links
        ),
        3.0,
        "CHANNEL_UPDATE",
    )
    await ready.jobs.deliver_guild(ready.guild_id)
    record = await ready.rt.digest_log.get(ready.guild_id, dt.date(2020, 12, 23))
    assert record.status == "failed"
    assert record.error == "missing permissions: Embed Links"
    # Nothing of the digest; one text notice for the moderators, naming what is missing.
    (notice,) = message_posts(ready)
    assert "Embed Links" in notice.body["content"]


async def test_no_thread_permission_posts_the_papers_in_the_channel(ready):
    h = ready.harness
    await ready.configure(post_time="10:30")
    await h.fake.restrict_bot(h.channel, deny=Permission.CREATE_PUBLIC_THREADS)
    await h.fake.wait_until(
        lambda: (
            not ready.bot.get_channel(h.channel.id)
            .permissions_for(ready.bot.get_guild(ready.guild_id).me)
            .create_public_threads
        ),
        3.0,
        "CHANNEL_UPDATE",
    )
    await ready.jobs.deliver_guild(ready.guild_id)
    messages = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    assert posted_ids(messages[1:]) == RANKED


@pytest.mark.parametrize("notify", [True, False])
async def test_a_deleted_channel_pauses_the_guild_with_the_reason(ready, notify):
    h = ready.harness
    papers = await h.text_channel("papers")
    await h.fake.wait_until(lambda: ready.bot.get_channel(papers.id) is not None, 3.0, "cache")
    await ready.configure(channel=papers, post_time="10:30")
    await h.fake.delete_channel(papers, notify=notify)
    if notify:
        await h.fake.wait_until(lambda: ready.bot.get_channel(papers.id) is None, 3.0, "delete")
    await ready.jobs.deliver_guild(ready.guild_id)
    config = await ready.rt.guild_settings.config(ready.guild_id)
    assert config.paused
    assert config.pause_reason == f"digest channel deleted: channel {papers.id} no longer exists"
    cb = await ready.reply("digest", "status")
    assert "Paused" in said(cb)
    assert "digest channel deleted" in said(cb)
    ready.clock.advance(minutes=10)
    await ready.jobs.sweep()  # a paused guild is not retried
    assert len(h.fake.requests_to("POST", f"/channels/{papers.id}/messages")) <= 1


async def set_up(botworld, guild_id: int, channel_id: int) -> None:
    """A second guild, set up yesterday for a compact digest at 10:30 UTC."""
    now = botworld.clock.now
    botworld.clock.now = now - dt.timedelta(days=1)
    await botworld.rt.guild_settings.set_channel(guild_id, channel_id)
    await botworld.rt.guild_settings.set_time(guild_id, "10:30", "UTC")
    await botworld.rt.guild_settings.set_options(guild_id, style="compact")
    botworld.clock.now = now


async def test_one_guilds_failure_does_not_stop_another(ready):
    h = ready.harness
    other = await h.add_guild("Second Guild")
    other_channel = next(iter(other.channels.values()))
    await h.fake.wait_until(
        lambda: ready.bot.get_channel(other_channel.id) is not None, 3.0, "GUILD_CREATE"
    )
    await ready.configure(post_time="10:30", style="compact")
    await set_up(ready, other.id, other_channel.id)
    await h.fake.delete_channel(h.channel, notify=False)
    h.fake.fail_next("POST", f"/channels/{other_channel.id}/messages", 403)
    await ready.jobs.sweep()
    assert (await ready.rt.guild_settings.config(ready.guild_id)).paused
    # The other server's moderators got a notice of its 403, and nothing else yet.
    (notice,) = h.fake.messages(other_channel)
    assert "could not be posted" in notice["content"]
    ready.clock.advance(minutes=10)
    await ready.jobs.sweep()
    assert len(h.fake.messages(other_channel)) == 2


async def test_one_guilds_rate_limit_does_not_hold_another_back(ready):
    h = ready.harness
    other = await h.add_guild("Second Guild")
    other_channel = next(iter(other.channels.values()))
    await h.fake.wait_until(
        lambda: ready.bot.get_channel(other_channel.id) is not None, 3.0, "GUILD_CREATE"
    )
    await ready.configure(post_time="10:30", style="compact")
    await set_up(ready, other.id, other_channel.id)
    h.fake.fail_next("POST", f"/channels/{h.channel.id}/messages", 429, retry_after=0.3)
    await ready.jobs.sweep()
    order = [
        int(r.path.split("/")[2])
        for r in h.fake.requests_to("POST", "/channels/*/messages")
        if r.status == 200
    ]
    assert order == [other_channel.id, h.channel.id]  # posted while the first one waited


# -- no flood, no repeats, empty days ---------------------------------------------------------


async def test_joining_a_guild_posts_nothing(ready):
    h = ready.harness
    other = await h.add_guild("New Guild")
    config = await eventually(lambda: ready.rt.guilds.get(other.id))  # on_guild_join
    assert config.channel_id is None
    for hours in (0, 6, 24):
        ready.clock.now = dt.datetime(2020, 12, 23, 10, 50, tzinfo=dt.UTC) + dt.timedelta(
            hours=hours
        )
        await ready.jobs.sweep()
    assert message_posts(ready) == []


async def test_a_guild_that_removes_the_bot_gets_no_more_digests(ready):
    h = ready.harness
    await ready.configure(post_time="10:30")
    await h.fake.remove_bot(h.guild)
    config = await eventually(
        lambda: _paused_config(ready)  # on_guild_remove
    )
    assert config.pause_reason == "the bot was removed from this server"
    await ready.jobs.sweep()
    assert message_posts(ready) == []


async def _paused_config(botworld):
    config = await botworld.rt.guilds.get(botworld.guild_id)
    return config if config is not None and config.paused else None


async def test_a_paper_is_not_posted_again_within_the_cooldown(ready):
    h = ready.harness
    await ready.configure(post_time="10:30", style="compact")
    await ready.jobs.sweep()
    # The server moves to Kiritimati (UTC+14): at 10:50Z its local date is already the 24th,
    # and its 00:55 there is 10:55Z.
    await ready.rt.guild_settings.set_time(ready.guild_id, "00:55", "Pacific/Kiritimati")
    ready.clock.advance(minutes=10)
    await ready.jobs.sweep()
    first, second = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    assert first["content"].startswith("## 🔥 Hot Papers 2020-12-23")
    assert second["content"] == (
        "**Hot Papers 2020-12-24** — "
        "No hot papers today: no paper in this server's categories reached a score of 50."
    )


async def test_an_empty_day_says_why_in_one_short_message(ready):
    h = ready.harness
    await ready.configure(post_time="10:30", threshold=10_000)
    await ready.jobs.deliver_guild(ready.guild_id)
    (message,) = h.fake.messages(h.channel)
    assert message["content"] == (
        "**Hot Papers 2020-12-23** — "
        "No hot papers today: no paper in this server's categories reached a score of 10000."
    )
    assert message["embeds"] == []
    record = await ready.rt.digest_log.get(ready.guild_id, dt.date(2020, 12, 23))
    assert record.status == "empty"


async def test_an_empty_day_names_a_failing_source(botworld):
    h = botworld.harness
    botworld.world.x.fail_next(503, times=10)
    await botworld.ingest_reference_day()
    await botworld.configure(post_time="10:30")
    await botworld.jobs.deliver_guild(botworld.guild_id)
    (message,) = h.fake.messages(h.channel)
    assert message["content"].startswith(
        "**Hot Papers 2020-12-23** — No hot papers today: X could not be reached"
    )


async def test_an_empty_weekend_day_says_so(ready):
    h = ready.harness
    ready.clock.now = dt.datetime(2020, 12, 26, 10, 50, tzinfo=dt.UTC)  # a Saturday
    await ready.configure(post_time="10:30")
    await ready.jobs.deliver_guild(ready.guild_id)
    (message,) = h.fake.messages(h.channel)
    assert "arXiv announces nothing on weekends" in message["content"]


async def test_a_silent_empty_day_posts_nothing(ready):
    await ready.configure(post_time="10:30", threshold=10_000, empty_day="silent")
    await ready.jobs.deliver_guild(ready.guild_id)
    assert message_posts(ready) == []
    record = await ready.rt.digest_log.get(ready.guild_id, dt.date(2020, 12, 23))
    assert record.status == "empty"


# -- no flood: a slot from before the guild could post is not owed ----------------------------


async def test_setting_the_channel_after_todays_slot_posts_nothing_until_tomorrow(ready):
    h = ready.harness
    # 10:50Z; the default time is 09:00 UTC: today's slot passed before there was a channel.
    _, cb = await ready.run("digest", "channel", member=ready.mod, options={"channel": h.channel})
    assert said(cb).startswith("✅")
    await ready.jobs.sweep()
    ready.clock.advance(minutes=10)  # the next sweeps, within the grace period
    await ready.jobs.sweep()
    ready.clock.advance(hours=3)
    await ready.jobs.sweep()
    assert message_posts(ready) == []
    assert await ready.rt.digest_log.get(ready.guild_id, dt.date(2020, 12, 23)) is None

    ready.clock.now = dt.datetime(2020, 12, 24, 9, 0, tzinfo=dt.UTC)
    await ready.jobs.sweep()
    assert len(h.fake.messages(h.channel)) == 1  # tomorrow's digest (or its empty-day note)
    assert await ready.rt.digest_log.get(ready.guild_id, dt.date(2020, 12, 24)) is not None


async def test_resuming_after_the_slot_posts_nothing_until_the_next_one(ready):
    await ready.configure(post_time="10:30")
    ready.clock.now = dt.datetime(2020, 12, 23, 10, 0, tzinfo=dt.UTC)
    await ready.run("digest", "pause", member=ready.mod)
    ready.clock.now = dt.datetime(2020, 12, 23, 10, 50, tzinfo=dt.UTC)
    _, cb = await ready.run("digest", "resume", member=ready.mod)
    assert said(cb).startswith("✅ The daily digest is back on")
    await ready.jobs.sweep()
    assert message_posts(ready) == []


async def test_moving_the_time_before_now_posts_nothing_today(ready):
    await ready.configure(post_time="18:00")
    _, cb = await ready.run("digest", "time", member=ready.mod, time="10:30")
    assert said(cb).startswith("✅ The digest goes out daily at **10:30**")
    await ready.jobs.sweep()
    assert message_posts(ready) == []


async def test_a_failed_digest_is_retried_even_after_a_pause_and_resume(ready):
    h = ready.harness
    await ready.configure(post_time="10:30", style="compact")
    h.fake.fail_next("POST", "/channels/*/messages", 403)
    await ready.jobs.deliver_guild(ready.guild_id)
    day = dt.date(2020, 12, 23)
    assert (await ready.rt.digest_log.get(ready.guild_id, day)).status == "failed"
    await ready.run("digest", "pause", member=ready.mod)
    ready.clock.advance(minutes=5)
    await ready.run("digest", "resume", member=ready.mod)  # active again only from 10:55
    await ready.jobs.sweep()
    assert len(h.fake.messages(h.channel)) == 2  # the 403 notice, then the digest
    assert (await ready.rt.digest_log.get(ready.guild_id, day)).status == "sent"


# -- threads the bot can't use ----------------------------------------------------------------


async def bot_lacks(botworld, channel, deny: int, attr: str) -> None:
    await botworld.fake.restrict_bot(channel, deny=deny)
    await botworld.fake.wait_until(
        lambda: (
            not getattr(
                botworld.bot.get_channel(channel.id).permissions_for(
                    botworld.bot.get_guild(botworld.guild_id).me
                ),
                attr,
            )
        ),
        3.0,
        "CHANNEL_UPDATE",
    )


@pytest.mark.parametrize(
    ("deny", "attr"),
    [
        (Permission.SEND_MESSAGES_IN_THREADS, "send_messages_in_threads"),
        (Permission.READ_MESSAGE_HISTORY, "read_message_history"),
    ],
)
async def test_without_a_thread_permission_no_thread_is_opened(ready, deny, attr):
    h = ready.harness
    await ready.configure(post_time="10:30")
    await bot_lacks(ready, h.channel, deny, attr)
    await ready.jobs.deliver_guild(ready.guild_id)
    assert h.fake.requests_to("POST", "/channels/*/messages/*/threads") == []
    assert not any(c.is_thread for c in h.world.channels.values())
    messages = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    assert messages[0]["content"] == HEADER
    assert posted_ids(messages[1:]) == RANKED
    record = await ready.rt.digest_log.get(ready.guild_id, dt.date(2020, 12, 23))
    assert (record.status, record.attempts) == ("sent", 1)


async def test_a_thread_that_refuses_the_papers_sends_them_to_the_channel(ready):
    h = ready.harness
    await ready.configure(post_time="10:30")
    h.fake.fail_next("POST", "/channels/*/messages", 403, skip=1)  # the first paper, in the thread
    await ready.jobs.deliver_guild(ready.guild_id)
    header, *papers = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    assert header["content"] == HEADER
    assert posted_ids(papers) == RANKED
    assert h.fake.messages(int(header["id"])) == []
    record = await ready.rt.digest_log.get(ready.guild_id, dt.date(2020, 12, 23))
    assert (record.status, record.attempts, len(record.message_ids)) == ("sent", 1, 3)


async def test_a_deleted_thread_is_not_a_deleted_channel(ready, monkeypatch):
    h = ready.harness
    await ready.configure(post_time="10:30")
    real = DiscordPublisher.open_thread

    async def open_then_lose(self, channel_id, message_id, name):
        thread_id = await real(self, channel_id, message_id, name)
        await h.fake.delete_channel(h.world.channels[thread_id])  # a moderator deletes it
        return thread_id

    monkeypatch.setattr(DiscordPublisher, "open_thread", open_then_lose)
    await ready.jobs.deliver_guild(ready.guild_id)
    config = await ready.rt.guild_settings.config(ready.guild_id)
    assert not config.paused
    header, *papers = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    assert header["content"] == HEADER
    assert posted_ids(papers) == RANKED
    record = await ready.rt.digest_log.get(ready.guild_id, dt.date(2020, 12, 23))
    assert record.status == "sent"


# -- one sender per digest --------------------------------------------------------------------


@pytest.fixture
async def held_once(ready, monkeypatch):
    """The first paper message waits for the test (a long 429 wait, say); later ones don't."""
    gate, entered = asyncio.Event(), asyncio.Event()
    real = DiscordPublisher.send_papers

    async def slow_first(self, *args, **kwargs):
        if not entered.is_set():
            entered.set()
            await gate.wait()
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(DiscordPublisher, "send_papers", slow_first)
    ready.gate, ready.entered = gate, entered
    return ready


async def test_a_sweep_during_a_long_wait_does_not_send_the_digest_again(held_once):
    w = held_once
    await w.configure(post_time="10:30", style="channel")
    sending = asyncio.create_task(w.jobs.deliver_guild(w.guild_id))
    await asyncio.wait_for(w.entered.wait(), 3)
    w.clock.advance(minutes=15)  # longer than a claim stays fresh without a heartbeat
    await w.jobs.sweep()
    w.gate.set()
    await asyncio.wait_for(sending, 5)
    assert len(message_posts(w)) == 3
    record = await w.rt.digest_log.get(w.guild_id, dt.date(2020, 12, 23))
    assert (record.status, record.attempts) == ("sent", 1)


async def test_an_overlapping_deploy_leaves_a_live_send_alone(held_once):
    w = held_once
    await w.configure(post_time="10:30", style="channel")
    old = w.jobs
    w.rt.delivery.heartbeat_seconds = 0.01
    sending = asyncio.create_task(old.deliver_guild(w.guild_id))
    await asyncio.wait_for(w.entered.wait(), 3)
    day = dt.date(2020, 12, 23)
    w.clock.advance(minutes=15)

    async def beaten():
        record = await w.rt.digest_log.get(w.guild_id, day)
        return record.heartbeat_at == w.clock.now

    await eventually(beaten)  # the old process is alive and says so
    w.rt.delivery.heartbeat_seconds = 3600
    await asyncio.sleep(0.05)  # (the next beat is an hour away)
    w.clock.advance(seconds=30)
    new = Jobs(w.rt, w.jobs.publisher)  # the new process starts while the old one still sends
    await new.sweep()
    w.gate.set()
    await asyncio.wait_for(sending, 5)
    assert len(message_posts(w)) == 3
    record = await w.rt.digest_log.get(w.guild_id, day)
    assert (record.status, record.attempts) == ("sent", 1)


# -- what members read ------------------------------------------------------------------------


async def test_a_lost_connection_is_stored_as_a_sentence_not_an_exception(ready):
    h = ready.harness
    await ready.configure(post_time="10:30", style="channel")
    h.fake.drop_next("POST", f"/channels/{h.channel.id}/messages")
    await ready.jobs.deliver_guild(ready.guild_id)
    record = await ready.rt.digest_log.get(ready.guild_id, dt.date(2020, 12, 23))
    assert record.error == "Discord unavailable: the connection to Discord was lost"
    cb = await ready.reply("digest", "status")
    assert "the connection to Discord was lost" in said(cb)
    assert "Error(" not in said(cb)


async def test_the_header_names_the_sources_when_not_only_x_counted(ready):
    h = ready.harness
    await ready.configure(post_time="10:30", style="channel", top=1)
    ranked = await ready.rt.delivery.build(
        await ready.rt.guild_settings.config(ready.guild_id), ready.clock.now
    )
    top = ranked.papers[0]
    # The top paper was also on Hacker News.
    await ready.rt.mentions.upsert(
        [
            Mention(
                source="hackernews",
                post_id="hn1",
                url="https://news.ycombinator.com/item?id=1",
                author="someone",
                text=top.paper.title,
                created_at=ready.clock.now - dt.timedelta(hours=1),
                arxiv_ids=(top.paper.arxiv_id,),
                metrics={"points": 40, "comments": 3},
            )
        ],
        ready.clock.now,
    )
    ready.rt.digests.invalidate()  # stored behind the ingestion's back, which would say so
    await ready.jobs.deliver_guild(ready.guild_id)
    header = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))[0]
    assert header["content"].endswith("1 paper ranked by social attention on Hacker News and X")


# -- resumed digests, the sweep's failures, many guilds at one slot ---------------------------


async def crowd_the_day(botworld, *, crowd: int = 21) -> str:
    """``crowd`` papers scoring 1,000 in cs.LG, and one math.AG paper scoring 60: 22nd of the
    whole day, first of a server following math.AG. Returns that paper's id."""
    now = botworld.clock.now
    papers = [make_paper(f"2012.9{n:04d}", categories=("cs.LG",)) for n in range(crowd)]
    papers.append(make_paper("2012.98000", title="Moduli of curves", categories=("math.AG",)))
    await botworld.rt.papers.upsert(papers, now)
    mentions = [
        make_mention(
            f"crowd{n}",
            arxiv_ids=(p.arxiv_id,),
            created_at=now - dt.timedelta(hours=2),
            metrics={"reposts": 500, "likes": 500},
        )
        for n, p in enumerate(papers[:-1])
    ]
    mentions.append(
        make_mention(
            "algebra",
            arxiv_ids=("2012.98000",),
            created_at=now - dt.timedelta(hours=2),
            metrics={"reposts": 20, "likes": 40},
        )
    )
    await botworld.rt.mentions.upsert(mentions, now)
    botworld.rt.digests.invalidate()  # stored behind the ingestion's back
    return "2012.98000"


async def test_a_resumed_digest_keeps_the_real_score_of_a_paper_outside_the_global_top(botworld):
    h = botworld.harness
    paper_id = await crowd_the_day(botworld)
    config = await botworld.configure(post_time="10:30", style="channel", categories=("math.AG",))
    day = dt.date(2020, 12, 23)
    with pytest.raises(ProcessDied):  # the header goes out, then the process dies
        await botworld.rt.delivery.deliver(config, day, DiesAfter(botworld.bot, 1))
    assert await botworld.rt.digest_log.planned(
        (await botworld.rt.digest_log.get(botworld.guild_id, day)).id
    ) == [paper_id]

    botworld.clock.advance(minutes=3)
    await botworld.restart()
    await botworld.jobs.sweep()

    header, paper = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    assert header["content"].startswith("## 🔥 Hot Papers 2020-12-23")
    (embed,) = paper["embeds"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Score"].startswith("**60** — X: 20 reposts, 40 likes")
    assert "Top posts" in fields
    assert (await botworld.rt.digest_log.get(botworld.guild_id, day)).status == "sent"


async def test_a_sweep_that_fails_logs_it_and_the_next_one_runs(ready, caplog, monkeypatch):
    await ready.configure(post_time="10:30", style="compact")
    real_due = ready.rt.delivery.due

    async def database_down(*args, **kwargs):
        raise StorageError("database is locked")

    monkeypatch.setattr(ready.rt.delivery, "due", database_down)
    await ready.jobs.catch_up()  # at start: a bare task nobody awaits
    await asyncio.wait_for(asyncio.gather(*ready.jobs._tasks), 3)
    (record,) = [r for r in caplog.records if r.name == "bot.jobs" and r.exc_info]
    assert record.levelname == "ERROR"
    assert "sweep failed" in record.getMessage()
    assert message_posts(ready) == []

    monkeypatch.setattr(ready.rt.delivery, "due", real_due)
    ready.clock.advance(minutes=10)
    await ready.jobs.sweep()
    assert len(message_posts(ready)) == 1


async def test_a_sweep_whose_recovery_fails_logs_it_and_recovers_next_time(
    ready, caplog, monkeypatch
):
    await ready.configure(post_time="10:30", style="compact")
    real = ready.rt.digest_log.release_abandoned
    calls = []

    async def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise StorageError("database is locked")
        return await real(*args, **kwargs)

    monkeypatch.setattr(ready.rt.digest_log, "release_abandoned", flaky)
    await ready.jobs.sweep()  # does not raise
    assert "sweep failed" in caplog.text
    await ready.jobs.sweep()
    assert len(calls) == 2
    assert len(message_posts(ready)) == 1


async def test_guilds_posting_at_the_same_slot_read_the_day_once(ready, monkeypatch):
    h = ready.harness
    channels = []
    for n in range(6):  # more than post at once: later ones must still find the scores
        guild = await h.add_guild(f"Guild {n}")
        channel = next(iter(guild.channels.values()))
        await h.fake.wait_until(
            lambda c=channel: ready.bot.get_channel(c.id) is not None, 3.0, "GUILD_CREATE"
        )
        await set_up(ready, guild.id, channel.id)
        channels.append((guild.id, channel))
    reads = []
    whole_day = ready.rt.mentions.in_window

    async def counted(*args, **kwargs):
        reads.append(args)
        await asyncio.sleep(0.05)  # a slow read: the others ask meanwhile
        return await whole_day(*args, **kwargs)

    monkeypatch.setattr(ready.rt.mentions, "in_window", counted)
    await ready.jobs.sweep()
    assert len(reads) == 1
    assert all(len(h.fake.messages(channel)) == 1 for _guild, channel in channels)
    await ready.rt.delivery.status(channels[0][0])  # /digest status ranks the same day
    assert len(reads) == 1

    # An ingestion that completes makes the next ranking read the day again.
    await ready.ingest_reference_day()
    await ready.rt.delivery.status(channels[0][0])
    assert len(reads) == 2


async def test_digests_posted_at_once_are_bounded_by_max_concurrent_digests(ready, monkeypatch):
    limit = 2
    discord_settings = ready.rt.settings.discord.model_copy(
        update={"max_concurrent_digests": limit}
    )
    rt = dataclasses.replace(
        ready.rt, settings=ready.rt.settings.model_copy(update={"discord": discord_settings})
    )
    jobs = Jobs(rt, ready.jobs.publisher)  # a process started with max_concurrent_digests = 2
    h = ready.harness
    for n in range(limit + 3):
        guild = await h.add_guild(f"Guild {n}")
        channel = next(iter(guild.channels.values()))
        await h.fake.wait_until(
            lambda c=channel: ready.bot.get_channel(c.id) is not None, 3.0, "GUILD_CREATE"
        )
        await set_up(ready, guild.id, channel.id)
    running = peak = 0
    real = rt.delivery.deliver

    async def watched(*args, **kwargs):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.02)
            return await real(*args, **kwargs)
        finally:
            running -= 1

    monkeypatch.setattr(rt.delivery, "deliver", watched)
    configs = await ready.rt.guilds.active()
    assert len(configs) == limit + 3
    # The daily jobs, as the scheduler fires them: all at once, not through the sweep.
    await asyncio.gather(*(jobs.deliver_guild(c.guild_id) for c in configs))
    assert peak == limit
    assert len(message_posts(ready)) == len(configs)


async def test_by_default_many_digests_are_posted_at_once(ready, monkeypatch):
    """No fixed handful of slots: the request budget sets the pace, not a semaphore of 4."""
    h = ready.harness
    for n in range(6):
        guild = await h.add_guild(f"Guild {n}")
        channel = next(iter(guild.channels.values()))
        await h.fake.wait_until(
            lambda c=channel: ready.bot.get_channel(c.id) is not None, 3.0, "GUILD_CREATE"
        )
        await set_up(ready, guild.id, channel.id)
    running = peak = 0
    real = ready.rt.delivery.deliver

    async def watched(*args, **kwargs):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.02)
            return await real(*args, **kwargs)
        finally:
            running -= 1

    monkeypatch.setattr(ready.rt.delivery, "deliver", watched)
    configs = await ready.rt.guilds.active()
    await asyncio.gather(*(ready.jobs.deliver_guild(c.guild_id) for c in configs))
    assert peak == len(configs) == 6
    assert len(message_posts(ready)) == len(configs)


async def test_a_heartbeat_just_after_the_digest_finished_is_no_warning(ready, caplog):
    config = await ready.configure(post_time="10:30")
    delivery = ready.rt.delivery
    record = await ready.rt.digest_log.begin(config.guild_id, dt.date(2020, 12, 23))
    await ready.rt.digest_log.finish(record.id, "sent")
    delivery.heartbeat_seconds = 0.01
    async with delivery._heartbeat(record):
        await asyncio.sleep(0.1)  # several beats' time: the first finds it finished, and stops
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
