"""Hostile input stored alike on every backend, and failing no write on PostgreSQL: NUL
characters (which PostgreSQL's text cannot hold) are dropped on the way in, counts beyond a
32-bit INTEGER are stored as its bounds, and Discord's 64-bit snowflakes are kept whole."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from bot.core.models import Window
from bot.storage.digests import DigestRepository
from bot.storage.engine import Database
from bot.storage.guilds import GuildRepository
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository
from bot.storage.streams import StreamRepository
from bot.storage.types import without_nul
from tests.storage.factories import T0, make_mention, make_paper

WINDOW = Window(T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=1))
GUILD = 123456789012345678


def test_without_nul_cleans_strings_in_containers_and_leaves_the_rest() -> None:
    assert without_nul("a\x00b\x00") == "ab"
    assert without_nul(["\x00x", ("y\x00",), {"k\x00": "v\x00"}]) == ["x", ("y",), {"k": "v"}]
    assert without_nul(None) is None
    assert without_nul(7) == 7
    text = "plain"
    assert without_nul(text) is text  # no copy when there is nothing to drop


async def test_a_paper_with_nuls_everywhere_is_stored_without_them(db: Database) -> None:
    repo = PaperRepository(db)
    paper = make_paper(
        "2503.00001",
        title="Attention\x00 is all\x00 you need",
        abstract="\x00An abstract\x00.",
        authors=("Ada\x00 Lovelace", "Alan Turing\x00"),
        comment="10 pages\x00",
        journal_ref="J.\x00 Test",
        doi="10.1000/\x00xyz",
    )
    await repo.upsert([paper], T0)
    stored = await repo.get("2503.00001")
    assert stored is not None
    assert stored.title == "Attention is all you need"
    assert stored.abstract == "An abstract."
    assert stored.authors == ("Ada Lovelace", "Alan Turing")
    assert (stored.comment, stored.journal_ref, stored.doi) == (
        "10 pages",
        "J. Test",
        "10.1000/xyz",
    )
    # The text the search index reads lost them too: the words are found.
    assert [p.arxiv_id for p in await repo.search("attention lovelace")] == ["2503.00001"]


@pytest.mark.parametrize("how", ["upsert", "upsert_discovered"])
async def test_a_post_with_nuls_is_stored_without_them_and_found_by_its_key(
    db: Database, how: str
) -> None:
    repo = MentionRepository(db)
    post = dataclasses.replace(
        make_mention("17\x0042", text="a\x00 paper\x00", arxiv_ids=("2503.00001",)),
        url="https://example.org/\x0017",
        author="some\x00one",
        author_name="Some\x00 One",
        lang="e\x00n",
    )
    assert await getattr(repo, how)([post], T0) == 1
    (stored,) = await repo.in_window(WINDOW)
    mention = stored.mention
    assert (mention.post_id, mention.text, mention.lang) == ("1742", "a paper", "en")
    assert mention.arxiv_ids == ("2503.00001",)
    assert (mention.url, mention.author, mention.author_name) == (
        "https://example.org/17",
        "someone",
        "Some One",
    )
    assert mention.metrics == ({"reposts": 1, "likes": 2} if how == "upsert" else {})
    # The same post again (a refresh, a replay) is the same row, not a second one.
    later = T0 + dt.timedelta(minutes=5)
    assert await repo.upsert([post], later) == 1
    assert await repo.record_refresh([post], later + dt.timedelta(minutes=5)) == 1
    assert [s.mention.post_id for s in await repo.in_window(WINDOW)] == ["1742"]
    assert len(await repo.history("x", "1742")) == (3 if how == "upsert" else 2)
    assert await repo.delete_posts("x", ["17\x0042"]) == 1
    assert await repo.in_window(WINDOW) == []


async def test_an_account_prefix_with_a_nul_reaches_its_posts(db: Database) -> None:
    repo = MentionRepository(db)
    posts = [
        make_mention(f"at://did:plc:abc/app.bsky.feed.post/{n}", source="bluesky") for n in (1, 2)
    ]
    await repo.upsert_discovered(posts, T0)
    found = await repo.by_accounts("bluesky", ["at://did:plc:\x00abc/"], WINDOW)
    assert len(found) == 2
    assert await repo.delete_with_prefix("bluesky", "at://did:plc:abc\x00/") == 2


async def test_reasons_errors_and_names_with_nuls_are_stored_without_them(db: Database) -> None:
    guilds = GuildRepository(db, clock=lambda: T0)
    config = await guilds.update(GUILD, paused=True, pause_reason="spam\x00 in the channel")
    assert config.pause_reason == "spam in the channel"

    log = DigestRepository(db, clock=lambda: T0)
    record = await log.begin(GUILD, T0.date(), owner="host\x00/boot/1/2")
    assert record is not None
    assert record.owner == "host/boot/1/2"
    done = await log.finish(record.id, "failed", error="Discord said: \x00bad\x00 request")
    assert done.error == "Discord said: bad request"

    run = await RunRepository(db).record(
        "x", WINDOW, T0, T0, 0, 1, error="HTTP 500: \x00oops", error_kind="unavailable"
    )
    stored = (await RunRepository(db).latest_by_source())["x"]
    assert stored.error == "HTTP 500: oops"
    assert stored.id == run.id

    streams = StreamRepository(db)
    await streams.save_cursor("bluesky", 42, "wss://jet\x00stream.test", T0)
    cursor = await streams.cursor("bluesky")
    assert cursor is not None
    assert cursor.instance == "wss://jetstream.test"


async def test_counts_beyond_32_bits_are_stored_as_the_largest(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    repo = MentionRepository(db)
    huge = make_mention("1", metrics={"likes": 10**12, "reposts": 7, "replies": -(10**12)})
    ok = make_mention("2", metrics={"likes": 2**31 - 1})
    assert await repo.upsert([huge, ok], T0) == 2
    stored = {s.mention.post_id: s.mention.metrics for s in await repo.in_window(WINDOW)}
    assert stored == {
        "1": {"likes": 2**31 - 1, "reposts": 7, "replies": -(2**31)},
        "2": {"likes": 2**31 - 1},
    }
    assert "x post 1: likes = 1000000000000 is out of range" in caplog.text


async def test_64_bit_snowflakes_of_a_guild_channel_and_message_are_kept_whole(
    db: Database,
) -> None:
    guild, channel, message = 2**63 - 1, 2**62 + 12345, 1_300_000_000_000_000_000
    guilds = GuildRepository(db, clock=lambda: T0)
    config = await guilds.update(guild, channel_id=channel, alert_channel_id=channel + 1)
    assert (config.guild_id, config.channel_id, config.alert_channel_id) == (
        guild,
        channel,
        channel + 1,
    )
    assert [c.guild_id for c in await guilds.active()] == [guild]
    log = DigestRepository(db, clock=lambda: T0)
    claimed = await log.claim(guild, T0.date(), papers=["2503.00001"])
    assert claimed is not None
    record, planned = claimed
    await log.add_message(record.id, message)
    again = await log.get(guild, T0.date())
    assert again is not None
    assert again.message_ids == (message,)
    assert planned == ["2503.00001"]
    # Shown: a message of its digest was posted (joined on the 64-bit guild id).
    assert set(await log.shown(guild, T0 - dt.timedelta(days=1))) == {"2503.00001"}
