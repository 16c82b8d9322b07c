"""Field ranking, rising and second chances, through the real bot on the fake Discord:
``/digest settings ranking:``, the digest of a field-mode server, ``/paper``'s chart and
"Why it ranks", ``/hot sort:rising`` and a paper's second chance in the daily digest."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import struct
import sys
from typing import Any

import pytest

from bot.core.heat import announce_day
from bot.core.models import Mention, RankingMode, Window
from tests.bot.conftest import posted_ids, said
from tests.storage.factories import make_mention, make_paper

UTC = dt.UTC
# The harness's clock: Wednesday 2020-12-23 10:50 UTC, 20 minutes after a 10:30 UTC slot.
NOW = dt.datetime(2020, 12, 23, 10, 50, tzinfo=UTC)
# 07:00 ET on Monday 2020-12-21, before the 14:00 cutoff: announced that Monday evening.
MONDAY = dt.datetime(2020, 12, 21, 12, 0, tzinfo=UTC)
REFUSED = "⚠️ You need the **Manage Server** permission to do that."
# "**1.** [Title](https://arxiv.org/abs/2012.90019) — **1,050** · `cs.LG`"
COMPACT_LINE = re.compile(r"\(https://arxiv\.org/abs/([^)]+)\) — \*\*[\d,]+\*\* · `([^`]+)`")


def post(
    post_id: str,
    arxiv_id: str,
    *,
    author: str,
    created_at: dt.datetime,
    likes: int,
    reposts: int = 0,
) -> Mention:
    """An X post by ``author`` linking one paper (score = reposts + likes)."""
    mention = make_mention(
        post_id,
        arxiv_ids=(arxiv_id,),
        created_at=created_at,
        metrics={"reposts": reposts, "likes": likes},
    )
    return dataclasses.replace(mention, author=author, author_name=author)


async def store(botworld, papers=(), snapshots=()) -> None:
    """Store papers, then each ``(fetched_at, mentions)`` snapshot in order, behind the
    ingestion's back (which would drop the cached scores itself)."""
    rt = botworld.rt
    if papers:
        await rt.papers.upsert(list(papers), botworld.clock.now)
    for fetched_at, mentions in snapshots:
        await rt.mentions.upsert(list(mentions), fetched_at)
    rt.digests.invalidate()


def compact_lines(message: dict[str, Any]) -> list[tuple[str, str]]:
    """(arxiv id, primary category) of each line of a compact digest, in order."""
    (embed,) = message["embeds"]
    return [
        COMPACT_LINE.search(line).groups()  # type: ignore[union-attr]
        for line in embed["description"].splitlines()
    ]


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, the first after the 8-byte signature."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (kind, length) == (b"IHDR", 13)
    return struct.unpack(">II", data[16:24])


def fields_of(embed: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["value"] for f in embed.get("fields") or []}


async def cached_guild(botworld, name: str):
    """A second guild and its channel, once the bot has them in its cache (GUILD_CREATE)."""
    guild = await botworld.harness.add_guild(name)
    channel = next(iter(guild.channels.values()))
    await botworld.fake.wait_until(
        lambda: botworld.bot.get_channel(channel.id) is not None, 3.0, "GUILD_CREATE"
    )
    return guild, channel


async def set_up(botworld, guild_id: int, channel_id: int, categories=(), **options) -> None:
    """A guild set up yesterday for a digest at 10:30 UTC (its slot today is owed)."""
    rt = botworld.rt
    now = botworld.clock.now
    botworld.clock.now = now - dt.timedelta(days=1)
    try:
        await rt.guild_settings.set_channel(guild_id, channel_id)
        await rt.guild_settings.set_time(guild_id, "10:30", "UTC")
    finally:
        botworld.clock.now = now
    for category in categories:
        await rt.guild_settings.add_category(guild_id, category)
    await rt.guild_settings.set_options(guild_id, **options)


# -- 1. /digest settings ranking: -------------------------------------------------------------


async def test_ranking_setting_is_stored_shown_and_reserved_to_moderators(botworld):
    gid = botworld.guild_id
    assert (await botworld.rt.guild_settings.config(gid)).ranking == "absolute"

    cb = await botworld.reply("digest", "settings", member=botworld.mod, ranking="field")
    assert cb.ephemeral
    assert (await botworld.rt.guild_settings.config(gid)).ranking == "field"
    assert "ranking: **field**" in said(cb)  # the answer is the status, with the new setting
    text = said(await botworld.reply("digest", "status"))
    assert "ranking: **field** (each category's top 10% of its day, posted by 2+ people)" in text
    assert "threshold:" not in text  # field mode has no score threshold

    # A member without Manage Server is refused privately, and nothing changes.
    _, cb = await botworld.run("digest", "settings", member=botworld.reader, ranking="absolute")
    assert cb.type == 4
    assert cb.ephemeral
    assert said(cb) == REFUSED
    assert (await botworld.rt.guild_settings.config(gid)).ranking == "field"

    cb = await botworld.reply("digest", "settings", member=botworld.mod, ranking="absolute")
    assert cb.ephemeral
    assert (await botworld.rt.guild_settings.config(gid)).ranking == "absolute"
    text = said(await botworld.reply("digest", "status"))
    assert "ranking: absolute · threshold: 50 (default)" in text
    assert "**field**" not in text
    h = botworld.harness
    assert h.fake.messages(h.channel) == []  # settings and status post nothing publicly


async def test_ranking_setting_offers_only_absolute_and_field(botworld):
    stored = botworld.harness.world.guild_commands[botworld.guild_id]
    (command,) = [c for c in stored if c["name"] == "digest"]
    (settings,) = [o for o in command["options"] if o["name"] == "settings"]
    (ranking,) = [o for o in settings["options"] if o["name"] == "ranking"]
    assert [c["value"] for c in ranking["choices"]] == ["absolute", "field"]


# -- 2. a field-mode server's digest ----------------------------------------------------------


async def multi_field_day(botworld) -> tuple[list[str], list[str]]:
    """20 cs.LG papers scoring 100 to 1,050 and 20 math.AG papers scoring 5 to 43, all
    announced on Monday 2020-12-21 and posted this morning by two people each. Returns the
    ids of each field, best first."""
    learning = [
        make_paper(
            f"2012.9{n:04d}", title=f"Deep learning {n}", categories=("cs.LG",), published=MONDAY
        )
        for n in range(20)
    ]
    algebra = [
        make_paper(
            f"2012.91{n:03d}", title=f"Moduli space {n}", categories=("math.AG",), published=MONDAY
        )
        for n in range(20)
    ]
    scores = {p.arxiv_id: 100 + 50 * n for n, p in enumerate(learning)}
    scores |= {p.arxiv_id: 5 + 2 * n for n, p in enumerate(algebra)}
    morning = dt.datetime(2020, 12, 23, 6, 0, tzinfo=UTC)
    mentions = []
    for arxiv_id, score in scores.items():
        first = score // 2
        for k, likes in enumerate((first, score - first)):
            mentions.append(
                post(
                    f"{arxiv_id}-{k}",
                    arxiv_id,
                    author=f"fan{k}-{arxiv_id}",
                    created_at=morning,
                    likes=likes,
                )
            )
    await store(botworld, [*learning, *algebra], [(NOW - dt.timedelta(minutes=20), mentions)])
    by_score = sorted(scores, key=scores.__getitem__, reverse=True)
    return (
        [i for i in by_score if i.startswith("2012.90")],
        [i for i in by_score if i.startswith("2012.91")],
    )


async def test_a_field_mode_server_gets_each_fields_hottest_papers_in_turn(botworld):
    h = botworld.harness
    learning, algebra = await multi_field_day(botworld)
    followed = ("cs.LG", "math.AG")
    await botworld.configure(post_time="10:30", style="compact", categories=followed, top=25)
    field_guild, field_channel = await cached_guild(botworld, "Algebraists")
    await set_up(botworld, field_guild.id, field_channel.id, followed, style="compact", top=25)
    await botworld.rt.guild_settings.set_options(field_guild.id, ranking="field")

    await botworld.jobs.deliver_guild(botworld.guild_id)
    await botworld.jobs.deliver_guild(field_guild.id)

    # Absolute, threshold 50: every cs.LG paper (100 and more), no math.AG paper (43 at most).
    (absolute,) = h.fake.messages(h.channel)
    assert absolute["content"].startswith(
        "## 🔥 Hot Papers 2020-12-23\n`cs.LG`, `math.AG` · 20 papers"
    )
    lines = compact_lines(absolute)
    assert [i for i, _ in lines] == learning
    assert {category for _, category in lines} == {"cs.LG"}

    # Field: each field's top 10% of its 20 papers of the day (its best two), taking turns.
    (field,) = h.fake.messages(field_channel)
    assert field["content"].startswith("## 🔥 Hot Papers 2020-12-23\n`cs.LG`, `math.AG` · 4 papers")
    lines = compact_lines(field)
    assert sorted(i for i, _ in lines) == sorted([*learning[:2], *algebra[:2]])
    categories = [category for _, category in lines]
    assert set(categories) == {"cs.LG", "math.AG"}
    assert categories[0] != categories[1]  # interleaved
    assert categories[:2] == categories[2:]
    assert [i for i, c in lines if c == "cs.LG"] == learning[:2]  # hottest first in each
    assert [i for i, c in lines if c == "math.AG"] == algebra[:2]

    for gid, count in ((botworld.guild_id, 20), (field_guild.id, 4)):
        record = await botworld.rt.digest_log.get(gid, dt.date(2020, 12, 23))
        assert (record.status, record.paper_count) == ("sent", count)
    assert h.fake.violations == []


async def test_a_field_mode_thread_digest_says_why_each_paper_ranks(botworld):
    h = botworld.harness
    _learning, algebra = await multi_field_day(botworld)
    await botworld.configure(post_time="10:30", categories=("math.AG",))
    await botworld.rt.guild_settings.set_options(botworld.guild_id, ranking="field")
    await botworld.jobs.deliver_guild(botworld.guild_id)
    (header,) = h.fake.messages(h.channel)
    (message,) = h.fake.messages(int(header["id"]))  # the thread
    assert posted_ids([message]) == algebra[:2]
    standing = fields_of(message["embeds"][0])["Why it ranks"]
    # The best of 20: the 97.5th percentile.
    assert standing.startswith("🔥 top 3% of `math.AG` on 2020-12-21 (20 papers)")


# -- 3. /paper: the chart and "Why it ranks" --------------------------------------------------


async def charted_papers(botworld) -> None:
    """2012.93000 (math.AG): posted by two people, 150 now, 40 a day ago (rising);
    2012.93001 (math.AG): 60 since Monday, nothing since (not rising); 2012.93002: nobody."""
    published = dt.datetime(2020, 12, 18, 16, 0, tzinfo=UTC)  # Friday 11:00 ET: Sunday's
    rising = make_paper(
        "2012.93000",
        title="Tropical curves",
        categories=("math.AG", "math.CO"),
        published=published,
    )
    steady = make_paper(
        "2012.93001", title="Hodge cycles", categories=("math.AG",), published=published
    )
    quiet = make_paper(
        "2012.93002", title="Unread sheaves", categories=("math.AG",), published=published
    )
    monday = dt.datetime(2020, 12, 21, 9, 0, tzinfo=UTC)
    tuesday = dt.datetime(2020, 12, 22, 12, 0, tzinfo=UTC)

    def alice(likes: int, reposts: int = 0) -> Mention:
        return post(
            "alice-1", "2012.93000", author="alice", created_at=monday, likes=likes, reposts=reposts
        )

    def bob(likes: int) -> Mention:
        return post("bob-1", "2012.93000", author="bob", created_at=tuesday, likes=likes)

    carol = post("carol-1", "2012.93001", author="carol", created_at=monday, likes=60)
    await store(
        botworld,
        [rising, steady, quiet],
        [
            (monday + dt.timedelta(hours=1), [alice(10), carol]),
            (dt.datetime(2020, 12, 22, 9, 0, tzinfo=UTC), [alice(40)]),
            (tuesday + dt.timedelta(hours=1), [bob(5)]),
            (dt.datetime(2020, 12, 23, 10, 0, tzinfo=UTC), [alice(100, reposts=20), bob(30)]),
        ],
    )


@pytest.fixture
def charts(botworld, monkeypatch):
    """Every PNG ``/paper`` renders, as rendered (the fake Discord records what was uploaded:
    the two must be the same bytes). (The extension's module is the one the running bot
    loaded.)"""
    module = sys.modules[type(botworld.bot.get_cog("Papers")).__module__]
    rendered: list[bytes] = []
    real = module.render_chart

    def spy(*args: Any, **kwargs: Any) -> bytes:
        png = real(*args, **kwargs)
        rendered.append(png)
        return png

    monkeypatch.setattr(module, "render_chart", spy)
    return rendered


def followup_request(botworld):
    (request,) = [
        r
        for r in botworld.fake.requests_to("POST", "/webhooks/*/*")
        if r.status == 200 or r.status == 204
    ]
    return request


async def test_paper_attaches_its_popularity_chart_and_says_why_it_ranks(botworld, charts):
    await charted_papers(botworld)
    result, cb = await botworld.run("paper", query="2012.93000")
    assert cb.deferred
    (message,) = await result.followups(count=1)
    (embed,) = message["embeds"]
    name = "popularity-2012.93000.png"
    assert embed["image"]["url"] == f"attachment://{name}"

    # The followup is a multipart upload of that one file.
    request = followup_request(botworld)
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    (attachment,) = request.body["attachments"]
    assert attachment["filename"] == name
    assert attachment["description"] == "Score over time"
    (png,) = charts
    assert png_size(png) == (800, 400)
    (uploaded,) = request.files.values()
    assert uploaded == (name, png)  # the file went with the JSON, byte for byte

    fields = fields_of(embed)
    assert fields["Score"].startswith("**150** — X: 20 reposts, 130 likes")
    standing = fields["Why it ranks"]
    day = announce_day(dt.datetime(2020, 12, 18, 16, 0, tzinfo=UTC)).isoformat()
    assert day == "2020-12-20"
    # Two math.AG papers announced that Sunday (a cohort padded to 10): 150 is the 95th
    # percentile.
    assert standing.startswith(f"🔥 top 5% of `math.AG` on {day} (2 papers)")
    # 150 now, 40 as it stood 24 hours ago (bob had not posted yet).
    assert "📈 rising: +110 in the last 24 h" in standing
    assert "not rising" not in standing
    assert botworld.fake.violations == []


async def test_paper_that_is_not_rising_says_so(botworld, charts):
    await charted_papers(botworld)
    result, _ = await botworld.run("paper", query="2012.93001")
    (message,) = await result.followups(count=1)
    (embed,) = message["embeds"]
    assert embed["image"]["url"] == "attachment://popularity-2012.93001.png"
    standing = fields_of(embed)["Why it ranks"]
    assert "`math.AG`" in standing
    assert "top " in standing
    assert standing.endswith("not rising: +0 in the last 24 h")
    (png,) = charts
    assert png_size(png) == (800, 400)


async def test_paper_nobody_posted_has_no_chart(botworld, charts):
    await charted_papers(botworld)
    result, _ = await botworld.run("paper", query="2012.93002")
    (message,) = await result.followups(count=1)
    (embed,) = message["embeds"]
    assert "image" not in embed
    fields = fields_of(embed)
    assert fields["Score"] == "Nobody has posted this paper in the last 7 days."
    assert "Why it ranks" not in fields
    request = followup_request(botworld)
    assert not request.headers["Content-Type"].startswith("multipart/")
    assert not request.body.get("attachments")
    assert charts == []  # nothing was drawn


# -- 4. /hot sort:rising ----------------------------------------------------------------------


async def rising_week(botworld) -> None:
    """2012.94000: 500 since Sunday, +5 today; 2012.94001: 70, all posted this morning;
    2012.94002: 300 since Sunday, nothing since."""
    wednesday = dt.datetime(2020, 12, 16, 12, 0, tzinfo=UTC)
    old = make_paper("2012.94000", title="Old giant", categories=("cs.LG",), published=wednesday)
    new = make_paper("2012.94001", title="Fresh climber", categories=("cs.LG",), published=MONDAY)
    flat = make_paper(
        "2012.94002", title="Flat plateau", categories=("cs.LG",), published=wednesday
    )
    sunday = dt.datetime(2020, 12, 20, 10, 0, tzinfo=UTC)
    morning = dt.datetime(2020, 12, 23, 6, 0, tzinfo=UTC)

    def giant(likes: int) -> Mention:
        return post("giant", "2012.94000", author="dan", created_at=sunday, likes=likes)

    plateau = post("plateau", "2012.94002", author="erin", created_at=sunday, likes=300)
    climbers = [
        post("climb-1", "2012.94001", author="fay", created_at=morning, likes=40),
        post("climb-2", "2012.94001", author="gus", created_at=morning, likes=30),
    ]
    await store(
        botworld,
        [old, new, flat],
        [
            (sunday + dt.timedelta(hours=1), [giant(500), plateau]),
            (dt.datetime(2020, 12, 23, 10, 0, tzinfo=UTC), [giant(505), *climbers]),
        ],
    )


def hot_ids(message: dict[str, Any]) -> list[str]:
    return [i for i, _ in compact_lines(message)]


async def test_hot_sort_rising_orders_by_the_last_24_hours(botworld):
    await rising_week(botworld)
    result, cb = await botworld.run("hot", sort="rising")
    assert cb.deferred
    (message,) = await result.followups(count=1)
    (embed,) = message["embeds"]
    assert embed["title"] == "Rising now · 2020-12-23"
    # +70 today beats +5 on 505; the week's paper that gained nothing is not rising at all.
    assert hot_ids(message) == ["2012.94001", "2012.94000"]


async def test_hot_by_score_is_unchanged(botworld):
    await rising_week(botworld)
    result, _ = await botworld.run("hot", days=7)
    (message,) = await result.followups(count=1)
    assert message["embeds"][0]["title"] == "Hot now · 2020-12-23"
    assert hot_ids(message) == ["2012.94000", "2012.94002", "2012.94001"]

    result, _ = await botworld.run("hot")  # the default: score, the last day
    (message,) = await result.followups(count=1)
    assert message["embeds"][0]["title"] == "Hot now · 2020-12-23"
    assert hot_ids(message) == ["2012.94001"]


async def test_hot_sort_rising_with_nothing_gaining_says_so(botworld):
    await rising_week(botworld)
    result, _ = await botworld.run("hot", category="math.AG", sort="rising")
    (message,) = await result.followups(count=1)
    assert said(message) == "No paper in math.AG gained attention in the last 24 hours."


# -- 5. second chances ------------------------------------------------------------------------

LATE = "2012.95000"  # announced Sunday evening; half its score came only this morning
TODAY = "2012.95001"  # 200 this morning: today's digest
TOMORROW = "2012.95002"  # 150 tomorrow morning: tomorrow's digest
# A server getting digests since before the late paper was announced (a second chance needs a
# first one).
LAST_WEEK = dt.datetime(2020, 12, 16, 10, 0, tzinfo=UTC)


def late_posts(likes: int, *, ivy: bool = True) -> list[Mention]:
    """The late paper's posts: hal's on Monday, and (``ivy``) ivy's this morning."""
    monday = dt.datetime(2020, 12, 21, 12, 0, tzinfo=UTC)
    this_morning = dt.datetime(2020, 12, 23, 8, 0, tzinfo=UTC)
    posts = [post("late-1", LATE, author="hal", created_at=monday, likes=likes)]
    if ivy:
        posts.append(post("late-2", LATE, author="ivy", created_at=this_morning, likes=likes))
    return posts


async def second_chance_week(botworld) -> None:
    friday = dt.datetime(2020, 12, 18, 16, 0, tzinfo=UTC)  # 11:00 ET: Sunday's announcement
    assert announce_day(friday) == dt.date(2020, 12, 20)  # three days before the digest
    late = make_paper(LATE, title="Late bloomer", categories=("cs.LG",), published=friday)
    today = make_paper(TODAY, title="Morning star", categories=("cs.LG",), published=MONDAY)
    tomorrow = make_paper(TOMORROW, title="Next big thing", categories=("cs.LG",), published=MONDAY)
    monday_fetch = dt.datetime(2020, 12, 21, 13, 0, tzinfo=UTC)
    await store(
        botworld,
        [late, today, tomorrow],
        [
            (monday_fetch, late_posts(30, ivy=False)),
            (dt.datetime(2020, 12, 22, 10, 0, tzinfo=UTC), late_posts(30, ivy=False)),
            (
                dt.datetime(2020, 12, 23, 10, 0, tzinfo=UTC),
                [
                    *late_posts(30),
                    post("star", TODAY, author="jan", created_at=NOW.replace(hour=7), likes=200),
                ],
            ),
        ],
    )


async def the_next_day(botworld) -> None:
    """Thursday 10:50: the late paper gains again (+60 in 24 h); a new paper is posted."""
    botworld.clock.now = NOW + dt.timedelta(days=1)
    fetched = dt.datetime(2020, 12, 24, 10, 0, tzinfo=UTC)
    new = post("next", TOMORROW, author="kim", created_at=fetched.replace(hour=8), likes=150)
    await store(botworld, (), [(fetched, [*late_posts(60), new])])


async def test_a_late_riser_gets_one_second_chance_in_a_thread_digest(botworld):
    h = botworld.harness
    await second_chance_week(botworld)
    await botworld.configure(post_time="10:30", set_up_at=LAST_WEEK)
    await botworld.jobs.deliver_guild(botworld.guild_id)

    (header,) = h.fake.messages(h.channel)
    assert header["content"].startswith("## 🔥 Hot Papers 2020-12-23\nall categories · 2 papers")
    (message,) = h.fake.messages(int(header["id"]))
    # 30 in today's window (under 50): not the day's paper; 60 over the week, 30 of it gained
    # in the last 24 hours: a second chance, after the day's own papers.
    assert posted_ids([message]) == [TODAY, LATE]
    today, late = message["embeds"]
    assert "second chance" not in said({"embeds": [today]})
    assert fields_of(late)["Why it ranks"] == "📈 second chance: +30 in the last 24 h"
    assert fields_of(late)["Score"].startswith("**60** — X: 0 reposts, 60 likes")

    await the_next_day(botworld)
    # Rising again, and it would have a second chance again, were it not shown yesterday.
    now = botworld.clock.now
    day = Window(now - dt.timedelta(days=1), now)
    config = await botworld.rt.guild_settings.config(botworld.guild_id)
    chances = await botworld.rt.digests.second_chances(
        day, ranking=RankingMode.ABSOLUTE, since=config.active_since
    )
    assert [r.paper.arxiv_id for r in chances] == [LATE]
    await botworld.jobs.deliver_guild(botworld.guild_id)
    headers = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    assert headers[1]["content"].startswith(
        "## 🔥 Hot Papers 2020-12-24\nall categories · 1 paper "
    )
    (message,) = h.fake.messages(int(headers[1]["id"]))
    assert posted_ids([message]) == [TOMORROW]
    record = await botworld.rt.digest_log.get(botworld.guild_id, dt.date(2020, 12, 24))
    assert (record.status, record.paper_count) == ("sent", 1)
    assert h.fake.violations == []


async def test_a_late_riser_is_marked_in_a_compact_digest_once(botworld):
    h = botworld.harness
    await second_chance_week(botworld)
    await botworld.configure(post_time="10:30", style="compact", set_up_at=LAST_WEEK)
    await botworld.jobs.deliver_guild(botworld.guild_id)
    (message,) = h.fake.messages(h.channel)
    lines = message["embeds"][0]["description"].splitlines()
    assert [i for i, _ in compact_lines(message)] == [TODAY, LATE]
    assert not lines[0].endswith("📈")
    assert lines[1].endswith(" · `cs.LG` · 📈")

    await the_next_day(botworld)
    await botworld.jobs.deliver_guild(botworld.guild_id)
    _first, second = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    assert second["content"].startswith("## 🔥 Hot Papers 2020-12-24")
    assert [i for i, _ in compact_lines(second)] == [TOMORROW]
    assert "📈" not in second["embeds"][0]["description"]


async def test_a_preview_shows_the_second_chance_too(botworld):
    await second_chance_week(botworld)
    await botworld.configure(post_time="10:30", style="compact", set_up_at=LAST_WEEK)
    result, _ = await botworld.run("digest", "preview", member=botworld.mod)
    (message,) = await result.followups(count=1)
    assert [i for i, _ in compact_lines(message)] == [TODAY, LATE]
    assert message["embeds"][0]["description"].splitlines()[1].endswith("📈")


async def test_a_server_set_up_after_the_announcement_gets_no_second_chance(botworld):
    h = botworld.harness
    await second_chance_week(botworld)
    await botworld.configure(post_time="10:30", style="compact")  # set up yesterday
    await botworld.jobs.deliver_guild(botworld.guild_id)
    (message,) = h.fake.messages(h.channel)
    assert [i for i, _ in compact_lines(message)] == [TODAY]
    assert "📈" not in message["embeds"][0]["description"]
