"""Daily digest delivery: which guilds are due, what to post, and posting it exactly once.

The database is the truth. A digest is claimed (``begin``) before anything is sent, the papers
it will carry are recorded before the first message, and each message id is recorded as soon as
Discord accepts it. A crash or restart in the middle resumes after the last recorded message with
the same papers; a finished digest is never sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from bot.core.errors import (
    ChannelGoneError,
    DeliveryError,
    DeliveryUnavailableError,
    MissingPermissionsError,
)
from bot.core.models import (
    AlertKind,
    Digest,
    DigestState,
    DigestStyle,
    EmptyDay,
    EmptyKind,
    EmptyReason,
    NoteKind,
    RankedPaper,
    RankingMode,
    StatusNote,
    Window,
)
from bot.core.schedule import local_date, next_post_time, parse_post_time
from bot.services.digests import SECOND_CHANCE_DAYS, DigestService
from bot.services.guilds import CHANNEL_GONE_REASON
from bot.services.ingest import FEED_SOURCE
from bot.services.metrics import Metrics
from bot.services.stream import StreamConsumer
from bot.settings import DigestSettings
from bot.storage.digests import DigestRecord, DigestRepository
from bot.storage.guilds import GuildConfig, GuildRepository
from bot.storage.runs import RunRepository, SourceRun
from bot.storage.streams import StreamGap

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
Style = Literal["thread", "channel", "compact"]
# A sender refreshes its record this often (seconds) while it works: well inside both the
# 10-minute staleness of a claim and the 2 minutes after which a restart takes a digest over.
HEARTBEAT_SECONDS = 60.0
# /digest status shows the stream gaps found this recently.
STREAM_GAPS_SHOWN = dt.timedelta(days=7)


class Publisher(Protocol):
    """Posts to Discord. Implemented in ``bot/ui``; raises :class:`DeliveryError` subclasses.

    A digest is a header (part 0) and paper messages (parts 1 to n, packed by :meth:`pack`),
    or one message (compact, or an empty day). ``nonce`` is the same for the same part of the
    same digest on every attempt, so a message Discord accepted but whose answer was lost is
    not posted twice on a quick retry; past Discord's few minutes of nonce memory,
    :meth:`find_own` reads the bot's own messages back by the marker each part carries.
    ``open_thread`` on a message that already has a thread returns that thread.
    """

    async def missing_permissions(self, channel_id: int, style: Style) -> list[str]: ...

    def pack(self, count: int) -> list[tuple[int, ...]]: ...

    async def send_header(
        self, channel_id: int, digest: Digest, categories: Sequence[str], *, nonce: str | None
    ) -> int: ...

    async def open_thread(self, channel_id: int, message_id: int, name: str) -> int | None: ...

    async def send_papers(
        self,
        target_id: int,
        digest: Digest,
        indices: Sequence[int],
        part: int,
        parts: int,
        *,
        nonce: str | None,
    ) -> int: ...

    async def send_compact(
        self, channel_id: int, digest: Digest, categories: Sequence[str], *, nonce: str | None
    ) -> int: ...

    async def send_empty(
        self, channel_id: int, day: dt.date, reason: EmptyReason, *, nonce: str | None
    ) -> int: ...

    async def send_alert(self, channel_id: int, alert: DeliveryAlert) -> int: ...

    async def find_own(
        self,
        channel_id: int,
        day: dt.date,
        *,
        after: int | None = None,
        since: dt.datetime | None = None,
    ) -> dict[int, int]: ...


@dataclass(frozen=True, slots=True)
class DeliveryAlert:
    """What moderators are told when their digest fails for good or is paused (the words are
    ``bot.ui.messages.alert_text``'s)."""

    kind: AlertKind
    guild_id: int
    day: dt.date
    channel_id: int | None  # the digest channel
    missing: tuple[str, ...] = ()  # permissions the bot lacks (NO_PERMISSION)
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    guild_id: int
    day: dt.date
    status: Literal["sent", "empty", "failed", "skipped"]
    papers: int = 0
    detail: str = ""


def earliest_post(day: dt.date) -> dt.datetime:
    """The earliest instant a digest of local date ``day`` can have been posted: midnight in
    the easternmost time zone (UTC+14). Whatever the guild's time zone or post time was on
    an earlier attempt, its messages are not older than this."""
    return dt.datetime.combine(day, dt.time(), dt.UTC) - dt.timedelta(hours=14)


def empty_reason(
    digest: Digest, day: dt.date, threshold: float, *, arxiv_quiet: bool = False
) -> EmptyReason:
    """Why a digest has no paper (``bot.ui.messages.empty_text`` says it in words)."""
    field = digest.ranking is RankingMode.FIELD
    if digest.failed_sources:
        return EmptyReason(
            EmptyKind.SOURCES_FAILED,
            threshold,
            failed_sources=tuple(digest.failed_sources),
            field=field,
        )
    if arxiv_quiet and day.weekday() < 5:
        return EmptyReason(EmptyKind.ARXIV_HOLIDAY, threshold, field=field)
    if day.weekday() >= 5:
        return EmptyReason(EmptyKind.WEEKEND, threshold, field=field)
    return EmptyReason(EmptyKind.BELOW_THRESHOLD, threshold, field=field)


class DeliveryService:
    """Posts each guild's digest at its local time, exactly once per guild and local date."""

    def __init__(
        self,
        *,
        guilds: GuildRepository,
        digests: DigestService,
        log_: DigestRepository,
        runs: RunRepository,
        settings: DigestSettings,
        clock: Clock,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        owner: str | None = None,
        source_names: Sequence[str] = (),
        consumers: Sequence[StreamConsumer] = (),
        metrics: Metrics | None = None,
    ) -> None:
        self.guilds = guilds
        self.digests = digests
        self.log = log_
        self.runs = runs
        self.settings = settings
        self.clock = clock
        self.heartbeat_seconds = heartbeat_seconds
        # This process, named in every claim (``bot.services.owner``).
        self.owner = owner
        # What /digest status reports on: every enabled source, and the streams' gaps.
        self.source_names = tuple(source_names)
        self.consumers = tuple(consumers)
        # Digests sent, and failed attempts by reason.
        self.metrics = metrics or Metrics()

    # --- when -------------------------------------------------------------------------------

    def last_slot(self, config: GuildConfig, now: dt.datetime) -> dt.datetime:
        """The most recent scheduled post time at or before ``now`` (UTC)."""
        post_time = parse_post_time(config.post_time)
        nxt = next_post_time(now - dt.timedelta(days=1, seconds=1), post_time, config.timezone)
        slot = nxt
        while True:
            following = next_post_time(slot, post_time, config.timezone)
            if following > now:
                return slot
            slot = following

    async def due(
        self, now: dt.datetime | None = None, *, owns: Callable[[int], bool] | None = None
    ) -> list[tuple[GuildConfig, dt.date]]:
        """Guilds whose latest slot passed within the grace period and isn't posted yet.

        A slot from before the guild could post (its channel set at 10:50 for a 09:00 digest,
        resumed, or its time just moved earlier) was never owed: it is skipped unless a record
        says an attempt began (a failed or half-sent digest is still finished).

        ``owns``: only the guilds it accepts (a sharded process: those of its shards).
        """
        now = now or self.clock()
        grace = dt.timedelta(hours=self.settings.grace_hours)
        slots = []
        for config in await self.guilds.active():
            if owns is not None and not owns(config.guild_id):
                continue
            slot = self.last_slot(config, now)
            if now - slot <= grace:
                slots.append((config, slot, local_date(slot, config.timezone)))
        states = await self.log.states({day for _config, _slot, day in slots})
        due: list[tuple[GuildConfig, dt.date]] = []
        for config, slot, day in slots:
            state = states.get((config.guild_id, day))
            if state is None:
                if config.active_since is not None and slot < config.active_since:
                    continue
                due.append((config, day))
            elif state in (DigestState.PENDING, DigestState.FAILED, DigestState.SENDING):
                due.append((config, day))
        return due

    # --- what -------------------------------------------------------------------------------

    async def build(self, config: GuildConfig, now: dt.datetime) -> Digest:
        """The digest this guild would get at ``now``: the last 24 hours, its categories,
        its threshold and size, without papers it was shown recently."""
        cooldown = dt.timedelta(days=self.settings.repost_cooldown_days)
        lookback = max(cooldown, dt.timedelta(days=SECOND_CHANCE_DAYS + 1))
        shown = await self.log.shown(config.guild_id, now - lookback)
        exclude = {pid for pid, at in shown.items() if cooldown and at >= now - cooldown}
        window = Window(now - dt.timedelta(days=1), now)
        ranking = RankingMode(config.ranking)
        digest = await self.digests.build(
            window,
            day=local_date(now, config.timezone),
            categories=config.categories,
            threshold=config.threshold,
            top_n=config.top_n,
            exclude=exclude,
            ranking=ranking,
        )
        # Second chances: a paper of the last days that qualifies only now, and that this
        # server was never shown, follows the day's papers once, marked rising.
        try:
            chances = await self.digests.second_chances(
                window,
                ranking=ranking,
                categories=config.categories,
                threshold=config.threshold,
                exclude={*shown, *(r.paper.arxiv_id for r in digest.papers)},
                since=config.active_since or config.created_at,
            )
        except Exception:
            # A bonus: the day's papers go out without it.
            log.warning("guild %s: second chances failed", config.guild_id, exc_info=True)
            chances = []
        if chances:
            digest = dataclasses.replace(digest, papers=(*digest.papers, *chances))
        return digest

    # --- how --------------------------------------------------------------------------------

    async def deliver(
        self,
        config: GuildConfig,
        day: dt.date,
        publisher: Publisher,
        now: dt.datetime | None = None,
    ) -> DeliveryResult:
        """Post (or resume posting) one guild's digest for ``day``. Never raises."""
        now = now or self.clock()
        gid = config.guild_id
        if config.channel_id is None or config.paused:
            return DeliveryResult(gid, day, "skipped", detail="no channel or paused")
        # Built before the claim, so that the claim records its papers in the same write: a
        # fan-out of thousands of digests costs two writes each (claim, outcome) plus one per
        # extra message. A digest that can't be built is still claimed, and failed below.
        fresh: Digest | None = None
        try:
            fresh = await self.build(config, now)
        except Exception:
            log.exception("guild %s: building the digest for %s failed", gid, day)
        ids = [r.paper.arxiv_id for r in fresh.papers] if fresh is not None else []
        claimed = await self.log.claim(gid, day, papers=ids, now=now, owner=self.owner)
        if claimed is None:
            return DeliveryResult(gid, day, "skipped", detail="already posted or in progress")
        record, planned = claimed
        try:
            async with self._heartbeat(record):
                if planned and (fresh is None or planned != ids):
                    # An earlier attempt chose these papers (and may have posted some): keep
                    # them, so a retry neither repeats nor drops one, and the cooldown doesn't
                    # hide them.
                    fresh = await self._planned_digest(config, record, now, planned)
                if fresh is None:
                    raise DeliveryError("the digest could not be built (see the bot's log)")
                result = await self._send(config, day, record, fresh, publisher)
                self.metrics.digest_sent("papers" if result.status == "sent" else "empty")
                return result
        except ChannelGoneError as exc:
            self.metrics.digest_failed("channel_gone")
            await self.guilds.update(
                gid, paused=True, pause_reason=f"{CHANNEL_GONE_REASON}: {exc.message}"
            )
            record = await self.log.finish(
                record.id,
                DigestState.FAILED,
                error=f"channel deleted: {exc.message}",
                now=self.clock(),
            )
            log.warning("guild %s: digest channel gone, digest paused", gid)
            await self._alert(config, record, AlertKind.CHANNEL_GONE, publisher)
            return DeliveryResult(gid, day, "failed", detail=exc.message)
        except MissingPermissionsError as exc:
            self.metrics.digest_failed("missing_permissions")
            record = await self.log.finish(
                record.id,
                DigestState.FAILED,
                error=f"missing permissions: {exc.message}",
                now=self.clock(),
            )
            log.warning("guild %s: missing permissions: %s", gid, exc.message)
            await self._alert(
                config, record, AlertKind.NO_PERMISSION, publisher, missing=exc.missing
            )
            return DeliveryResult(gid, day, "failed", detail=exc.message)
        except DeliveryUnavailableError as exc:
            self.metrics.digest_failed("discord_unavailable")
            record = await self.log.finish(
                record.id,
                DigestState.FAILED,
                error=f"Discord unavailable: {exc.message}",
                now=self.clock(),
            )
            log.warning("guild %s: Discord unavailable, will retry: %s", gid, exc.message)
            await self._alert_if_final(config, record, publisher)
            return DeliveryResult(gid, day, "failed", detail=exc.message)
        except DeliveryError as exc:
            self.metrics.digest_failed("delivery_error")
            record = await self.log.finish(
                record.id, DigestState.FAILED, error=exc.message, now=self.clock()
            )
            await self._alert_if_final(config, record, publisher)
            return DeliveryResult(gid, day, "failed", detail=exc.message)
        except Exception:
            self.metrics.digest_failed("internal_error")
            log.exception("guild %s: digest for %s crashed", gid, day)
            record = await self.log.finish(
                record.id, DigestState.FAILED, error="internal error", now=self.clock()
            )
            await self._alert_if_final(config, record, publisher)
            return DeliveryResult(gid, day, "failed", detail="internal error")

    # --- telling moderators -----------------------------------------------------------------

    async def _alert_if_final(
        self, config: GuildConfig, record: DigestRecord, publisher: Publisher
    ) -> None:
        """A failure with no attempt left (or no time left in the grace period) is final."""
        now = self.clock()
        slot = self.last_slot(config, now)
        out_of_time = now - slot > dt.timedelta(hours=self.settings.grace_hours)
        if record.attempts >= self.log.max_attempts or out_of_time:
            await self._alert(config, record, AlertKind.FAILED, publisher)

    async def _alert(
        self,
        config: GuildConfig,
        record: DigestRecord,
        kind: AlertKind,
        publisher: Publisher,
        *,
        missing: Sequence[str] = (),
    ) -> bool:
        """Tell the server's moderators, once per digest: in the alert channel if one is set,
        else in the digest channel if the bot can still post there. Never raises."""
        if record.alerted_at is not None:
            return False
        alert = DeliveryAlert(
            kind,
            config.guild_id,
            record.digest_date,
            config.channel_id,
            tuple(missing),
            record.attempts,
        )
        targets = [config.alert_channel_id]
        if kind is not AlertKind.CHANNEL_GONE:
            targets.append(config.channel_id)
        for target in dict.fromkeys(t for t in targets if t is not None):
            try:
                await publisher.send_alert(target, alert)
            except DeliveryError as exc:
                log.info(
                    "guild %s: could not post the %s notice in %s: %s",
                    config.guild_id,
                    kind,
                    target,
                    exc.message,
                )
                continue
            except Exception:
                log.warning("guild %s: the %s notice crashed", config.guild_id, kind, exc_info=True)
                continue
            await self.log.mark_alerted(record.id, now=self.clock())
            log.info("guild %s: moderators told (%s) in %s", config.guild_id, kind, target)
            return True
        log.warning(
            "guild %s: digest %s %s, and no channel would take the notice",
            config.guild_id,
            record.digest_date,
            kind,
        )
        return False

    async def settle_exhausted(self, publisher: Publisher) -> int:
        """Mark digests that ran out of attempts mid-send as failed and tell their moderators:
        none is left half-posted in silence. Returns how many."""
        records = await self.log.exhausted(now=self.clock())
        for record in records:
            log.warning(
                "guild %s: digest %s %s",
                record.guild_id,
                record.digest_date,
                record.error,
            )
            config = await self.guilds.get(record.guild_id)
            if config is not None:
                await self._alert(config, record, AlertKind.FAILED, publisher)
        return len(records)

    @contextlib.asynccontextmanager
    async def _heartbeat(self, record: DigestRecord) -> AsyncIterator[None]:
        """Refresh the record every ``heartbeat_seconds`` while the body runs, so a send held
        up (a long 429, a slow Discord) is never mistaken for a dead one and claimed again."""
        stop = asyncio.Event()

        async def beat() -> None:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.heartbeat_seconds)
                if stop.is_set():
                    return
                try:
                    alive = await self.log.heartbeat(record.id, now=self.clock())
                except Exception:
                    # The database hiccuped: the send goes on regardless.
                    log.warning("digest %s: heartbeat failed", record.id, exc_info=True)
                    continue
                if not alive:
                    # Finished in the instant before this beat: the normal end of a race.
                    log.debug("digest %s: finished, heartbeat stopped", record.id)
                    return

        task = asyncio.get_running_loop().create_task(beat(), name=f"heartbeat:{record.id}")
        try:
            yield
        finally:
            # Stopped, not cancelled: a heartbeat being written completes first.
            stop.set()
            await task

    async def _send(
        self,
        config: GuildConfig,
        day: dt.date,
        record: DigestRecord,
        digest: Digest,
        publisher: Publisher,
    ) -> DeliveryResult:
        gid = config.guild_id
        channel = config.channel_id
        assert channel is not None
        style: Style = config.style  # type: ignore[assignment]
        sent = list(record.message_ids)
        missing = await publisher.missing_permissions(channel, style)
        if not sent:
            required = [m for m in missing if not m.startswith("(thread)")]
            if required:
                raise MissingPermissionsError(", ".join(required), tuple(required))
        no_thread = [m.removeprefix("(thread) ") for m in missing if m.startswith("(thread)")]

        def nonce() -> str:
            # The same message of the same guild's digest of the day gets the same nonce on
            # every attempt (whatever the database ids); Discord allows 25 characters.
            key = f"{gid}:{day.isoformat()}:{len(sent)}".encode()
            return hashlib.blake2s(key, digest_size=12).hexdigest()

        async def sent_one(message_id: int, *, last: bool = False) -> None:
            sent.append(message_id)
            if not last:  # the last one is recorded with the outcome, in the same write
                await self.log.add_message(record.id, message_id, now=self.clock())

        # Resuming (a crash, a takeover, a retry after a 5xx): first ask Discord what it holds
        # that was never recorded, past the few minutes in which it honours a nonce.
        resuming = record.attempts > 1 or record.takeovers > 0 or bool(sent)
        if resuming and not sent:
            found = await publisher.find_own(channel, day, since=earliest_post(day))
            if 0 in found:
                log.info("guild %s: digest %s header found on Discord, recorded", gid, day)
                await sent_one(found[0])

        if not digest.papers:
            if config.empty_day == EmptyDay.MESSAGE and not sent:
                threshold = self.threshold(config)
                reason = empty_reason(digest, day, threshold, arxiv_quiet=await self.arxiv_quiet())
                await sent_one(
                    await publisher.send_empty(channel, day, reason, nonce=nonce()), last=True
                )
            await self.log.finish(record.id, DigestState.EMPTY, message_ids=sent, now=self.clock())
            return DeliveryResult(gid, day, "empty")

        if style == DigestStyle.COMPACT:
            if not sent:
                message_id = await publisher.send_compact(
                    channel, digest, config.categories, nonce=nonce()
                )
                await sent_one(message_id, last=True)
        else:
            groups = publisher.pack(len(digest.papers))
            if not sent:
                await sent_one(
                    await publisher.send_header(channel, digest, config.categories, nonce=nonce())
                )
            target = channel
            if style == DigestStyle.THREAD and no_thread:
                # A thread the bot could open but not post in would stay empty every day.
                log.info(
                    "guild %s: without %s the papers go in the channel", gid, ", ".join(no_thread)
                )
            elif style == DigestStyle.THREAD:
                thread = await publisher.open_thread(
                    channel, sent[0], f"Hot Papers {day.isoformat()}"
                )
                target = thread or channel

            async def reconcile(where: int) -> None:
                """Record the parts an earlier attempt posted in ``where`` after the last
                recorded one."""
                found = await publisher.find_own(where, day, after=sent[-1])
                while len(sent) in found and len(sent) <= len(groups):
                    log.info(
                        "guild %s: digest %s part %d found on Discord, recorded",
                        gid,
                        day,
                        len(sent),
                    )
                    await sent_one(found[len(sent)])

            if resuming and len(sent) <= len(groups):
                await reconcile(target)
            while len(sent) <= len(groups):
                part = len(sent)
                try:
                    message_id = await publisher.send_papers(
                        target, digest, groups[part - 1], part, len(groups), nonce=nonce()
                    )
                except (ChannelGoneError, MissingPermissionsError) as exc:
                    if target == channel:
                        raise
                    # The thread, not the channel, is gone or closed to the bot: finish the
                    # digest in the channel rather than fail (or pause) it. An earlier attempt
                    # may have come this way already: what it left there is not posted again.
                    log.warning(
                        "guild %s: digest thread %s refused a message (%s): the rest go in "
                        "the channel",
                        gid,
                        target,
                        exc.message,
                    )
                    target = channel
                    await reconcile(channel)
                    continue
                await sent_one(message_id, last=part == len(groups))
        await self.log.finish(
            record.id,
            DigestState.SENT,
            paper_count=len(digest.papers),
            message_ids=sent,
            now=self.clock(),
        )
        return DeliveryResult(gid, day, "sent", papers=len(digest.papers))

    def threshold(self, config: GuildConfig) -> float:
        return config.threshold if config.threshold is not None else self.digests.ranking.threshold

    async def _planned_digest(
        self, config: GuildConfig, record: DigestRecord, now: dt.datetime, planned: list[str]
    ) -> Digest:
        """The papers an interrupted digest had planned, in the same order, scored afresh over
        the last day: each from the uncut ranking (not a cut top N of every category, which
        a guild's planned paper may be outside), 0 if nobody mentions it any more."""
        window = Window(now - dt.timedelta(days=1), now)
        by_id = {r.paper.arxiv_id: r for r in await self.digests.score(window)}
        papers = await self.digests.papers.get_many(planned)
        ranked = [
            by_id.get(pid) or RankedPaper(papers[pid], 0.0, {}, ())
            for pid in planned
            if pid in by_id or pid in papers
        ]
        return Digest(
            day=record.digest_date,
            window=window,
            categories=config.categories,
            papers=tuple(ranked),
            generated_at=now,
            threshold=self.threshold(config),
            ranking=RankingMode(config.ranking),
        )

    # --- status -----------------------------------------------------------------------------

    async def next_post(self, config: GuildConfig, now: dt.datetime | None = None) -> dt.datetime:
        """The next slot that will really post: a local date whose digest is already done (the
        time was moved later after today's post) is skipped."""
        now = now or self.clock()
        post_time = parse_post_time(config.post_time)
        slot = next_post_time(now, post_time, config.timezone)
        record = await self.log.get(config.guild_id, local_date(slot, config.timezone))
        if record is not None and record.done:
            slot = next_post_time(slot, post_time, config.timezone)
        return slot

    async def arxiv_quiet(self, now: dt.datetime | None = None) -> bool:
        """True when arXiv's latest announcement feed, read in the last 36 h, was empty: a
        weekend or an arXiv holiday (the feed is how arXiv tells; there is no calendar)."""
        now = now or self.clock()
        run = (await self.runs.latest_by_source()).get(FEED_SOURCE)
        return (
            run is not None
            and run.error is None
            and run.mentions == 0
            and now - run.finished_at <= dt.timedelta(hours=36)
        )

    async def preview(self, guild_id: int) -> tuple[GuildConfig, Digest, EmptyReason | None]:
        """What ``/digest preview`` shows: the digest the guild would get now, and why it is
        empty when it is (``None`` when it has papers or the guild posts nothing that day)."""
        config = await self.guilds.ensure(guild_id)
        now = self.clock()
        digest = await self.build(config, now)
        reason = None
        if not digest.papers and config.empty_day == EmptyDay.MESSAGE:
            reason = empty_reason(
                digest,
                local_date(now, config.timezone),
                self.threshold(config),
                arxiv_quiet=await self.arxiv_quiet(now),
            )
        return config, digest, reason

    async def status(self, guild_id: int) -> GuildStatus:
        """What ``/digest status`` shows, with the gaps the streams found lately."""
        config = await self.guilds.ensure(guild_id)
        since = self.clock() - STREAM_GAPS_SHOWN
        gaps = [gap for c in self.consumers for gap in await c.gaps(since)]
        return await self.status_of(config, self.source_names, gaps=gaps)

    async def status_of(
        self,
        config: GuildConfig,
        source_names: Sequence[str],
        *,
        gaps: Sequence[StreamGap] = (),
    ) -> GuildStatus:
        """Everything ``/digest status`` shows, with the reasons a digest may be empty or late.

        ``gaps``: stretches of a stream that could not be replayed (the bot was down longer
        than the stream keeps), shown so that a thin digest is explained, never silent."""
        now = self.clock()
        active = config.channel_id is not None and not config.paused
        next_post = await self.next_post(config, now) if active else None
        last = await self.log.latest(config.guild_id)
        runs = await self.runs.latest_by_source()
        sources = {name: runs.get(name) for name in source_names}
        notes: list[StatusNote] = []
        if config.channel_id is None:
            notes.append(StatusNote(NoteKind.NO_CHANNEL))
        if config.paused:
            notes.append(StatusNote(NoteKind.PAUSED, detail=config.pause_reason))
        if last is not None and last.status == DigestState.FAILED and last.error:
            notes.append(StatusNote(NoteKind.LAST_FAILED, detail=last.error))
        for name, run in sources.items():
            if run is not None and run.error:
                # The kind, never the recorded error: that may quote the service's answer.
                notes.append(StatusNote(NoteKind.SOURCE_FAILED, source=name, detail=run.error_kind))
        if not sources:
            notes.append(StatusNote(NoteKind.NO_SOURCES))
        notes.extend(
            StatusNote(NoteKind.STREAM_GAP, source=gap.stream, start=gap.start, end=gap.end)
            for gap in gaps
        )
        feed = runs.get(FEED_SOURCE)
        if feed is not None:
            sources[FEED_SOURCE] = feed
            if await self.arxiv_quiet(now):
                notes.append(StatusNote(NoteKind.ARXIV_QUIET))
        if next_post is not None:
            local_next = local_date(next_post, config.timezone)
            if local_next.weekday() >= 5:
                notes.append(StatusNote(NoteKind.WEEKEND_NEXT))
            digest = await self.build(config, now)
            if not digest.papers:
                notes.append(
                    StatusNote(
                        NoteKind.BELOW_THRESHOLD,
                        threshold=self.threshold(config),
                        empty_day=EmptyDay(config.empty_day),
                        field=config.ranking == RankingMode.FIELD,
                    )
                )
        return GuildStatus(
            config=config,
            next_post=next_post,
            last=last,
            sources=sources,
            notes=tuple(notes),
            default_threshold=self.digests.ranking.threshold,
            field_rule=(
                self.digests.ranking.field_min_posters,
                self.digests.ranking.field_top_percent,
            ),
        )


@dataclass(frozen=True, slots=True)
class GuildStatus:
    """What ``/digest status`` shows."""

    config: GuildConfig
    next_post: dt.datetime | None
    last: DigestRecord | None
    sources: Mapping[str, SourceRun | None]
    notes: tuple[StatusNote, ...]
    default_threshold: float
    field_rule: tuple[int, float] = (2, 10.0)  # field mode: min posters, top percent
