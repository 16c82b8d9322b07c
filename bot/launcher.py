"""Running the Discord bot: services wiring, ``hotpapers run``, ``sync`` and ``invite``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import discord
import yarl
from aiolimiter import AsyncLimiter

from bot.core.errors import ConfigError, UserFacingError
from bot.core.models import Digest, RankedPaper, Window
from bot.core.ranking import Observation, account_of, score_papers
from bot.core.schedule import local_date
from bot.runtime import Runtime, open_runtime
from bot.scheduling import Scheduler, digest_job_id
from bot.services.delivery import DeliveryService, GuildStatus, empty_reason
from bot.services.guilds import GuildService
from bot.services.owner import is_dead, this_process
from bot.services.papers import PaperService
from bot.services.stream import StreamConsumer
from bot.settings import Settings
from bot.storage.guilds import GuildConfig
from bot.ui.publisher import DiscordPublisher

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://discord.com/api/v10"
# A crashed stream consumer restarts after 2 s, doubling up to 5 minutes while it keeps failing.
STREAM_RESTART_SECONDS = 2.0
STREAM_RESTART_MAX_SECONDS = 300.0
# /digest status shows the stream gaps found this recently.
STREAM_GAPS_SHOWN = dt.timedelta(days=7)


def invite_permissions() -> discord.Permissions:
    """The least the bot needs: see and post in the digest channel, embed, and start a thread
    from its header message (which needs the channel's message history)."""
    return discord.Permissions(
        view_channel=True,
        send_messages=True,
        embed_links=True,
        read_message_history=True,
        create_public_threads=True,
        send_messages_in_threads=True,
    )


def invite_url(application_id: int) -> str:
    return discord.utils.oauth_url(
        application_id, permissions=invite_permissions(), scopes=("bot", "applications.commands")
    )


@contextlib.contextmanager
def discord_endpoints(settings: Settings) -> Iterator[None]:
    """Point discord.py at ``discord.api_base`` / ``discord.gateway_url`` (proxies, fakes)."""
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    Route.BASE = settings.discord.api_base.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord.gateway_url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


@dataclass
class Services:
    """What the cogs and the scheduler use: the runtime plus the Discord-facing use cases."""

    rt: Runtime
    guilds: GuildService
    delivery: DeliveryService
    scheduler: Scheduler | None = None
    client: discord.Client | None = None
    started_at: dt.datetime | None = None
    _tasks: set[asyncio.Task[object]] = field(default_factory=set)
    # Guilds whose digest this process is posting now: a sweep or a second job skips them.
    _delivering: set[int] = field(default_factory=set)
    # Digests under way at once (``discord.max_concurrent_digests``): a memory bound only.
    _delivery_slots: asyncio.Semaphore | None = None
    # The one request budget of every send (``discord.requests_per_second``).
    budget: AsyncLimiter | None = None
    _ingesting: asyncio.Task[None] | None = None
    _recovered: bool = False
    _streams: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.started_at is None:
            self.started_at = self.rt.clock()
        discord_settings = self.rt.settings.discord
        if self._delivery_slots is None:
            self._delivery_slots = asyncio.Semaphore(discord_settings.max_concurrent_digests)
        if self.budget is None:
            # A bucket of one second's worth: bursts never exceed the per-second pace.
            self.budget = AsyncLimiter(discord_settings.requests_per_second, 1.0)

    def publisher(self) -> DiscordPublisher:
        assert self.client is not None
        return DiscordPublisher(self.client, self.budget)

    @classmethod
    def build(cls, rt: Runtime) -> Services:
        guilds = GuildService(rt.guilds, rt.clock)
        delivery = DeliveryService(
            guilds=rt.guilds,
            digests=rt.digests,
            log_=rt.digest_log,
            runs=rt.runs,
            settings=rt.settings.digest,
            clock=rt.clock,
            owner=str(this_process()),
        )
        return cls(rt=rt, guilds=guilds, delivery=delivery)

    @property
    def settings(self) -> Settings:
        return self.rt.settings

    @property
    def papers(self) -> PaperService:
        return self.rt.paper_lookup

    # --- queries used by the cogs -----------------------------------------------------------

    async def hot(self, categories: list[str], days: int) -> Digest:
        now = self.rt.clock()
        return await self.rt.digests.build(
            Window(now - dt.timedelta(days=days), now),
            categories=categories,
            threshold=0,
            top_n=10,
        )

    async def paper_score(self, arxiv_id: str, days: int = 7) -> RankedPaper | None:
        """One paper's score over the last ``days``, from its own mentions only (a paper's
        score doesn't depend on the others: no need to rank the whole week for it)."""
        now = self.rt.clock()
        window = Window(now - dt.timedelta(days=days), now)
        stored = await self.rt.mentions.for_paper(arxiv_id, window)
        if not stored:
            return None
        # Feed bots are told by how many papers an account links in a day: load the other
        # posts of the accounts that rank under feed limits (a few per account and day).
        rules = self.rt.digests.rules()
        for source in rules.feed_limits:
            accounts = {
                f"at://{account_of(s.mention)}/" for s in stored if s.mention.source == source
            }
            if accounts:
                stored = stored + await self.rt.mentions.by_accounts(source, accounts, window)
        papers = await self.rt.papers.get_many([arxiv_id])
        ranked = score_papers(
            (Observation(s.mention, s.fetched_at) for s in stored),
            papers,
            window=window,
            rules=rules,
        )
        return next((r for r in ranked if r.paper.arxiv_id == arxiv_id), None)

    async def preview(self, guild_id: int) -> tuple[GuildConfig, Digest, str | None]:
        config = await self.guilds.config(guild_id)
        now = self.rt.clock()
        digest = await self.delivery.build(config, now)
        text = None
        if not digest.papers and config.empty_day == "message":
            threshold = (
                config.threshold
                if config.threshold is not None
                else self.settings.ranking.threshold
            )
            text = empty_reason(
                digest,
                local_date(now, config.timezone),
                threshold,
                arxiv_quiet=await self.delivery.arxiv_quiet(now),
            )
        return config, digest, text

    async def status(self, guild_id: int) -> GuildStatus:
        config = await self.guilds.config(guild_id)
        since = self.rt.clock() - STREAM_GAPS_SHOWN
        gaps = [gap for c in self.rt.consumers for gap in await c.gaps(since)]
        return await self.delivery.status(config, [s.name for s in self.rt.sources], gaps=gaps)

    # --- scheduling -------------------------------------------------------------------------

    def start_scheduler(self, client: discord.Client) -> None:
        self.client = client
        self.scheduler = Scheduler(
            settings=self.settings.scheduler,
            digest_settings=self.settings.digest,
            ingest=self.ingest,
            deliver=self.deliver_guild,
            sweep=self.sweep,
        )
        task = asyncio.get_running_loop().create_task(self._start_jobs())
        self._track(task)
        self.start_streams()

    # --- streams ----------------------------------------------------------------------------

    def start_streams(self) -> None:
        """Follow every streaming source in the background, each under a supervisor."""
        loop = asyncio.get_running_loop()
        for consumer in self.rt.consumers:
            task = loop.create_task(self._supervise(consumer), name=f"stream:{consumer.name}")
            self._streams.append(task)

    async def _supervise(self, consumer: StreamConsumer) -> None:
        """Run a consumer for good: a crash is logged and the consumer restarted (from its
        saved cursor) after a growing pause; only cancellation (shutdown) ends it."""
        pause = STREAM_RESTART_SECONDS
        while True:
            started = time.monotonic()
            try:
                await consumer.run()
                log.warning("%s stream ended: restarting", consumer.name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s stream crashed: restarting in %.0f s", consumer.name, pause)
            if time.monotonic() - started > STREAM_RESTART_MAX_SECONDS:
                pause = STREAM_RESTART_SECONDS  # it ran a good while: not a crash loop
            await asyncio.sleep(pause)
            pause = min(pause * 2, STREAM_RESTART_MAX_SECONDS)

    async def stop_streams(self, seconds: float = 10.0) -> None:
        """Cancel the consumers; each stores what it read and saves its cursor on the way out."""
        tasks, self._streams = self._streams, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=seconds)

    async def _start_jobs(self) -> None:
        assert self.scheduler is not None
        try:
            self.scheduler.start(await self.rt.guilds.active())
        except Exception:
            # A background task: nobody awaits it, so say it here (no digest will be posted).
            log.exception("could not start the scheduler: no digest or ingestion will run")

    def _track(self, task: asyncio.Task[object]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reschedule(self, guild_id: int) -> None:
        if self.scheduler is None or not self.scheduler.running:
            return
        config = await self.guilds.config(guild_id)
        self.scheduler.schedule_guild(config)

    def next_run(self, guild_id: int) -> dt.datetime | None:
        return self.scheduler.next_run(digest_job_id(guild_id)) if self.scheduler else None

    async def ingest(self) -> None:
        """The ingestion job: the last ``ingest_lookback_hours``; never raises. Tracked, so
        shutdown stops it before the database and the HTTP session close under it."""
        if self._ingesting is not None and not self._ingesting.done():
            log.info("ingestion still running: this run is skipped")
            return
        task = asyncio.get_running_loop().create_task(self._ingest(), name="ingest")
        self._ingesting = task
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            stopping = self.scheduler is not None and self.scheduler.stopping
            if not task.cancelled() and not stopping:
                raise  # the job itself is cancelled, not the ingestion: not ours to hide
            # Shutdown: stop_ingestion() ends the ingestion (and logs so); the job ends cleanly.

    async def stop_ingestion(self, seconds: float = 5.0) -> None:
        """Cancel an ingestion in progress and wait for it (it is safe to redo any time)."""
        task = self._ingesting
        if task is None or task.done():
            return
        task.cancel()
        await asyncio.wait([task], timeout=seconds)

    async def _ingest(self) -> None:
        try:
            await self._ingest_once()
        except asyncio.CancelledError:
            log.info("ingestion stopped for shutdown")
            raise
        except Exception:
            log.exception("ingestion failed")

    async def _ingest_once(self) -> None:
        now = self.rt.clock()
        window = Window(
            now - dt.timedelta(hours=self.settings.scheduler.ingest_lookback_hours), now
        )
        categories = set(self.settings.arxiv.categories)
        for config in await self.rt.guilds.active():
            categories.update(config.categories)
        try:
            report = await self.rt.ingest.run(window, categories=sorted(categories))
        except Exception:
            log.exception("ingestion failed")
            return
        log.info(
            "ingestion: %s",
            ", ".join(
                f"{s.source} {s.mentions}" + ("" if s.ok else " FAILED") for s in report.sources
            ),
        )

    async def deliver_guild(self, guild_id: int) -> None:
        """The daily job of one guild; never raises. Tracked, so shutdown lets it finish.

        One at a time per guild in this process: the record's claim already stops a second
        sender, but not once it has gone stale during a long wait (a 429), so a sweep or a
        late job never starts a second send of a digest this process is still posting.
        """
        if guild_id in self._delivering:
            log.info("guild %s: digest already being posted, not started again", guild_id)
            return
        self._delivering.add(guild_id)
        task = asyncio.get_running_loop().create_task(self._deliver_guild(guild_id))
        self._track(task)
        task.add_done_callback(lambda _task: self._delivering.discard(guild_id))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if self.scheduler is None or not self.scheduler.stopping or task.cancelled():
                raise
            # Shutdown cancels the job waiting here, not the send (drain waits for it, and it
            # records every message): the job ends quietly, not as an ERROR with a traceback.
            log.info("guild %s: shutting down, the digest being posted finishes first", guild_id)

    async def _deliver_guild(self, guild_id: int) -> None:
        assert self._delivery_slots is not None
        async with self._delivery_slots:
            await self._deliver_guild_now(guild_id)

    async def _deliver_guild_now(self, guild_id: int) -> None:
        if self.client is None:
            return
        try:
            config = await self.rt.guilds.get(guild_id)
            if config is None:
                return
            now = self.rt.clock()
            slot = self.delivery.last_slot(config, now)
            result = await self.delivery.deliver(
                config, local_date(slot, config.timezone), self.publisher(), now
            )
            log.info(
                "guild %s digest %s: %s %s", guild_id, result.day, result.status, result.detail
            )
            if result.status == "failed":
                await self.reschedule(guild_id)  # a 404 pauses the guild: drop its job
        except Exception:
            log.exception("digest job of guild %s crashed", guild_id)

    async def sweep(self) -> None:
        """Post digests missed while the bot was down or that failed, within the grace period.

        Never raises: at start it runs as a bare task, where an exception would only surface
        as "Task exception was never retrieved"; the next sweep (every 10 minutes) tries again.
        """
        try:
            if not self._recovered:
                await self.recover()
            if self.client is not None:
                await self.delivery.settle_exhausted(self.publisher())
            due = await self.delivery.due()
            # Side by side (a few at a time, see deliver_guild): one guild waiting out a long
            # rate limit must not hold the others back.
            await asyncio.gather(*(self.deliver_guild(config.guild_id) for config, _day in due))
        except asyncio.CancelledError:
            if self.scheduler is None or not self.scheduler.stopping:
                raise
            log.info("shutting down: the sweep stops, digests being posted finish first")
        except Exception:
            log.exception("digest sweep failed: the next one tries again")

    async def recover(self) -> None:
        """Make digests a dead process left half-sent resumable now, not after they go stale.

        A digest still ``sending`` with no sign of life since before this process started,
        and none for two minutes (a live sender beats every minute), belongs to a process that
        died. (Ours all began at or after ``started_at``, so a reconnect or a second sweep can
        never release them; the old process of an overlapping deploy keeps beating, and keeps
        its digest.)
        """
        assert self.started_at is not None
        # A claim of a process of this host that is gone is resumed at once; any other is
        # released once quiet since before this start (or when it goes stale).
        await self.rt.digest_log.take_over_dead(is_dead)
        await self.rt.digest_log.release_abandoned(self.started_at, now=self.rt.clock())
        self._recovered = True

    async def catch_up(self, client: discord.Client) -> None:
        self.client = client
        task = asyncio.get_running_loop().create_task(self.sweep())
        self._track(task)

    def stop_scheduler(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()

    async def drain(self, seconds: float = 30.0) -> None:
        """Stop an ingestion in progress; let sends in flight finish (they record each message)
        before the client and the database close; cancel what still runs after ``seconds``."""
        await self.stop_streams()
        await self.stop_ingestion()
        current = asyncio.current_task()
        waiting = [t for t in self._tasks if t is not current and not t.done()]
        if not waiting:
            return
        log.info("waiting for %d digest tasks to finish", len(waiting))
        _done, pending = await asyncio.wait(waiting, timeout=seconds)
        for task in pending:
            task.cancel()
        if pending:
            log.warning(
                "%d digest tasks did not finish in %.0f s: cancelled", len(pending), seconds
            )
            await asyncio.wait(pending, timeout=1.0)


def _token(settings: Settings) -> str:
    token = settings.secrets.discord_token
    if token is None:
        raise ConfigError(
            "DISCORD_TOKEN is not set: create a bot token in the Discord developer portal "
            "(see README, 'For server owners')"
        )
    return token.get_secret_value()


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.client import HotPapersBot

    token = _token(settings)
    with discord_endpoints(settings):
        async with open_runtime(settings) as rt:
            services = Services.build(rt)
            bot = HotPapersBot(services)
            loop = asyncio.get_running_loop()
            stopping = asyncio.Event()

            def stop() -> None:
                if not stopping.is_set():
                    log.info("shutting down")
                    stopping.set()
                    services._track(loop.create_task(bot.close()))

            for sig in (signal.SIGINT, signal.SIGTERM):
                # Not on Windows' loop (NotImplementedError), nor outside the main thread
                # (RuntimeError): there the host stops the bot, e.g. by cancelling it.
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop)
            try:
                async with bot:
                    await bot.start(token)
            except discord.LoginFailure:
                raise ConfigError(
                    "Discord rejected DISCORD_TOKEN (401): check the bot token"
                ) from None
            except discord.PrivilegedIntentsRequired:
                raise ConfigError(
                    "Discord refused the intents; hotpapers needs no privileged intent"
                ) from None
            finally:
                services.stop_scheduler()
                await services.drain()
    return 0


async def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    from bot.client import HotPapersBot

    token = _token(settings)
    with discord_endpoints(settings):
        async with open_runtime(settings) as rt:
            bot = HotPapersBot(Services.build(rt), schedule=False)
            try:
                async with bot:
                    await bot.login(token)
                    if args.guild:
                        guild = discord.Object(id=args.guild)
                        bot.tree.copy_global_to(guild=guild)
                        synced = await bot.tree.sync(guild=guild)
                        where = f"guild {args.guild}"
                    else:
                        synced = await bot.tree.sync()
                        where = "every guild (global commands may take up to an hour to appear)"
            except discord.LoginFailure:
                raise ConfigError(
                    "Discord rejected DISCORD_TOKEN (401): check the bot token"
                ) from None
            except discord.Forbidden:
                if args.guild:
                    raise UserFacingError(
                        f"Discord refused the sync to guild {args.guild}: is the bot in that "
                        "server with the applications.commands scope?"
                    ) from None
                raise UserFacingError(
                    "Discord refused the global sync (403): check that the token belongs to "
                    "this application's bot"
                ) from None
    names = ", ".join(sorted(f"/{c.name}" for c in synced))
    print(f"synced {len(synced)} commands to {where}: {names}")
    return 0


async def cmd_invite(settings: Settings, args: argparse.Namespace) -> int:
    app_id = settings.discord.application_id
    if app_id is None:
        if settings.secrets.discord_token is None:
            raise ConfigError(
                "set discord.application_id (or DISCORD_TOKEN, to look it up) "
                "to build the invite URL"
            )
        with discord_endpoints(settings):
            client = discord.Client(intents=discord.Intents.none())
            try:
                async with client:
                    await client.login(_token(settings))
                    app = await client.application_info()
                    app_id = app.id
            except discord.LoginFailure:
                raise ConfigError(
                    "Discord rejected DISCORD_TOKEN (401): check the bot token"
                ) from None
    print(invite_url(app_id))
    return 0
