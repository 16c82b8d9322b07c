"""``/digest channel|time|settings|preview|status|pause|resume`` through INTERACTION_CREATE."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.bot.conftest import buttons, said
from tests.fakes.discord import Permission

MODERATOR_COMMANDS = [
    ("channel", {}),
    ("time", {"time": "08:00"}),
    ("settings", {"top": 3}),
    ("preview", {}),
    ("pause", {}),
    ("resume", {}),
]


async def cached_channel(botworld, name: str, **kwargs):
    """A new text channel, once the bot has it in its cache (CHANNEL_CREATE)."""
    channel = await botworld.harness.text_channel(name, **kwargs)
    await botworld.fake.wait_until(
        lambda: botworld.bot.get_channel(channel.id) is not None, 3.0, "CHANNEL_CREATE"
    )
    return channel


# -- /digest channel --------------------------------------------------------------------------


async def test_channel_is_set_when_the_bot_can_post(botworld):
    papers = await cached_channel(botworld, "papers")
    _, cb = await botworld.run(
        "digest", "channel", member=botworld.mod, options={"channel": papers}
    )
    assert cb.ephemeral
    assert said(cb) == (f"✅ The daily digest will be posted in <#{papers.id}> at **09:00 UTC**.")
    config = await botworld.rt.guild_settings.config(botworld.guild_id)
    assert config.channel_id == papers.id
    assert botworld.fake.messages(papers) == []  # setting a channel posts nothing


@pytest.mark.parametrize(
    ("deny", "named"),
    [
        (Permission.SEND_MESSAGES, ["Send Messages"]),
        (Permission.EMBED_LINKS, ["Embed Links"]),
        (Permission.SEND_MESSAGES | Permission.EMBED_LINKS, ["Send Messages", "Embed Links"]),
    ],
)
async def test_channel_names_the_missing_permissions(botworld, deny, named):
    muted = await cached_channel(botworld, "muted", bot_deny=deny)
    _, cb = await botworld.run("digest", "channel", member=botworld.mod, options={"channel": muted})
    assert cb.ephemeral
    text = said(cb)
    assert text.startswith(f"⚠️ I can't post in <#{muted.id}>: I'm missing")
    for name in named:
        assert f"**{name}**" in text
    assert (await botworld.rt.guild_settings.config(botworld.guild_id)).channel_id is None


async def test_channel_without_thread_permissions_is_accepted_with_a_note(botworld):
    nothreads = await cached_channel(
        botworld, "no-threads", bot_deny=Permission.CREATE_PUBLIC_THREADS
    )
    _, cb = await botworld.run(
        "digest", "channel", member=botworld.mod, options={"channel": nothreads}
    )
    text = said(cb)
    assert text.startswith("✅")
    assert "without Create Public Threads the papers go in the channel" in text


async def test_channel_after_a_deleted_channel_resumes_the_digest(botworld):
    gid = botworld.guild_id
    await botworld.rt.guild_settings.set_channel(gid, 1234)
    await botworld.rt.guilds.update(gid, paused=True, pause_reason="digest channel deleted: x")
    papers = await cached_channel(botworld, "papers")
    _, cb = await botworld.run(
        "digest", "channel", member=botworld.mod, options={"channel": papers}
    )
    assert said(cb).startswith("✅")
    config = await botworld.rt.guild_settings.config(gid)
    assert config.channel_id == papers.id
    assert not config.paused


async def test_channel_keeps_a_moderators_pause(botworld):
    gid = botworld.guild_id
    await botworld.rt.guild_settings.pause(gid)
    papers = await cached_channel(botworld, "papers")
    _, cb = await botworld.run(
        "digest", "channel", member=botworld.mod, options={"channel": papers}
    )
    assert "paused" in said(cb)
    assert (await botworld.rt.guild_settings.config(gid)).paused


# -- /digest time -----------------------------------------------------------------------------


async def test_time_and_zone(botworld):
    await botworld.rt.guild_settings.set_channel(botworld.guild_id, botworld.harness.channel.id)
    _, cb = await botworld.run(
        "digest", "time", member=botworld.mod, time="7:30", timezone="europe/paris"
    )
    assert cb.ephemeral
    config = await botworld.rt.guild_settings.config(botworld.guild_id)
    assert (config.post_time, config.timezone) == ("07:30", "Europe/Paris")
    # 2020-12-23 10:50Z is 11:50 in Paris: the next 07:30 there is 2020-12-24 06:30Z.
    nxt = int(dt.datetime(2020, 12, 24, 6, 30, tzinfo=dt.UTC).timestamp())
    assert said(cb) == (
        f"✅ The digest goes out daily at **07:30** (Europe/Paris); next: <t:{nxt}:f>."
    )
    # Without a zone the current one is kept.
    await botworld.run("digest", "time", member=botworld.mod, time="18:05")
    config = await botworld.rt.guild_settings.config(botworld.guild_id)
    assert (config.post_time, config.timezone) == ("18:05", "Europe/Paris")


async def test_moving_the_time_later_after_todays_post_announces_tomorrow(botworld):
    await botworld.ingest_reference_day()
    await botworld.configure(post_time="10:30")
    await botworld.jobs.deliver_guild(botworld.guild_id)
    _, cb = await botworld.run("digest", "time", member=botworld.mod, time="18:00")
    # Today's digest is out: the next one is tomorrow's, not today's 18:00.
    nxt = int(dt.datetime(2020, 12, 24, 18, 0, tzinfo=dt.UTC).timestamp())
    assert said(cb).endswith(f"next: <t:{nxt}:f>.")
    cb = await botworld.reply("digest", "status")
    assert f"Next post: <t:{nxt}:f>" in said(cb)


async def test_time_without_a_channel_says_what_is_missing(botworld):
    _, cb = await botworld.run("digest", "time", member=botworld.mod, time="08:00")
    assert said(cb) == (
        "✅ The digest goes out daily at **08:00** (UTC), once a channel is set with "
        "`/digest channel`."
    )
    await botworld.rt.guild_settings.set_channel(botworld.guild_id, botworld.harness.channel.id)
    await botworld.rt.guild_settings.pause(botworld.guild_id)
    _, cb = await botworld.run("digest", "time", member=botworld.mod, time="08:00")
    assert "it is paused: `/digest resume` restarts it" in said(cb)


@pytest.mark.parametrize("bad", ["25:00", "9am", "12:5", "noon", "12:60"])
async def test_time_refuses_what_is_not_hh_mm(botworld, bad):
    _, cb = await botworld.run("digest", "time", member=botworld.mod, time=bad)
    assert cb.ephemeral
    assert "use 24-hour HH:MM" in said(cb)
    assert (await botworld.rt.guild_settings.config(botworld.guild_id)).post_time == "09:00"


async def test_bad_zone_gets_suggestions(botworld):
    _, cb = await botworld.run(
        "digest", "time", member=botworld.mod, time="08:00", timezone="Europe/Pariss"
    )
    assert cb.ephemeral
    text = said(cb)
    assert "`Europe/Pariss` is not an IANA time zone" in text
    assert "Did you mean `Europe/Paris`" in text
    assert (await botworld.rt.guild_settings.config(botworld.guild_id)).post_time == "09:00"


async def test_zone_autocomplete(botworld):
    h = botworld.harness
    choices = await h.autocomplete(
        "digest", "time", focused="timezone", value="paris", member=botworld.mod, time="08:00"
    )
    assert {"name": "Europe/Paris", "value": "Europe/Paris"} in choices
    choices = await h.autocomplete(
        "digest", "time", focused="timezone", value="", member=botworld.mod
    )
    assert choices[0]["value"] == "UTC"
    choices = await h.autocomplete(
        "digest", "time", focused="timezone", value="a", member=botworld.mod
    )
    assert len(choices) == 25


# -- /digest settings -------------------------------------------------------------------------


async def test_settings_are_stored_and_shown(botworld):
    cb = await botworld.reply(
        "digest",
        "settings",
        member=botworld.mod,
        top=3,
        threshold=100.5,
        style="compact",
        empty_day="silent",
    )
    assert cb.ephemeral
    config = await botworld.rt.guild_settings.config(botworld.guild_id)
    assert (config.top_n, config.threshold, config.style, config.empty_day) == (
        3,
        100.5,
        "compact",
        "silent",
    )
    assert (
        "Top: 3 · ranking: absolute · threshold: 100.5 · style: compact · empty days: silent"
        in said(cb)
    )


async def test_settings_without_options_shows_the_current_ones(botworld):
    cb = await botworld.reply("digest", "settings", member=botworld.mod)
    assert "threshold: 50 (default)" in said(cb)


# -- /digest status ---------------------------------------------------------------------------


async def test_status_of_a_new_server(botworld):
    cb = await botworld.reply("digest", "status")
    assert cb.ephemeral
    text = said(cb)
    assert "Channel: not set — use `/digest channel`" in text
    assert "Next post: —" in text
    assert "Last post: never" in text
    for source in ("X", "Hacker News", "Hugging Face"):
        assert f"{source}: not run yet" in text
    assert "No channel is set yet" in text


async def test_status_shows_next_and_last_post_and_the_sources(botworld):
    await botworld.ingest_reference_day()
    await botworld.configure(post_time="10:30")
    await botworld.jobs.deliver_guild(botworld.guild_id)
    cb = await botworld.reply("digest", "status")
    text = said(cb)
    nxt = int(dt.datetime(2020, 12, 24, 10, 30, tzinfo=dt.UTC).timestamp())
    assert f"Next post: <t:{nxt}:f>" in text
    assert "Last post: 2020-12-23 — ✅ sent, 5 papers" in text
    assert "✅ X: 16 mentions" in text
    assert "✅ Hacker News: 0 mentions" in text


async def test_status_explains_a_weekend(botworld):
    botworld.clock.now = dt.datetime(2020, 12, 25, 12, 0, tzinfo=dt.UTC)  # a Friday
    await botworld.configure(post_time="09:00")
    cb = await botworld.reply("digest", "status")
    assert "The next post falls on a weekend" in said(cb)


async def test_status_explains_nothing_above_the_threshold(botworld):
    await botworld.ingest_reference_day()
    await botworld.configure(threshold=100_000)
    cb = await botworld.reply("digest", "status")
    text = said(cb)
    assert "no paper in this server's categories reaches the threshold (100000)" in text
    assert "the digest would be a short message" in text


async def test_status_explains_a_failing_source(botworld):
    botworld.world.x.fail_next(503, times=10)
    await botworld.ingest_reference_day()
    await botworld.configure()
    cb = await botworld.reply("digest", "status")
    text = said(cb)
    assert "❌ X: answered HTTP 503" in text
    assert "X answered HTTP 503: the ranking is incomplete" in text


async def test_status_never_shows_what_a_failing_source_answered(botworld, caplog):
    # Hacker News answers a 404 whose body names an internal host: operators read it in the
    # log (and `hotpapers fetch`), members read a fixed phrase.
    body = "<html>secret-internal-host.corp.example: upstream gateway</html>"
    botworld.world.hackernews.fail_next(404, body, headers={"Content-Type": "text/html"})
    await botworld.ingest_reference_day()
    run = (await botworld.rt.runs.latest_by_source())["hackernews"]
    assert "secret-internal-host" in run.error
    assert "secret-internal-host" in caplog.text
    await botworld.configure()
    cb = await botworld.reply("digest", "status")
    text = said(cb)
    assert "secret" not in text
    assert "upstream" not in text
    assert "❌ Hacker News: answered HTTP 404" in text
    assert "Hacker News answered HTTP 404: the ranking is incomplete" in text


async def test_status_names_a_malformed_answer_and_an_http_status_in_fixed_words(botworld):
    botworld.world.x.malformed_next(b"{not json <secret-x>", times=10)
    botworld.world.hackernews.fail_next(503, times=10)
    await botworld.ingest_reference_day()
    await botworld.configure()
    text = said(await botworld.reply("digest", "status"))
    assert "❌ X: sent a malformed answer" in text
    assert "❌ Hacker News: answered HTTP 503" in text
    assert "secret" not in text


async def test_status_explains_missing_permissions(botworld):
    muted = await cached_channel(botworld, "muted")
    await botworld.configure(channel=muted)
    await botworld.fake.restrict_bot(muted, deny=Permission.EMBED_LINKS)
    await botworld.fake.wait_until(
        lambda: (
            not botworld.bot.get_channel(muted.id)
            .permissions_for(botworld.bot.get_guild(botworld.guild_id).me)
            .embed_links
        ),
        3.0,
        "CHANNEL_UPDATE",
    )
    cb = await botworld.reply("digest", "status")
    text = said(cb)
    assert "In the digest channel I'm missing Embed Links: nothing can be posted." in text


async def test_status_shows_a_failed_digest(botworld):
    await botworld.ingest_reference_day()
    await botworld.configure(post_time="10:30")
    botworld.fake.fail_next("POST", "/channels/*/messages", 403)
    await botworld.jobs.deliver_guild(botworld.guild_id)
    cb = await botworld.reply("digest", "status")
    text = said(cb)
    assert "Last post: 2020-12-23 — ❌ failed" in text
    assert "missing permissions" in text


# -- /digest pause|resume ---------------------------------------------------------------------


async def test_pause_and_resume(botworld):
    await botworld.configure(post_time="10:30")
    _, cb = await botworld.run("digest", "pause", member=botworld.mod)
    assert cb.ephemeral
    assert "paused" in said(cb)
    config = await botworld.rt.guild_settings.config(botworld.guild_id)
    assert config.paused
    cb = await botworld.reply("digest", "status")
    assert "⏸️ **Paused**: paused by a moderator" in said(cb)
    assert "Next post: —" in said(cb)

    _, cb = await botworld.run("digest", "resume", member=botworld.mod)
    nxt = int(dt.datetime(2020, 12, 24, 10, 30, tzinfo=dt.UTC).timestamp())
    assert said(cb) == f"✅ The daily digest is back on; next post <t:{nxt}:f>."
    assert not (await botworld.rt.guild_settings.config(botworld.guild_id)).paused


async def test_resume_without_a_channel_says_what_is_missing(botworld):
    _, cb = await botworld.run("digest", "resume", member=botworld.mod)
    assert "no channel is set yet" in said(cb)


# -- /digest preview --------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["thread", "channel", "compact"])
async def test_preview_is_exactly_what_would_be_posted(botworld, style):
    await botworld.ingest_reference_day()
    await botworld.configure(post_time="10:30", style=style, top=3)
    result, cb = await botworld.run("digest", "preview", member=botworld.mod)
    assert cb.deferred
    assert cb.ephemeral
    # The post's messages: compact is one; the others a header, then the papers four to a
    # message (three papers: one message).
    count = 1 if style == "compact" else 2
    shown = await result.followups(count=count)
    assert len(shown) == count
    assert all(m["flags"] & 64 for m in shown)
    h = botworld.harness
    assert h.fake.messages(h.channel) == []  # a preview posts nothing publicly

    await botworld.jobs.deliver_guild(botworld.guild_id)
    posted = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    if style == "thread":
        thread_id = int(posted[0]["id"])
        posted += sorted(h.fake.messages(thread_id), key=lambda m: int(m["id"]))
    assert len(result.followup_messages) == len(posted)
    for previewed, real in zip(result.followup_messages, posted, strict=True):
        assert previewed["content"] == real["content"]
        assert previewed["embeds"] == real["embeds"]
        assert buttons(previewed) == buttons(real)  # the paper's link buttons too


async def test_preview_of_an_empty_day(botworld):
    await botworld.configure(post_time="10:30")
    result, _ = await botworld.run("digest", "preview", member=botworld.mod)
    (message,) = await result.followups(count=1)
    assert message["flags"] & 64
    assert said(message) == (
        "No hot papers today: no paper in this server's categories reached a score of 50."
    )
    await botworld.rt.guild_settings.set_options(botworld.guild_id, empty_day="silent")
    result, _ = await botworld.run("digest", "preview", member=botworld.mod)
    (message,) = await result.followups(count=1)
    assert said(message) == "Nothing would be posted (empty days are silent)."


# -- permissions ------------------------------------------------------------------------------


@pytest.mark.parametrize(("sub", "values"), MODERATOR_COMMANDS)
async def test_moderator_commands_refuse_other_members(botworld, sub, values):
    before = await botworld.rt.guild_settings.config(botworld.guild_id)
    if sub == "channel":
        values = {"options": {"channel": botworld.harness.channel}}
    _, cb = await botworld.run("digest", sub, member=botworld.reader, **values)
    assert cb.type == 4
    assert cb.ephemeral
    assert said(cb) == "⚠️ You need the **Manage Server** permission to do that."
    after = await botworld.rt.guild_settings.config(botworld.guild_id)
    assert after == before


async def test_status_is_open_to_every_member(botworld):
    cb = await botworld.reply("digest", "status", member=botworld.reader)
    assert cb.ephemeral
    assert "Daily digest status" in said(cb)
