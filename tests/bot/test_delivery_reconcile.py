"""Exactly once past Discord's nonce memory: a digest interrupted at any point of any message
resumes by reading back what Discord holds; 429s, alerts, exhausted digests, dead owners."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
import subprocess
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from bot.core.errors import DeliveryUnavailableError
from bot.scheduling import Scheduler, digest_job_id, spread_second
from bot.services.owner import Owner, _start_time, is_dead, this_process
from bot.settings import DigestSettings, SchedulerSettings
from bot.storage.guilds import GuildConfig
from bot.ui.embeds import read_marker
from bot.ui.publisher import DiscordPublisher
from tests.bot.conftest import posted_ids
from tests.fakes.discord.server import NONCE_WINDOW_S

T = TypeVar("T")
DAY = dt.date(2020, 12, 23)
RANKED = ["2012.11552", "2012.11538", "2012.11547", "2012.11233", "2012.11145"]
MESSAGES = "/channels/*/messages"
THREADS = "/channels/*/messages/*/threads"


@pytest.fixture
async def ready(botworld):
    """The reference day ingested; the clock (10:50Z) 20 minutes after a 10:30 UTC slot."""
    await botworld.ingest_reference_day()
    return botworld


class ProcessDied(BaseException):
    """The bot's process ends (nothing in it gets to catch this)."""


class Crashing(DiscordPublisher):
    """The real publisher, whose process dies at request ``step`` (messages and the thread, in
    the order they are made): ``before`` it reaches Discord, or ``after`` Discord answered."""

    def __init__(self, client: Any, *, step: int, when: str) -> None:
        super().__init__(client)
        self.step, self.when, self.made = step, when, 0

    async def _step(self, call: Callable[[], Awaitable[T]]) -> T:
        n, self.made = self.made, self.made + 1
        if n == self.step and self.when == "before":
            raise ProcessDied
        result = await call()
        if n == self.step and self.when == "after":
            raise ProcessDied
        return result

    async def _send(self, channel_id: int, nonce: str | None, **kwargs: object) -> int:
        parent = super()
        return await self._step(lambda: parent._send(channel_id, nonce, **kwargs))

    async def open_thread(self, channel_id: int, message_id: int, name: str) -> int | None:
        parent = super()
        return await self._step(lambda: parent.open_thread(channel_id, message_id, name))


def own_messages(botworld) -> list[dict[str, Any]]:
    """Every message the bot posted, in every channel and thread."""
    me = str(botworld.harness.world.bot_user.id)
    return [m for m in botworld.harness.world.messages.values() if m["author"]["id"] == me]


def by_part(botworld, day: dt.date = DAY) -> dict[int, list[dict[str, Any]]]:
    """The bot's messages of the day's digest on Discord, by the part their marker names."""
    parts: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for message in own_messages(botworld):
        footers = [(e.get("footer") or {}).get("text") or "" for e in message["embeds"]]
        marker = read_marker(message.get("content") or "", footers)
        if marker is not None and marker[0] == day:
            parts[marker[1]].append(message)
    return dict(parts)


async def assert_posted_once(botworld, style: str, *, parts: int, status: str = "sent") -> None:
    """Every part on Discord exactly once, nothing else from the bot, and the record ``sent``
    with every message id in order."""
    h = botworld.harness
    found = by_part(botworld)
    assert sorted(found) == list(range(parts + 1))
    assert all(len(messages) == 1 for messages in found.values()), {
        part: len(messages) for part, messages in found.items()
    }
    assert len(own_messages(botworld)) == parts + 1  # no stray copy, no notice
    ordered = [found[part][0] for part in range(parts + 1)]
    header = ordered[0]
    assert int(header["channel_id"]) == h.channel.id
    if status == "sent":
        assert posted_ids(ordered[1:]) == (RANKED if style != "compact" else [])
    threads = [c for c in h.world.channels.values() if c.is_thread]
    if style == "thread":
        (thread,) = threads
        assert thread.id == int(header["id"])
        assert all(int(m["channel_id"]) == thread.id for m in ordered[1:])
    else:
        assert threads == []
        assert all(int(m["channel_id"]) == h.channel.id for m in ordered)
    record = await botworld.rt.digest_log.get(botworld.guild_id, DAY)
    assert record.status == status
    assert list(record.message_ids) == [int(m["id"]) for m in ordered]


def past_the_nonce_window(botworld, minutes: float = 15) -> None:
    """Time passes on both sides: the claim goes stale for the bot, and Discord forgets every
    nonce, so a retry can only avoid a copy by reading the channel back."""
    botworld.clock.advance(minutes=minutes)
    botworld.harness.clock.advance(NONCE_WINDOW_S + 60)


# Each style's requests in order; the number of paper parts.
STEPS = {
    "thread": ["header", "thread", "part 1", "part 2"],
    "channel": ["header", "part 1", "part 2"],
    "compact": ["message"],
    "empty": ["message"],
}
PARTS = {"thread": 2, "channel": 2, "compact": 0, "empty": 0}
CASES = [
    (style, step, kind)
    for style, steps in STEPS.items()
    for step in range(len(steps))
    for kind in ("before", "lost", "unrecorded")
]


def case_id(case: tuple[str, int, str]) -> str:
    style, step, kind = case
    return f"{style}-{STEPS[style][step].replace(' ', '')}-{kind}"


async def configure_style(botworld, style: str):
    if style == "empty":
        return await botworld.configure(post_time="10:30", threshold=10_000)
    return await botworld.configure(post_time="10:30", style=style)


@pytest.mark.parametrize(("style", "step", "kind"), CASES, ids=[case_id(c) for c in CASES])
async def test_an_interrupted_digest_resumes_past_the_nonce_window_with_every_part_once(
    ready, monkeypatch, style, step, kind
):
    """(before) the process dies before the request; (lost) Discord does it but the answer is
    lost on the way back; (unrecorded) Discord answered, the process dies before the database
    write (for the thread: right after it was opened, its id unused)."""
    h = ready.harness
    config = await configure_style(ready, style)
    delivery = ready.rt.delivery
    what = STEPS[style][step]
    message_index = step - (1 if style == "thread" and step > 1 else 0)
    if kind == "before":
        with pytest.raises(ProcessDied):
            await delivery.deliver(config, DAY, Crashing(ready.bot, step=step, when="before"))
    elif kind == "lost":
        if what == "thread":
            h.fake.drop_next("POST", THREADS, after=True)
        else:
            h.fake.drop_next("POST", MESSAGES, after=True, skip=message_index)
        result = await delivery.deliver(config, DAY, ready.jobs.publisher)
        assert (result.status, result.detail) == ("failed", "the connection to Discord was lost")
        dropped = [r for r in h.fake.requests if r.dropped]
        assert len(dropped) == 1
        assert dropped[0].status == 200  # Discord did it
    elif what == "thread":
        with pytest.raises(ProcessDied):
            await delivery.deliver(config, DAY, Crashing(ready.bot, step=step, when="after"))
    else:
        add_message, finish = ready.rt.digest_log.add_message, ready.rt.digest_log.finish
        calls = 0

        async def dies_before_recording(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == message_index + 1:
                raise ProcessDied
            return await add_message(*args, **kwargs)

        async def dies_before_finishing(*args: Any, **kwargs: Any) -> Any:
            # The last message is recorded with the outcome, in the same write.
            nonlocal calls
            if kwargs.get("message_ids"):
                calls += 1
                if calls == message_index + 1:
                    raise ProcessDied
            return await finish(*args, **kwargs)

        monkeypatch.setattr(ready.rt.digest_log, "add_message", dies_before_recording)
        monkeypatch.setattr(ready.rt.digest_log, "finish", dies_before_finishing)
        with pytest.raises(ProcessDied):
            await delivery.deliver(config, DAY, ready.jobs.publisher)
    record = await ready.rt.digest_log.get(ready.guild_id, DAY)
    assert record.status == ("failed" if kind == "lost" else "sending")

    past_the_nonce_window(ready)
    if kind != "lost":
        await ready.restart()  # a crash: the next process takes the digest over
    await ready.jobs.sweep()

    await assert_posted_once(
        ready, style, parts=PARTS[style], status="empty" if style == "empty" else "sent"
    )
    record = await ready.rt.digest_log.get(ready.guild_id, DAY)
    assert record.attempts == 2


async def test_without_reading_back_the_retry_past_the_nonce_window_would_post_a_copy(
    ready, monkeypatch
):
    """The control of the test above: Discord has really forgotten the nonce by then, so it
    is reading the channel back that keeps each part once; within the window the nonce alone
    would have done it."""
    config = await ready.configure(post_time="10:30", style="channel")
    real = ready.rt.digest_log.add_message
    calls = 0

    async def dies_before_recording_part_1(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ProcessDied
        return await real(*args, **kwargs)

    monkeypatch.setattr(ready.rt.digest_log, "add_message", dies_before_recording_part_1)
    with pytest.raises(ProcessDied):
        await ready.rt.delivery.deliver(config, DAY, ready.jobs.publisher)

    async def reads_nothing(self, *args: Any, **kwargs: Any) -> dict[int, int]:
        return {}

    monkeypatch.setattr(DiscordPublisher, "find_own", reads_nothing)
    past_the_nonce_window(ready)
    await ready.restart()
    await ready.jobs.sweep()
    assert [len(by_part(ready)[part]) for part in (0, 1, 2)] == [1, 2, 1]


async def test_within_the_nonce_window_the_nonce_alone_prevents_a_copy(ready, monkeypatch):
    config = await ready.configure(post_time="10:30", style="channel")
    real = ready.rt.digest_log.add_message
    calls = 0

    async def dies_before_recording_part_1(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ProcessDied
        return await real(*args, **kwargs)

    monkeypatch.setattr(ready.rt.digest_log, "add_message", dies_before_recording_part_1)
    with pytest.raises(ProcessDied):
        await ready.rt.delivery.deliver(config, DAY, ready.jobs.publisher)

    async def reads_nothing(self, *args: Any, **kwargs: Any) -> dict[int, int]:
        return {}

    monkeypatch.setattr(DiscordPublisher, "find_own", reads_nothing)
    ready.clock.advance(minutes=3)  # a quick restart: Discord still remembers the nonce
    await ready.restart()
    await ready.jobs.sweep()
    await assert_posted_once(ready, "channel", parts=2)


# -- the 5xx retry path -------------------------------------------------------------------------


class StoredThenFailed(DiscordPublisher):
    """Discord stores the first paper message but answers 503 (a gateway timing out)."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.sent = 0

    async def _send(self, channel_id: int, nonce: str | None, **kwargs: object) -> int:
        message_id = await super()._send(channel_id, nonce, **kwargs)
        self.sent += 1
        if self.sent == 2:
            raise DeliveryUnavailableError("Discord answered 503")
        return message_id


@pytest.mark.parametrize("style", ["thread", "channel"])
async def test_a_5xx_retry_reads_back_what_discord_stored(ready, style):
    h = ready.harness
    config = await ready.configure(post_time="10:30", style=style)
    result = await ready.rt.delivery.deliver(config, DAY, StoredThenFailed(ready.bot))
    assert result.status == "failed"
    record = await ready.rt.digest_log.get(ready.guild_id, DAY)
    assert (record.status, record.error) == ("failed", "Discord unavailable: Discord answered 503")
    assert len(record.message_ids) == 1

    past_the_nonce_window(ready, minutes=10)  # the next sweep
    reads_before = len(h.fake.requests_to("GET", MESSAGES))
    await ready.jobs.sweep()
    assert len(h.fake.requests_to("GET", MESSAGES)) > reads_before  # it read back first
    await assert_posted_once(ready, style, parts=2)
    assert (await ready.rt.digest_log.get(ready.guild_id, DAY)).attempts == 2


# -- requests -----------------------------------------------------------------------------------


async def test_a_ten_paper_thread_digest_takes_five_requests(ready):
    h = ready.harness
    ready.clock.now = dt.datetime(2020, 12, 23, 0, 30, tzinfo=dt.UTC)  # the whole 22nd
    await ready.configure(post_time="00:15", top=10, threshold=0)
    before = len(h.fake.requests)
    await ready.jobs.deliver_guild(ready.guild_id)
    posts = [r for r in h.fake.requests[before:] if r.method == "POST"]
    # The header, the thread, and three messages of 4, 4 and 2 papers.
    assert [r.operation_id for r in posts] == [
        "create_message",
        "create_thread_from_message",
        "create_message",
        "create_message",
        "create_message",
    ]
    assert [len(r.body.get("embeds") or []) for r in posts] == [0, 0, 4, 4, 2]
    assert all(r.status == 200 for r in posts)
    # A first attempt reads nothing back: nothing to reconcile.
    assert h.fake.requests_to("GET", MESSAGES) == []
    record = await ready.rt.digest_log.get(ready.guild_id, DAY)
    assert (record.status, record.paper_count, len(record.message_ids)) == ("sent", 10, 4)


# -- rate limits --------------------------------------------------------------------------------


def rate_limit(botworld, *, global_: bool, times: int, skip: int = 1) -> None:
    """``times`` 429s on the next message posts (after ``skip``): more than discord.py's five
    tries, so it gives up and the publisher has to wait them out."""
    body = {"message": "You are being rate limited.", "retry_after": 0.01, "global": global_}
    headers = {"Retry-After": "0.01"}  # seconds, as Discord may send them: time is not slept
    if global_:
        headers |= {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}
    botworld.harness.fake.fail_next(
        "POST", MESSAGES, 429, body=body, headers=headers, times=times, retry_after=0.01, skip=skip
    )


@pytest.mark.parametrize("global_", [False, True], ids=["per-route", "global"])
async def test_429s_beyond_discord_py_retries_never_fail_a_digest(ready, global_):
    h = ready.harness
    await ready.configure(post_time="10:30", style="channel")
    rate_limit(ready, global_=global_, times=12)  # 2.4 times discord.py's 5 tries
    await ready.jobs.deliver_guild(ready.guild_id)
    statuses = [r.status for r in h.fake.requests_to("POST", MESSAGES)]
    assert statuses == [200] + [429] * 12 + [200, 200]
    await assert_posted_once(ready, "channel", parts=2)
    record = await ready.rt.digest_log.get(ready.guild_id, DAY)
    assert (record.attempts, record.error, record.alerted_at) == (1, None, None)


# -- moderators are told ------------------------------------------------------------------------


async def alert_channel(botworld):
    """A #mod-log channel, chosen with ``/digest alerts``."""
    h = botworld.harness
    mod_log = await h.text_channel("mod-log")
    await h.fake.wait_until(lambda: botworld.bot.get_channel(mod_log.id) is not None, 3.0, "cache")
    _, cb = await botworld.run(
        "digest", "alerts", member=botworld.mod, options={"channel": mod_log}
    )
    assert "notices will be posted in" in (cb.embeds[0].get("description") or "")
    return mod_log


@pytest.mark.parametrize("with_alert_channel", [True, False], ids=["alerts", "no-alerts"])
async def test_a_403_sends_one_notice(ready, with_alert_channel):
    h = ready.harness
    await ready.configure(post_time="10:30", style="channel")
    mod_log = await alert_channel(ready) if with_alert_channel else None
    refused = f"/channels/{h.channel.id}/messages"
    h.fake.fail_next("POST", refused, 403)
    await ready.jobs.deliver_guild(ready.guild_id)
    ready.clock.advance(minutes=10)
    h.fake.fail_next("POST", refused, 403)
    await ready.jobs.sweep()  # refused again: no second notice for the same digest
    record = await ready.rt.digest_log.get(ready.guild_id, DAY)
    assert (record.status, record.attempts) == ("failed", 2)
    assert record.alerted_at is not None
    notices = h.fake.messages(mod_log or h.channel)
    (notice,) = notices
    assert "Hot Papers 2020-12-23 could not be posted" in notice["content"]
    assert f"<#{h.channel.id}>" in notice["content"]
    if mod_log is not None:
        assert h.fake.messages(h.channel) == []
    # Once allowed again, the digest goes out (the notice doesn't count as a part).
    ready.clock.advance(minutes=10)
    await ready.jobs.sweep()
    found = by_part(ready)
    assert sorted(found) == [0, 1, 2]
    assert all(len(messages) == 1 for messages in found.values())
    assert (await ready.rt.digest_log.get(ready.guild_id, DAY)).status == "sent"


@pytest.mark.parametrize("with_alert_channel", [True, False], ids=["alerts", "no-alerts"])
async def test_a_404_sends_one_notice_to_the_alert_channel_only(ready, with_alert_channel):
    h = ready.harness
    papers = await h.text_channel("papers")
    await h.fake.wait_until(lambda: ready.bot.get_channel(papers.id) is not None, 3.0, "cache")
    await ready.configure(channel=papers, post_time="10:30")
    mod_log = await alert_channel(ready) if with_alert_channel else None
    await h.fake.delete_channel(papers)
    await h.fake.wait_until(lambda: ready.bot.get_channel(papers.id) is None, 3.0, "delete")
    await ready.jobs.deliver_guild(ready.guild_id)
    assert (await ready.rt.guild_settings.config(ready.guild_id)).paused
    posts = [r for r in h.fake.requests_to("POST", MESSAGES) if r.status == 200]
    if mod_log is None:
        assert posts == []  # the digest channel is gone: nowhere to tell them
    else:
        (notice,) = h.fake.messages(mod_log)
        assert "the digest channel was deleted" in notice["content"]
        assert "**paused**" in notice["content"]
        assert len(posts) == 1
    record = await ready.rt.digest_log.get(ready.guild_id, DAY)
    assert record.status == "failed"
    assert (record.alerted_at is not None) == with_alert_channel


# -- out of attempts ----------------------------------------------------------------------------


async def test_an_exhausted_digest_is_failed_by_the_sweep_and_notified_once(ready, monkeypatch):
    """A digest that kills the bot on every try: after the last attempt it would stay
    ``sending`` for good; the sweep marks it failed and tells the moderators, once."""
    h = ready.harness
    monkeypatch.setattr(ready.rt.digest_log, "max_attempts", 2)
    config = await ready.configure(post_time="10:30", style="channel")
    with pytest.raises(ProcessDied):  # attempt 1: the header, then the process dies
        await ready.rt.delivery.deliver(config, DAY, Crashing(ready.bot, step=1, when="before"))
    ready.clock.advance(minutes=15)
    await ready.restart()
    with pytest.raises(ProcessDied):  # attempt 2 (the last): dies again at the same message
        await ready.rt.delivery.deliver(config, DAY, Crashing(ready.bot, step=0, when="before"))
    record = await ready.rt.digest_log.get(ready.guild_id, DAY)
    assert (record.status, record.attempts, len(record.message_ids)) == ("sending", 2, 1)

    ready.clock.advance(minutes=15)
    await ready.restart()
    await ready.jobs.sweep()
    record = await ready.rt.digest_log.get(ready.guild_id, DAY)
    assert record.status == "failed"
    assert record.error == "abandoned after 2 attempts"
    assert record.alerted_at is not None
    notices = [m for m in h.fake.messages(h.channel) if "⚠️" in m["content"]]
    (notice,) = notices
    assert "could not be posted" in notice["content"]
    assert "after 2 attempts; it will not be retried" in notice["content"]

    ready.clock.advance(minutes=10)
    await ready.jobs.sweep()  # never claimed again, never told twice
    assert [m for m in h.fake.messages(h.channel) if "⚠️" in m["content"]] == [notice]
    assert len(by_part(ready)[0]) == 1
    assert 1 not in by_part(ready)


# -- a dead owner is taken over at once ---------------------------------------------------------


def dead_pid() -> int:
    """The pid of a process of this host that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("owner_alive", [False, True], ids=["dead-owner", "live-owner"])
async def test_a_dead_owners_digest_is_resumed_at_once_a_live_ones_is_left(ready, owner_alive):
    me = this_process()
    if owner_alive:
        pid = os.getppid()  # another process of this host, alive
        owner = dataclasses.replace(me, pid=pid, start=_start_time(pid))
    else:
        owner = dataclasses.replace(me, pid=dead_pid(), start="1")
    config = await ready.configure(post_time="10:30", style="thread")
    delivery = ready.rt.delivery
    delivery.owner = str(owner)  # the claim names that process
    with pytest.raises(ProcessDied):  # the header and the thread, then it stops
        await delivery.deliver(config, DAY, Crashing(ready.bot, step=2, when="before"))
    record = await ready.rt.digest_log.get(ready.guild_id, DAY)
    assert (record.status, record.owner) == ("sending", str(owner))

    ready.clock.advance(seconds=5)  # no wait: far from the 10 minutes of a stale claim
    await ready.restart()
    delivery.owner = str(me)  # the restarted process names itself in its claims
    await ready.jobs.sweep()
    record = await ready.rt.digest_log.get(ready.guild_id, DAY)
    if owner_alive:
        assert (record.status, record.owner, record.takeovers) == ("sending", str(owner), 0)
        assert sorted(by_part(ready)) == [0]
        # Once the claim goes stale, it is resumed all the same.
        ready.clock.advance(minutes=11)
        await ready.jobs.sweep()
        await assert_posted_once(ready, "thread", parts=2)
        assert (await ready.rt.digest_log.get(ready.guild_id, DAY)).attempts == 2
    else:
        await assert_posted_once(ready, "thread", parts=2)
        record = await ready.rt.digest_log.get(ready.guild_id, DAY)
        # The dead process's attempt is given back: a crash is not the digest's failure.
        assert (record.attempts, record.takeovers) == (1, 1)
        assert record.owner == str(this_process())


def test_the_owner_of_a_claim_is_judged_dead_only_when_certainly_gone():
    me = this_process()
    gone = dataclasses.replace(me, pid=dead_pid(), start="1")
    parent = dataclasses.replace(me, pid=os.getppid(), start=_start_time(os.getppid()))
    elsewhere = dataclasses.replace(me, host=me.host + "-other", pid=dead_pid())
    assert is_dead(str(gone), me)
    assert not is_dead(str(parent), me)
    assert not is_dead(str(me), me)
    assert not is_dead(str(elsewhere), me)  # another host's processes can't be judged here
    assert not is_dead("not an owner", me)
    assert Owner.parse(str(me)) == me


# -- when each guild's job fires ----------------------------------------------------------------


def test_spread_second_is_deterministic_and_spread():
    rng = random.Random(20201223)
    discord_epoch_ms = 1_420_070_400_000
    snowflakes = [
        ((rng.randrange(1_600_000_000_000, 1_750_000_000_000) - discord_epoch_ms) << 22)
        | rng.getrandbits(22)
        for _ in range(1000)
    ]
    seconds = [spread_second(s) for s in snowflakes]
    assert all(0 <= s < 60 for s in seconds)
    assert seconds == [spread_second(s) for s in snowflakes]  # the same every day
    assert len(set(seconds)) >= 55
    # No second takes much more than its share (1000 / 60 ≈ 17).
    assert max(seconds.count(s) for s in set(seconds)) < 40
    # Not Python's salted hash(): the same second in every process, across restarts.
    code = f"from bot.scheduling import spread_second; print(spread_second({snowflakes[0]}))"
    other = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    assert int(other.stdout) == seconds[0]


async def test_each_guilds_daily_job_fires_at_its_own_second():
    scheduler = Scheduler(
        settings=SchedulerSettings(),
        digest_settings=DigestSettings(),
        ingest=_nothing,
        deliver=_nothing_for,
        sweep=_nothing,
    )
    guild_ids = [1_577_815_642_810_220_546 + n for n in range(20)]
    now = dt.datetime(2020, 12, 23, 10, 0, tzinfo=dt.UTC)
    try:
        scheduler.start([_config(g) for g in guild_ids], ingest_first=False)
        fires = []
        for guild_id in guild_ids:
            job = scheduler._scheduler.get_job(digest_job_id(guild_id))
            fire = job.trigger.get_next_fire_time(None, now)
            assert fire.replace(second=0) == dt.datetime(2020, 12, 23, 10, 30, tzinfo=dt.UTC)
            assert fire.second == spread_second(guild_id)
            fires.append(fire)
        assert len(set(fires)) > 10  # not all at 10:30:00
    finally:
        scheduler.shutdown()


async def _nothing() -> None:
    return None


async def _nothing_for(guild_id: int) -> None:
    return None


def _config(guild_id: int) -> GuildConfig:
    at = dt.datetime(2020, 12, 22, tzinfo=dt.UTC)
    return GuildConfig(
        guild_id=guild_id,
        channel_id=42,
        post_time="10:30",
        timezone="UTC",
        top_n=10,
        threshold=None,
        style="thread",
        empty_day="message",
        paused=False,
        pause_reason=None,
        created_at=at,
        updated_at=at,
    )


# -- reading back a busy channel, and a thread that refuses --------------------------------------


@pytest.mark.parametrize("style", ["channel", "compact"])
async def test_an_unrecorded_header_is_found_under_hundreds_of_members_messages(
    ready, monkeypatch, style
):
    """Discord stored the digest's first message, its answer was lost and the process died;
    by the restart members have written 260 messages after it (more than one page, and more
    than the 50 a single read returns). The header is still found, nothing is posted twice."""
    h = ready.harness
    config = await ready.configure(post_time="10:30", style=style)
    with pytest.raises(ProcessDied):
        await ready.rt.delivery.deliver(config, DAY, Crashing(ready.bot, step=0, when="after"))
    member = h.member(name="chatty")
    for n in range(260):
        h.world.store_message(
            h.world.build_message(h.channel.id, {"content": f"msg {n}"}, author=member.user)
        )
    past_the_nonce_window(ready)
    await ready.restart()
    reads_before = len(h.fake.requests_to("GET", MESSAGES))
    await ready.jobs.sweep()
    reads = h.fake.requests_to("GET", MESSAGES)[reads_before:]
    assert len(reads) >= 3  # three pages back to the header
    await assert_posted_once(ready, style, parts=PARTS[style])


async def test_reading_back_stops_at_the_days_start_in_a_quiet_channel(ready):
    """With nothing of the digest on Discord, one page is read, not the whole history."""
    h = ready.harness
    config = await ready.configure(post_time="10:30", style="channel")
    with pytest.raises(ProcessDied):
        await ready.rt.delivery.deliver(config, DAY, Crashing(ready.bot, step=0, when="before"))
    past_the_nonce_window(ready)
    await ready.restart()
    reads_before = len(h.fake.requests_to("GET", MESSAGES))
    await ready.jobs.sweep()
    assert len(h.fake.requests_to("GET", MESSAGES)) - reads_before <= 2
    await assert_posted_once(ready, "channel", parts=2)


class ThreadRefuses(DiscordPublisher):
    """The thread refuses every paper message (archived and locked, or Send Messages in
    Threads taken away); the process dies after the ``die_after``-th message sent meanwhile."""

    def __init__(self, client: Any, *, die_after: int | None) -> None:
        super().__init__(client)
        self.die_after, self.sent = die_after, 0

    async def _send(self, channel_id: int, nonce: str | None, **kwargs: object) -> int:
        from bot.core.errors import MissingPermissionsError

        channel = self.client.get_channel(channel_id)
        if channel is not None and getattr(channel, "parent_id", None) is not None:
            raise MissingPermissionsError("Send Messages in Threads")
        message_id = await super()._send(channel_id, nonce, **kwargs)
        self.sent += 1
        if self.die_after is not None and self.sent == self.die_after:
            raise ProcessDied
        return message_id


async def test_papers_that_fell_back_to_the_channel_are_not_posted_again_on_resume(ready):
    """The thread refused, part 1 went to the channel, the process died before recording it;
    on resume the thread refuses again, and part 1 is found in the channel, not sent twice."""
    config = await ready.configure(post_time="10:30", style="thread")
    with pytest.raises(ProcessDied):
        await ready.rt.delivery.deliver(config, DAY, ThreadRefuses(ready.bot, die_after=2))
    past_the_nonce_window(ready)
    await ready.restart()
    result = await ready.rt.delivery.deliver(
        await ready.rt.guilds.get(ready.guild_id), DAY, ThreadRefuses(ready.bot, die_after=None)
    )
    assert result.status == "sent"
    found = by_part(ready)
    assert sorted(found) == [0, 1, 2]
    assert all(len(messages) == 1 for messages in found.values())
    channel = ready.harness.channel.id
    assert all(int(found[part][0]["channel_id"]) == channel for part in (1, 2))
