"""DeliveryService against an in-memory Publisher and a real database (SQLite and PostgreSQL):
styles, packing, exactly once across crashes (reconciled by markers, never by nonces), alerts,
exhausted digests. No Discord, no network: each test runs in milliseconds."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.core.errors import (
    ChannelGoneError,
    DeliveryError,
    DeliveryUnavailableError,
    MissingPermissionsError,
    StorageError,
)
from bot.core.models import AlertKind, Digest, EmptyReason
from bot.services.delivery import DeliveryAlert, DeliveryService, Publisher, Style
from bot.services.digests import DigestService
from bot.settings import DigestSettings, RankingSettings
from bot.storage.digests import DigestRepository
from bot.storage.engine import Database
from bot.storage.guilds import GuildConfig, GuildRepository
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository
from bot.ui.embeds import pack
from bot.ui.messages import empty_text
from tests.storage.factories import make_mention, make_paper

UTC = dt.UTC
NOW = dt.datetime(2025, 3, 3, 10, 50, tzinfo=UTC)  # a Monday, 20 minutes after a 10:30 slot
DAY = NOW.date()
GUILD = 1
CHANNEL = 100
ALERTS = 200
OWNER = "host/boot/1/1"


class ProcessDied(BaseException):
    """The process ends mid-digest: nothing in the service gets to catch it."""


@dataclass
class Message:
    id: int
    channel_id: int
    kind: str  # header | papers | compact | empty | alert
    marker: tuple[dt.date, int] | None  # (day, part), as the real messages carry it
    nonce: str | None = None
    indices: tuple[int, ...] = ()
    parts: int = 0
    text: str = ""
    alert: DeliveryAlert | None = None


@dataclass
class Fault:
    method: str
    error: BaseException
    when: str  # "before" the request reaches Discord, or "after" Discord did the work
    skip: int = 0


@dataclass
class FakePublisher:
    """An in-memory Discord implementing the Publisher protocol. Like Discord after its few
    minutes of nonce memory, it never deduplicates by nonce (``remember_nonces`` turns that
    on); ``find_own`` reads back by marker, as the real one does."""

    missing: list[str] = field(default_factory=list)
    remember_nonces: bool = False
    messages: list[Message] = field(default_factory=list)
    threads: dict[int, int] = field(default_factory=dict)  # header id -> thread id
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    gone: set[int] = field(default_factory=set)  # deleted channels
    _next: int = 1000

    def fail(self, method: str, error: BaseException, *, when: str = "before", skip: int = 0):
        """The next call of ``method`` (after ``skip``) raises ``error``."""
        self.faults.append(Fault(method, error, when, skip))

    def _fault(self, method: str) -> Fault | None:
        for fault in self.faults:
            if fault.method == method:
                if fault.skip:
                    fault.skip -= 1
                    return None
                self.faults.remove(fault)
                return fault
        return None

    def _post(self, method: str, channel_id: int, **values: Any) -> int:
        fault = self._fault(method)
        if fault is not None and fault.when == "before":
            raise fault.error
        if channel_id in self.gone:
            raise ChannelGoneError(f"channel {channel_id} no longer exists")
        nonce = values.get("nonce")
        if self.remember_nonces and nonce is not None:
            for message in self.messages:
                if message.nonce == nonce:
                    return message.id
        self._next += 1
        self.messages.append(Message(self._next, channel_id, **values))
        if fault is not None:
            raise fault.error  # stored, but the answer never arrives
        return self._next

    # -- the protocol ----------------------------------------------------------------------

    async def missing_permissions(self, channel_id: int, style: Style) -> list[str]:
        self.calls.append(("missing_permissions", channel_id, style))
        if channel_id in self.gone:
            raise ChannelGoneError(f"channel {channel_id} no longer exists")
        return list(self.missing)

    def pack(self, count: int) -> list[tuple[int, ...]]:
        return pack(count)

    async def send_header(
        self, channel_id: int, digest: Digest, categories: Sequence[str], *, nonce: str | None
    ) -> int:
        self.calls.append(("send_header", channel_id, nonce))
        return self._post(
            "send_header", channel_id, kind="header", marker=(digest.day, 0), nonce=nonce
        )

    async def open_thread(self, channel_id: int, message_id: int, name: str) -> int | None:
        self.calls.append(("open_thread", channel_id, message_id, name))
        fault = self._fault("open_thread")
        if fault is not None and fault.when == "before":
            raise fault.error
        # A thread started from a message has the message's id; asked again, Discord says
        # it exists (the real publisher then returns that id).
        self.threads.setdefault(message_id, message_id)
        if fault is not None:
            raise fault.error
        return self.threads[message_id]

    async def send_papers(
        self,
        target_id: int,
        digest: Digest,
        indices: Sequence[int],
        part: int,
        parts: int,
        *,
        nonce: str | None,
    ) -> int:
        self.calls.append(("send_papers", target_id, tuple(indices), part, parts, nonce))
        return self._post(
            "send_papers",
            target_id,
            kind="papers",
            marker=(digest.day, part),
            nonce=nonce,
            indices=tuple(indices),
            parts=parts,
        )

    async def send_compact(
        self, channel_id: int, digest: Digest, categories: Sequence[str], *, nonce: str | None
    ) -> int:
        self.calls.append(("send_compact", channel_id, nonce))
        return self._post(
            "send_compact", channel_id, kind="compact", marker=(digest.day, 0), nonce=nonce
        )

    async def send_empty(
        self, channel_id: int, day: dt.date, reason: EmptyReason, *, nonce: str | None
    ) -> int:
        self.calls.append(("send_empty", channel_id, nonce))
        text = empty_text(reason)  # what members read, as the real publisher renders it
        return self._post(
            "send_empty", channel_id, kind="empty", marker=(day, 0), nonce=nonce, text=text
        )

    async def send_alert(self, channel_id: int, alert: DeliveryAlert) -> int:
        self.calls.append(("send_alert", channel_id, alert.kind))
        return self._post("send_alert", channel_id, kind="alert", marker=None, alert=alert)

    async def find_own(
        self,
        channel_id: int,
        day: dt.date,
        *,
        after: int | None = None,
        since: dt.datetime | None = None,
    ) -> dict[int, int]:
        self.calls.append(("find_own", channel_id, after))
        found: dict[int, int] = {}
        for message in self.messages:
            if (
                message.channel_id == channel_id
                and message.marker is not None
                and message.marker[0] == day
                and (after is None or message.id > after)
            ):
                found.setdefault(message.marker[1], message.id)
        return found

    # -- what the tests read ---------------------------------------------------------------

    def digest_messages(self, day: dt.date = DAY) -> list[Message]:
        return [m for m in self.messages if m.marker is not None and m.marker[0] == day]

    def parts(self, day: dt.date = DAY) -> list[int]:
        return sorted(m.marker[1] for m in self.digest_messages(day) if m.marker is not None)

    def alerts(self) -> list[Message]:
        return [m for m in self.messages if m.kind == "alert"]

    def made(self, name: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == name]


_conforms: type[Publisher] = FakePublisher  # the fake implements the protocol


@dataclass
class Clock:
    now: dt.datetime = NOW

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class World:
    db: Database
    clock: Clock
    guilds: GuildRepository
    log: DigestRepository
    papers: PaperRepository
    mentions: MentionRepository
    delivery: DeliveryService
    ranked: list[str]

    async def configure(self, **fields: Any) -> GuildConfig:
        values = {"channel_id": CHANNEL, "post_time": "10:30", "timezone": "UTC", **fields}
        return await self.guilds.update(GUILD, **values)

    async def deliver(self, publisher: FakePublisher, config: GuildConfig | None = None):
        config = config or await self.guilds.get(GUILD)
        assert config is not None
        return await self.delivery.deliver(config, DAY, publisher)

    async def record(self):
        return await self.log.get(GUILD, DAY)


PAPERS = 20


@pytest.fixture
async def world(db: Database) -> World:
    """20 papers in cs.LG mentioned an hour ago, scoring 200, 199, … (all above 50)."""
    clock = Clock()
    papers, mentions, runs = PaperRepository(db), MentionRepository(db), RunRepository(db)
    ids = [f"2503.{n:05d}" for n in range(1, PAPERS + 1)]
    await papers.upsert([make_paper(i, title=f"Paper {i}") for i in ids], NOW)
    await mentions.upsert(
        [
            make_mention(
                f"post{n}",
                arxiv_ids=(i,),
                created_at=NOW - dt.timedelta(hours=1),
                metrics={"reposts": 100, "likes": 100 - n},
            )
            for n, i in enumerate(ids)
        ],
        NOW,
    )
    digests = DigestService(
        papers=papers, mentions=mentions, runs=runs, ranking=RankingSettings(), clock=clock
    )
    guilds = GuildRepository(db, clock=clock)
    log = DigestRepository(db, clock=clock)
    delivery = DeliveryService(
        guilds=guilds,
        digests=digests,
        log_=log,
        runs=runs,
        settings=DigestSettings(),
        clock=clock,
        owner=OWNER,
    )
    return World(db, clock, guilds, log, papers, mentions, delivery, ids)


def paper_ids(world: World, messages: Sequence[Message]) -> list[str]:
    """The papers the given paper messages carried, in order (by index into the ranking)."""
    return [world.ranked[i] for m in messages for i in m.indices]


# -- styles and packing -----------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 4, 5, 8, 10, 20])
@pytest.mark.parametrize("style", ["thread", "channel"])
async def test_papers_go_four_to_a_message_after_a_header(world, style, n):
    await world.configure(style=style, top_n=n)
    publisher = FakePublisher()
    result = await world.deliver(publisher)
    assert (result.status, result.papers) == ("sent", n)
    parts = math.ceil(n / 4)
    header, *papers = publisher.digest_messages()
    assert (header.kind, header.channel_id, header.marker) == ("header", CHANNEL, (DAY, 0))
    target = header.id if style == "thread" else CHANNEL
    assert [(m.kind, m.channel_id, m.marker, m.parts) for m in papers] == [
        ("papers", target, (DAY, part), parts) for part in range(1, parts + 1)
    ]
    assert [m.indices for m in papers] == [tuple(range(i, min(i + 4, n))) for i in range(0, n, 4)]
    assert paper_ids(world, papers) == world.ranked[:n]  # best first, each once
    # Header, (thread,) papers: nothing else, and nothing read back on a first attempt.
    made = [c[0] for c in publisher.calls if c[0] != "missing_permissions"]
    assert made == ["send_header"] + ["open_thread"] * (style == "thread") + ["send_papers"] * parts
    record = await world.record()
    assert (record.status, record.attempts, record.paper_count) == ("sent", 1, n)
    assert list(record.message_ids) == [m.id for m in publisher.digest_messages()]


async def test_ten_papers_in_a_thread_are_five_requests(world):
    await world.configure(style="thread", top_n=10)
    publisher = FakePublisher()
    await world.deliver(publisher)
    requests = [c for c in publisher.calls if c[0] in ("send_header", "open_thread", "send_papers")]
    assert len(requests) == 5
    assert [len(c[2]) for c in requests if c[0] == "send_papers"] == [4, 4, 2]


async def test_compact_is_one_message(world):
    await world.configure(style="compact", top_n=12)
    publisher = FakePublisher()
    result = await world.deliver(publisher)
    assert (result.status, result.papers) == ("sent", 12)
    (message,) = publisher.messages
    assert (message.kind, message.channel_id, message.marker) == ("compact", CHANNEL, (DAY, 0))
    record = await world.record()
    assert (record.status, list(record.message_ids)) == ("sent", [message.id])


@pytest.mark.parametrize("empty_day", ["message", "silent"])
async def test_an_empty_day(world, empty_day):
    await world.configure(threshold=10_000, empty_day=empty_day)
    publisher = FakePublisher()
    result = await world.deliver(publisher)
    assert result.status == "empty"
    record = await world.record()
    assert record.status == "empty"
    if empty_day == "silent":
        assert publisher.messages == []
        assert record.message_ids == ()
    else:
        (message,) = publisher.messages
        assert (message.kind, message.marker) == ("empty", (DAY, 0))
        assert message.text.startswith("No hot papers today:")
        assert "10000" in message.text
        assert list(record.message_ids) == [message.id]


async def test_a_digest_is_posted_once(world):
    await world.configure(style="channel", top_n=5)
    publisher = FakePublisher()
    await world.deliver(publisher)
    second = await world.deliver(publisher)
    assert second.status == "skipped"
    assert publisher.parts() == [0, 1, 2]


async def test_each_part_has_its_own_nonce_the_same_on_every_attempt(world):
    await world.configure(style="channel", top_n=9)
    first = FakePublisher()
    first.fail("send_papers", DeliveryUnavailableError("Discord answered 503"), skip=1)
    await world.deliver(first)
    world.clock.advance(minutes=10)
    second = FakePublisher(messages=list(first.messages))
    await world.deliver(second)
    nonces = {}
    for call in first.calls + second.calls:
        if call[0] == "send_header":
            nonces.setdefault(0, set()).add(call[2])
        elif call[0] == "send_papers":
            nonces.setdefault(call[3], set()).add(call[5])
    assert sorted(nonces) == [0, 1, 2, 3]
    assert all(len(n) == 1 for n in nonces.values())  # the part 2 of both attempts: one nonce
    flat = [next(iter(n)) for n in nonces.values()]
    assert len(set(flat)) == 4
    assert all(len(n) <= 25 for n in flat)  # Discord's limit


# -- exactly once across crashes: read back, never trusting nonces ------------------------------

# Each style's requests in order (5 papers: a header and two paper messages).
STEPS = {
    "thread": ["send_header", "open_thread", "send_papers", "send_papers"],
    "channel": ["send_header", "send_papers", "send_papers"],
    "compact": ["send_compact"],
}
CASES = [
    (style, step, when)
    for style, steps in STEPS.items()
    for step in range(len(steps))
    for when in ("before", "after")
]


@pytest.mark.parametrize(("style", "step", "when"), CASES)
async def test_a_crash_at_any_request_resumes_with_every_part_once(world, style, step, when):
    """The process dies before a request reaches Discord, or after Discord did it (the answer
    lost with the process). Past the nonce window the next process resumes the digest."""
    await world.configure(style=style, top_n=5)
    publisher = FakePublisher()
    method = STEPS[style][step]
    skip = STEPS[style][:step].count(method)
    publisher.fail(method, ProcessDied(), when=when, skip=skip)
    with pytest.raises(ProcessDied):
        await world.deliver(publisher)
    assert (await world.record()).status == "sending"

    world.clock.advance(minutes=11)  # the claim is stale: the next sweep takes it
    result = await world.deliver(publisher)
    assert result.status == "sent"
    expected = [0] if style == "compact" else [0, 1, 2]
    assert publisher.parts() == expected  # each part exactly once
    assert len(publisher.threads) == (style == "thread")
    record = await world.record()
    assert (record.status, record.attempts) == ("sent", 2)
    assert list(record.message_ids) == [m.id for m in publisher.digest_messages()]
    if style != "compact":
        papers = publisher.digest_messages()[1:]
        assert paper_ids(world, papers) == world.ranked[:5]
        thread = publisher.digest_messages()[0].id if style == "thread" else CHANNEL
        assert {m.channel_id for m in papers} == {thread}


@pytest.mark.parametrize(
    ("style", "message"),
    [(style, n) for style in ("thread", "channel") for n in (1, 2, 3)] + [("compact", 1)],
)
async def test_a_message_sent_but_not_recorded_is_found_not_sent_again(world, style, message):
    """Discord answered; the database write failed (a StorageError): the digest fails and the
    retry finds the message by its marker. (The last message is recorded with the outcome.)"""
    await world.configure(style=style, top_n=5)
    publisher = FakePublisher()
    add_message, finish = world.log.add_message, world.log.finish
    calls = 0

    async def add_fails_once(*args: Any, **kwargs: Any):
        nonlocal calls
        calls += 1
        if calls == message:
            raise StorageError("database is locked")
        return await add_message(*args, **kwargs)

    async def finish_fails_once(*args: Any, **kwargs: Any):
        nonlocal calls
        if kwargs.get("message_ids"):
            calls += 1
            if calls == message:
                raise StorageError("database is locked")
        return await finish(*args, **kwargs)

    world.log.add_message = add_fails_once  # type: ignore[method-assign]
    world.log.finish = finish_fails_once  # type: ignore[method-assign]
    result = await world.deliver(publisher)
    assert (result.status, result.detail) == ("failed", "internal error")
    world.clock.advance(minutes=10)
    result = await world.deliver(publisher)
    assert result.status == "sent"
    assert publisher.parts() == ([0] if style == "compact" else [0, 1, 2])
    record = await world.record()
    assert list(record.message_ids) == [m.id for m in publisher.digest_messages()]


async def test_a_first_attempt_reads_nothing_back_a_retry_reads_before_sending(world):
    await world.configure(style="channel", top_n=5)
    publisher = FakePublisher()
    publisher.fail("send_papers", DeliveryUnavailableError("Discord answered 503"), when="after")
    await world.deliver(publisher)
    assert publisher.made("find_own") == []
    (header,) = [m for m in publisher.messages if m.kind == "header"]
    world.clock.advance(minutes=10)
    publisher.calls.clear()
    await world.deliver(publisher)
    # After the recorded header: part 1 is there (stored, its answer lost), part 2 is not.
    assert publisher.calls[1] == ("find_own", CHANNEL, header.id)
    assert [c[3] for c in publisher.made("send_papers")] == [2]
    assert publisher.parts() == [0, 1, 2]


async def test_a_resumed_thread_digest_reopens_its_thread_and_reads_it(world):
    await world.configure(style="thread", top_n=9)
    publisher = FakePublisher()
    publisher.fail("send_papers", ProcessDied(), when="after", skip=1)  # part 2 unanswered
    with pytest.raises(ProcessDied):
        await world.deliver(publisher)
    header = publisher.digest_messages()[0]
    world.clock.advance(minutes=11)
    publisher.calls.clear()
    await world.deliver(publisher)
    assert publisher.made("open_thread") == [
        ("open_thread", CHANNEL, header.id, f"Hot Papers {DAY.isoformat()}")
    ]
    assert ("find_own", header.id, publisher.digest_messages()[1].id) in publisher.calls
    assert [c[3] for c in publisher.made("send_papers")] == [3]
    assert publisher.parts() == [0, 1, 2, 3]


async def test_a_resume_keeps_the_planned_papers(world):
    """The papers chosen by the first attempt, in its order, even if the ranking changed."""
    await world.configure(style="channel", top_n=5)
    publisher = FakePublisher()
    publisher.fail("send_papers", ProcessDied(), skip=1)
    with pytest.raises(ProcessDied):
        await world.deliver(publisher)
    # A new paper now outranks all of them.
    await world.papers.upsert([make_paper("2503.09999", title="Newcomer")], NOW)
    await world.mentions.upsert(
        [
            make_mention(
                "viral",
                arxiv_ids=("2503.09999",),
                created_at=NOW,
                metrics={"reposts": 5000, "likes": 5000},
            )
        ],
        NOW,
    )
    world.delivery.digests.invalidate()
    world.clock.advance(minutes=11)
    await world.deliver(publisher)
    papers = publisher.digest_messages()[1:]
    assert paper_ids(world, papers) == world.ranked[:5]


# -- moderators are told -------------------------------------------------------------------------


@pytest.mark.parametrize("alert_channel", [ALERTS, None])
async def test_a_403_tells_the_moderators_once(world, alert_channel):
    await world.configure(style="channel", top_n=5, alert_channel_id=alert_channel)
    publisher = FakePublisher()
    refused = MissingPermissionsError("not allowed to post in channel 100 (Discord 50013)")
    publisher.fail("send_header", refused)
    result = await world.deliver(publisher)
    assert result.status == "failed"
    (alert,) = publisher.alerts()
    assert alert.channel_id == (alert_channel or CHANNEL)
    assert alert.alert is not None
    assert (alert.alert.kind, alert.alert.guild_id, alert.alert.day) == (
        AlertKind.NO_PERMISSION,
        GUILD,
        DAY,
    )
    assert alert.alert.channel_id == CHANNEL
    world.clock.advance(minutes=10)
    publisher.fail("send_header", refused)
    await world.deliver(publisher)
    assert len(publisher.alerts()) == 1  # once per digest
    world.clock.advance(minutes=10)
    assert (await world.deliver(publisher)).status == "sent"
    assert len(publisher.alerts()) == 1


async def test_missing_permissions_are_named_before_anything_is_posted(world):
    await world.configure(style="thread", top_n=5)
    publisher = FakePublisher(missing=["Embed Links"])
    result = await world.deliver(publisher)
    assert result.status == "failed"
    assert publisher.digest_messages() == []
    (alert,) = publisher.alerts()
    assert alert.alert is not None
    assert (alert.alert.kind, alert.alert.missing) == (AlertKind.NO_PERMISSION, ("Embed Links",))
    assert (await world.record()).error == "missing permissions: Embed Links"


async def test_an_alert_channel_that_refuses_falls_back_to_the_digest_channel(world):
    await world.configure(style="channel", top_n=5, alert_channel_id=ALERTS)
    publisher = FakePublisher()
    publisher.fail("send_header", MissingPermissionsError("refused"))
    publisher.fail("send_alert", MissingPermissionsError("refused too"))
    await world.deliver(publisher)
    assert [c[1] for c in publisher.made("send_alert")] == [ALERTS, CHANNEL]
    (alert,) = publisher.alerts()
    assert alert.channel_id == CHANNEL


@pytest.mark.parametrize("alert_channel", [ALERTS, None])
async def test_a_404_pauses_and_tells_only_the_alert_channel(world, alert_channel):
    await world.configure(style="channel", top_n=5, alert_channel_id=alert_channel)
    publisher = FakePublisher(gone={CHANNEL})
    result = await world.deliver(publisher)
    assert result.status == "failed"
    config = await world.guilds.get(GUILD)
    assert config.paused
    assert [c[1] for c in publisher.made("send_alert")] == ([ALERTS] if alert_channel else [])
    if alert_channel:
        (alert,) = publisher.alerts()
        assert alert.alert is not None
        assert alert.alert.kind is AlertKind.CHANNEL_GONE
    record = await world.record()
    assert (record.alerted_at is not None) == bool(alert_channel)


async def test_only_the_last_attempt_failing_tells_the_moderators(world):
    world.log.max_attempts = 3
    await world.configure(style="channel", top_n=5)
    publisher = FakePublisher()
    for attempt in range(1, 4):
        publisher.fail("send_header", DeliveryUnavailableError("Discord answered 503"))
        result = await world.deliver(publisher)
        assert result.status == "failed"
        assert len(publisher.alerts()) == (attempt == 3)
        world.clock.advance(minutes=10)
    (alert,) = publisher.alerts()
    assert alert.alert is not None
    assert (alert.alert.kind, alert.alert.attempts) == (AlertKind.FAILED, 3)
    assert (await world.deliver(publisher)).status == "skipped"  # never claimed again


async def test_a_failure_past_the_grace_period_is_final(world):
    await world.configure(style="channel", top_n=5)
    world.clock.now = NOW + dt.timedelta(hours=6)  # 6 h 20 min after the 10:30 slot
    publisher = FakePublisher()
    publisher.fail("send_papers", DeliveryError("Discord refused the message (400, code 0)"))
    await world.delivery.deliver(await world.guilds.get(GUILD), DAY, publisher)
    (alert,) = publisher.alerts()
    assert alert.alert is not None
    assert (alert.alert.kind, alert.alert.attempts) == (AlertKind.FAILED, 1)


async def test_an_exhausted_digest_is_failed_and_notified_once(world):
    world.log.max_attempts = 2
    await world.configure(style="channel", top_n=5)
    publisher = FakePublisher()
    publisher.fail("send_papers", ProcessDied())
    with pytest.raises(ProcessDied):
        await world.deliver(publisher)
    world.clock.advance(minutes=11)
    publisher.fail("send_papers", ProcessDied())
    with pytest.raises(ProcessDied):
        await world.deliver(publisher)
    record = await world.record()
    assert (record.status, record.attempts) == ("sending", 2)
    assert await world.delivery.settle_exhausted(publisher) == 0  # still fresh: maybe alive

    world.clock.advance(minutes=11)
    assert await world.delivery.settle_exhausted(publisher) == 1
    record = await world.record()
    assert (record.status, record.error) == ("failed", "abandoned after 2 attempts")
    (alert,) = publisher.alerts()
    assert alert.alert is not None
    assert (alert.alert.kind, alert.alert.attempts, alert.channel_id) == (
        AlertKind.FAILED,
        2,
        CHANNEL,
    )
    assert await world.delivery.settle_exhausted(publisher) == 0
    assert (await world.deliver(publisher)).status == "skipped"
    assert len(publisher.alerts()) == 1
    assert publisher.parts() == [0]  # the header it got to post, and nothing more


# -- threads the bot can't use -------------------------------------------------------------------


async def test_without_thread_permissions_the_papers_go_in_the_channel(world):
    await world.configure(style="thread", top_n=5)
    publisher = FakePublisher(missing=["(thread) Create Public Threads"])
    result = await world.deliver(publisher)
    assert result.status == "sent"
    assert publisher.made("open_thread") == []
    assert {m.channel_id for m in publisher.digest_messages()} == {CHANNEL}
    assert publisher.alerts() == []


@pytest.mark.parametrize(
    "error", [MissingPermissionsError("closed"), ChannelGoneError("thread deleted")]
)
async def test_a_thread_that_refuses_the_papers_sends_them_to_the_channel(world, error):
    await world.configure(style="thread", top_n=9)
    publisher = FakePublisher()
    publisher.fail("send_papers", error, skip=1)  # the second paper message, in the thread
    result = await world.deliver(publisher)
    assert result.status == "sent"
    header, *papers = publisher.digest_messages()
    assert [m.channel_id for m in papers] == [header.id, CHANNEL, CHANNEL]
    assert publisher.parts() == [0, 1, 2, 3]
    assert not (await world.guilds.get(GUILD)).paused
    assert publisher.alerts() == []
