"""The bot with Bluesky's stream consumer running: commands stay fast, the stream feeds digests,
and a stretch the stream could no longer replay is shown in ``/digest status``.

In process: the real discord.py client against the fake Discord, the demo world's fake Jetstream
and AppView, and the consumer started as ``hotpapers run`` starts it (``start_streams``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from bot.core.models import Window
from bot.fakes.bluesky import (
    commit_event,
    fake_did,
    link_facet,
    post_deleted_event,
    post_record,
)
from bot.services.stream import StreamConsumer
from bot.sources.bluesky import micros, post_uri
from tests.bot.conftest import BotWorld, said

UTC = dt.UTC
SAVE_S = 0.05  # the consumer stores what it read at least this often (set on the consumer)
HEAVY = 20_000  # events on the live stream while commands are measured
LINKING = 0.05  # the share of them that link an arXiv paper
LATENCY_S = 0.1  # the p99 of the first response to an interaction
WAIT_S = 10.0


async def until(
    condition: Callable[[], Awaitable[bool]],
    what: str,
    timeout: float = WAIT_S,  # noqa: ASYNC109 - a bounded polling wait
) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def paper_post(did: str, rkey: str, arxiv_id: str, time_us: int) -> dict[str, Any]:
    """A Jetstream create of a post linking ``arxiv_id`` through a link facet."""
    shown = f"arxiv.org/abs/{arxiv_id}"
    text = f"Worth reading: {shown}"
    moment = dt.datetime.fromtimestamp(time_us / 1_000_000, UTC)
    record = post_record(
        text, moment, facets=[link_facet(text, shown, f"https://arxiv.org/abs/{arxiv_id}")]
    )
    return commit_event(did, rkey, record, time_us)


async def stored_bluesky(botworld: BotWorld) -> dict[str, tuple[str, ...]]:
    """post_id → linked ids of every stored Bluesky post of the last two days."""
    now = botworld.clock.now
    rows = await botworld.rt.mentions.in_window(
        Window(now - dt.timedelta(days=2), now + dt.timedelta(days=1)), sources=["bluesky"]
    )
    return {s.mention.post_id: s.mention.arxiv_ids for s in rows}


def consumer_of(botworld: BotWorld, save_seconds: float | None) -> StreamConsumer:
    (consumer,) = botworld.rt.consumers
    assert consumer.name == "bluesky"
    if save_seconds is not None:
        update = {"cursor_save_seconds": save_seconds}
        consumer.settings = consumer.settings.model_copy(update=update)
    return consumer


Start = Callable[..., Awaitable[StreamConsumer]]


@pytest.fixture
async def streaming(botworld: BotWorld) -> AsyncIterator[Start]:
    """Starts the stream consumer as ``hotpapers run`` does (the fixture's bot is built with
    ``schedule=False``, which starts neither the scheduler nor the streams); stops it after.

    By default the consumer stores what it read every ``SAVE_S`` (not every 5 s): the tests
    wait for it."""
    jobs = botworld.jobs
    jetstream = botworld.world.jetstream

    async def start(save_seconds: float | None = SAVE_S) -> StreamConsumer:
        consumer = consumer_of(botworld, save_seconds)
        connections = len(jetstream.connections)
        jobs.start_streams()

        async def subscribed() -> bool:
            return len(jetstream.connections) > connections and jetstream.subscribers > 0

        await until(subscribed, "the consumer to subscribe to the fake Jetstream")
        return consumer

    try:
        yield start
    finally:
        await jobs.stop_streams()


# -- (a) commands stay fast while the stream is heavy ----------------------------------------


def heavy_stream(start_us: int, count: int) -> list[dict[str, Any]]:
    """Chatter, with one post in twenty linking a paper (the stream's every event is read)."""
    events = []
    papers = ["2012.10885", "2012.11552", "2012.11538", "2012.11293"]
    for i in range(count):
        time_us = start_us + i * 50
        did = fake_did(f"user{i % 997}.bsky.social")
        if i % round(1 / LINKING) == 0:
            events.append(paper_post(did, f"3kheavy{i:06d}", papers[i % len(papers)], time_us))
        else:
            moment = dt.datetime.fromtimestamp(time_us / 1_000_000, UTC)
            record = post_record(f"good morning {i}, lovely weather 🌤", moment)
            events.append(commit_event(did, f"3kchat{i:07d}", record, time_us))
    return events


async def publish_paced(botworld: BotWorld, events: list[dict[str, Any]], per_tick: int) -> None:
    """``per_tick`` events every 10 ms: a heavy live stream, not one burst."""
    jetstream = botworld.world.jetstream
    for first in range(0, len(events), per_tick):
        for event in events[first : first + per_tick]:
            jetstream.publish(event)
        await asyncio.sleep(0.01)


def p99(values: list[float]) -> float:
    if len(values) < 2:
        return max(values)
    return statistics.quantiles(values, n=100, method="inclusive")[98]


COMMANDS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("hot",), {}),
    (("paper",), {"query": "2012.10885"}),
    (("about",), {}),
    (("digest", "status"), {}),
]
# The most CPU time the consumer may take in one go before handing the event loop back (it
# takes about 1 ms per 20 frames; a step of a whole socket read, ~500 frames, was 20-30 ms).
STEP_CPU_S = 0.015


@pytest.fixture
def consumer_steps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[float, str]]]:
    """(CPU seconds, coroutine) of every step the stream consumer's tasks ran on the event
    loop: how long it kept everything else (interactions, heartbeats) waiting. CPU time of
    this thread, so that a busy machine does not count."""
    steps: list[tuple[float, str]] = []
    run = asyncio.events.Handle._run

    def timed(handle: asyncio.events.Handle) -> None:
        task = getattr(handle._callback, "__self__", None)  # a task's step, or a callback
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        name = getattr(coro, "__qualname__", "")
        if not name.startswith(("StreamConsumer.", "Jobs._supervise")):
            run(handle)
            return
        started = time.thread_time()
        try:
            run(handle)
        finally:
            steps.append((time.thread_time() - started, name))

    monkeypatch.setattr(asyncio.events.Handle, "_run", timed)
    # A collection of this test's own garbage (tens of thousands of event dicts) would be
    # charged to whichever step it interrupts.
    gc.disable()
    try:
        yield steps
    finally:
        gc.enable()


@pytest.mark.parametrize(
    ("mode", "count"),
    [
        # 4,000 events a second, live: the consumer keeps up, reading them as they come.
        ("live", HEAVY),
        # A restart after downtime: the backlog comes at socket speed and the consumer reads
        # flat out (10,000-25,000 events a second here) for a few seconds.
        ("catch-up", 3 * HEAVY),
    ],
)
async def test_commands_answer_fast_while_the_stream_is_heavy(
    botworld: BotWorld,
    streaming: Start,
    consumer_steps: list[tuple[float, str]],
    mode: str,
    count: int,
) -> None:
    await botworld.ingest_reference_day()
    start = botworld.clock.now - dt.timedelta(minutes=30)
    events = heavy_stream(micros(start), count)
    publisher: asyncio.Task[None] | None = None
    if mode == "catch-up":
        botworld.world.jetstream.add_many(events)
        await botworld.rt.streams.save_cursor("bluesky", events[0]["time_us"], None, start)
        consumer = await streaming(save_seconds=None)  # as configured: every 5 s
    else:
        consumer = await streaming(save_seconds=None)
        publisher = asyncio.create_task(publish_paced(botworld, events, per_tick=40))
    elapsed: dict[str, list[float]] = {" ".join(path): [] for path, _ in COMMANDS}
    started = time.monotonic()
    try:
        while consumer.stats.events < count:
            for path, values in COMMANDS:
                reading = consumer.stats.events
                result = await botworld.harness.slash(*path, member=botworld.reader, **values)
                callback = await result.response(timeout=3.0)
                if reading < count and consumer.stats.events > reading:
                    # Only answers given while the consumer was reading count.
                    elapsed[" ".join(path)].append(callback.elapsed)
                if callback.deferred:
                    await result.followups(count=1, timeout=WAIT_S)
            assert time.monotonic() - started < 60, "the stream was not read within a minute"
        if publisher is not None:
            await publisher
    finally:
        if publisher is not None:
            publisher.cancel()
    took = time.monotonic() - started

    # Stopped as on shutdown: what was read is stored and the cursor saved on the way out.
    await botworld.jobs.stop_streams()
    assert consumer.stats.saved_us == events[-1]["time_us"]
    report = {
        name: (len(values), round(p99(values), 4), round(max(values), 4))
        for name, values in elapsed.items()
        if values
    }
    longest = max(consumer_steps)
    print(
        f"{mode}: {count} events read in {took:.1f} s; (answers, p99, max) of the first "
        f"responses: {report}; {len(consumer_steps)} consumer steps, the longest "
        f"{longest[0] * 1000:.1f} ms CPU ({longest[1]})"
    )
    # The consumer hands the event loop back often: nothing waits long behind it.
    assert longest[0] < STEP_CPU_S, longest
    assert consumer.stats.malformed == 0
    linking = len(events[:: round(1 / LINKING)])
    assert consumer.stats.posts >= linking
    assert len(await stored_bluesky(botworld)) == linking
    if mode == "live":
        # Interactions are answered at once. (In a catch-up the fake Jetstream, in this same
        # event loop, sends the backlog in bursts of tens of milliseconds itself: there only
        # the consumer's own share is checked, above.)
        for name, values in elapsed.items():
            assert len(values) >= 5, f"/{name}: only {len(values)} answers during the stream"
            assert p99(values) < LATENCY_S, f"/{name}: p99 {p99(values):.3f} s ({report})"


# -- (b) a digest ranks posts that arrived over the stream -----------------------------------


async def test_a_post_from_the_stream_is_ranked_with_its_appview_counts(
    botworld: BotWorld, streaming: Start
) -> None:
    world = botworld.world
    await botworld.ingest_reference_day()
    await botworld.configure(post_time="10:30", categories=("cs.CL",), top=3)
    consumer = await streaming()
    # 2012.11145 (cs.CL) has little on X; a Bluesky post with large counts puts it first.
    arxiv_id = "2012.11145"
    created = botworld.clock.now - dt.timedelta(hours=2)
    shown = f"arxiv.org/abs/{arxiv_id}"
    text = f"The NER paper everyone is sharing: {shown}"
    uri = world.bluesky.add_post(
        fake_did("nlp-reader.bsky.social"),
        "3knlp00000001",
        handle="nlp-reader.bsky.social",
        display_name="NLP reader",
        text=text,
        created_at=created,
        facets=[link_facet(text, shown, f"https://arxiv.org/abs/{arxiv_id}")],
        likes=5000,
        reposts=700,
        quotes=30,
        replies=12,
    )
    # Live: published after the consumer subscribed (it had no cursor, so it follows the tip).
    world.jetstream.publish(world.bluesky.jetstream_event(uri))

    async def stored() -> bool:
        return uri in await stored_bluesky(botworld)

    await until(stored, "the consumer to store the post")
    assert consumer.stats.posts == 1
    # The hourly ingestion reads the stored posts' counts from the AppView.
    await botworld.jobs.ingest()
    result, callback = await botworld.run("digest", "preview", member=botworld.mod)
    assert callback.deferred
    (_header, *papers) = await result.followups(count=2, timeout=WAIT_S)
    first = said(papers[0])
    assert "Domain specific BERT" in first, first
    assert "Bluesky: 5,000 likes, 700 reposts" in first, first
    # Its top post, named by handle, scores likes + reposts + quotes (replies weigh 0); the
    # paper's score adds its small X score (30 reposts, 23 likes).
    assert (
        "[@nlp-reader.bsky.social](https://bsky.app/profile/nlp-reader.bsky.social/post/" in first
    )
    assert "3knlp00000001) — 5,730" in first, first
    assert "**5,783**" in first, first


# -- (c) a stretch the stream no longer holds is shown as a gap ------------------------------


async def test_status_shows_the_gap_when_the_saved_cursor_is_older_than_the_lookback(
    botworld: BotWorld, streaming: Start
) -> None:
    now = botworld.clock.now
    saved = now - dt.timedelta(hours=48)  # the bot was down two days; the stream keeps 36 h
    await botworld.rt.streams.save_cursor("bluesky", micros(saved), None, saved)
    await streaming()
    jetstream = botworld.world.jetstream
    cursor = jetstream.cursors[-1]
    lookback = botworld.rt.settings.sources.bluesky.lookback_hours
    floor = now - dt.timedelta(hours=lookback)
    assert cursor == micros(floor)  # resumed at the oldest moment the stream still holds
    (gap,) = await botworld.rt.streams.gaps("bluesky", now - dt.timedelta(days=1))
    assert (gap.start, gap.end) == (saved, floor)
    text = said((await botworld.reply("digest", "status")).data)
    start, end = saved, floor
    assert (
        f"Bluesky posts from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC (12.0 h) "
        "were missed" in text
    ), text


# -- (d) a refresh in flight must not undo what the stream stored meanwhile -------------------


@pytest.mark.parametrize("change", ["deleted", "edited"])
async def test_a_post_deleted_or_edited_during_a_refresh_stays_so(
    botworld: BotWorld, streaming: Start, change: str
) -> None:
    world = botworld.world
    await streaming()
    did, rkey = fake_did("fickle.bsky.social"), "3kfickle00001"
    uri = post_uri(did, rkey)
    created = botworld.clock.now - dt.timedelta(hours=1)
    world.bluesky.add_post(
        did,
        rkey,
        handle="fickle.bsky.social",
        created_at=created,
        likes=90,
        reposts=9,
        record=paper_post(did, rkey, "2012.10885", micros(created))["commit"]["record"],
    )
    world.jetstream.publish(world.bluesky.jetstream_event(uri))

    async def stored() -> bool:
        return uri in await stored_bluesky(botworld)

    await until(stored, "the consumer to store the post")
    (bluesky,) = [s for s in botworld.rt.ingest.sources if s.name == "bluesky"]
    refresh = bluesky.refresh
    later = micros(created) + 60_000_000

    async def refresh_then_change(posts: Any) -> Any:
        answer = await refresh(posts)  # the AppView still shows the post as it was
        if change == "deleted":
            world.bluesky.delete_post(uri)
            world.jetstream.publish(post_deleted_event(did, rkey, later))

            async def applied() -> bool:
                return uri not in await stored_bluesky(botworld)
        else:
            edit = paper_post(did, rkey, "2012.11552", later)
            edit["commit"]["operation"] = "update"
            world.jetstream.publish(edit)

            async def applied() -> bool:
                return (await stored_bluesky(botworld)).get(uri) == ("2012.11552",)

        await until(applied, f"the consumer to store the post {change}")
        return answer

    bluesky.refresh = refresh_then_change  # type: ignore[method-assign]
    await botworld.jobs.ingest()
    held = await stored_bluesky(botworld)
    if change == "deleted":
        assert uri not in held
    else:
        assert held[uri] == ("2012.11552",)
