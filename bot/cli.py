"""The ``hotpapers`` command line: fetch, digest, paper, db, demo, run, sync, invite."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import math
import signal
import sys
import textwrap
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import __version__
from bot.core.errors import (
    ConfigError,
    HotPapersError,
    InvalidDateError,
    SourceError,
    StorageError,
    UserFacingError,
)
from bot.core.models import HotSort, Paper, RankedPaper, RankingMode, Window
from bot.core.taxonomy import validate_category
from bot.settings import Settings, load_settings

if TYPE_CHECKING:
    import discord

    from bot.storage.copy import CopyReport

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


# --- argument parsing -------------------------------------------------------------------------


# arXiv opened in August 1991; nothing before or far after can have a digest.
EARLIEST = dt.datetime(1991, 8, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2999, 12, 31, tzinfo=dt.UTC)


def _in_era(moment: dt.datetime, text: str) -> dt.datetime:
    if not EARLIEST <= moment <= LATEST:
        raise InvalidDateError(f"`{text}` is outside arXiv's era (1991-08-01 onwards)")
    return moment


def parse_day(text: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidDateError(
            f"`{text}` is not a date; expected YYYY-MM-DD, e.g. 2020-12-22"
        ) from None
    _in_era(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC), text)
    return day


def parse_moment(text: str) -> dt.datetime:
    """An ISO date or date-time; naive values are UTC."""
    value = text.strip()
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidDateError(
            f"`{text}` is not an ISO date or time; expected e.g. 2020-12-22 or 2020-12-22T06:00Z"
        ) from None
    return _in_era(moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC), text)


def parse_categories(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    return tuple(dict.fromkeys(validate_category(c) for c in text.split(",") if c.strip()))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _shard_ids(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(
            f"`{text}` is not a comma-separated list of shard ids, e.g. 0,1"
        )
    return [int(part) for part in parts]


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"`{text}` is not a finite number of 0 or more")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hotpapers",
        description="The day's hottest arXiv papers, ranked by social attention.",
    )
    parser.add_argument("--version", action="version", version=f"hotpapers {__version__}")
    parser.add_argument("--config", metavar="PATH", help="TOML settings file")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    fetch = sub.add_parser("fetch", help="collect mentions, resolve papers on arXiv, store them")
    fetch.add_argument("--since", help="window start (ISO date/time, UTC if no offset)")
    fetch.add_argument("--until", help="window end (default: now)")
    fetch.add_argument(
        "--categories",
        help="also read today's arXiv announcements of these categories "
        "(default: arxiv.categories), e.g. cs.LG,cs.CV",
    )

    digest = sub.add_parser("digest", help="print the Hot Papers post of a UTC day")
    digest.add_argument("--date", required=True, help="the UTC day, YYYY-MM-DD")
    digest.add_argument("--categories", help="comma-separated, e.g. cs.LG,cs.CV or an archive: cs")
    digest.add_argument("--top", type=_positive_int, help="at most N papers")
    digest.add_argument("--threshold", type=_non_negative_float, help="minimum score")
    digest.add_argument("--format", choices=("markdown", "json"), default="markdown")
    digest.add_argument("--fetch", action="store_true", help="fetch that day first")
    digest.add_argument(
        "--ranking",
        choices=[m.value for m in RankingMode],
        default=RankingMode.ABSOLUTE.value,
        help="absolute: the score threshold (default); field: each category's hottest by heat",
    )
    digest.add_argument(
        "--sort",
        choices=[m.value for m in HotSort],
        default=HotSort.SCORE.value,
        help="score (default), or rising: the last 24 hours' gain, gently decayed by age",
    )

    paper = sub.add_parser("paper", help="show a paper by arXiv id, URL or title words")
    paper.add_argument("query", nargs="+")
    paper.add_argument(
        "--chart", metavar="FILE.png", help="write the paper's score over time as a PNG"
    )

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", parser_class=_Parser)
    db_sub.required = True
    db_sub.add_parser("upgrade", help="apply migrations up to the newest schema")
    db_copy = db_sub.add_parser(
        "copy",
        help="copy every table to another database (SQLite <-> PostgreSQL), and verify it",
        description="Copy a deployment's data into an empty database (or one --replace "
        "empties), in one transaction, and verify every table's row count and checksum. Stop "
        "the bot first: a SQLite side is locked as `hotpapers run` locks it.",
    )
    db_copy.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="URL",
        help="the database to copy, at the current schema, e.g. sqlite:////var/lib/hp.db",
    )
    db_copy.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="URL",
        help="the database to fill (migrated first), e.g. postgresql://hp@db.internal/hp",
    )
    db_copy.add_argument(
        "--replace",
        action="store_true",
        help="delete the target's data first (kept if the copy fails)",
    )

    demo = sub.add_parser("demo", help="the real pipeline, offline, on the reference day's data")
    demo.add_argument("--format", choices=("markdown", "json"), default="markdown")

    run = sub.add_parser("run", help="start the Discord bot (token from DISCORD_TOKEN)")
    run.add_argument(
        "--shard-count",
        type=_positive_int,
        metavar="N",
        help="the bot's shards in all (default: discord.shard_count; unset: unsharded)",
    )
    run.add_argument(
        "--shard-ids",
        type=_shard_ids,
        metavar="IDS",
        help="connect only these shards, e.g. 0,1, and post only their servers' digests "
        "(default: discord.shard_ids; unset: all)",
    )
    sync = sub.add_parser("sync", help="publish the slash commands to Discord")
    sync.add_argument("--guild", type=int, help="sync to one guild only (instant)")
    sub.add_parser("invite", help="print the URL that adds the bot to a server")
    return parser


# --- commands -------------------------------------------------------------------------------


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def format_paper(paper: Paper) -> str:
    lines = [
        f"{paper.title}",
        f"  {paper.abs_url}  (pdf: {paper.pdf_url})",
        f"  {', '.join(paper.authors)}",
        f"  {' | '.join(paper.categories)} — published {paper.published:%Y-%m-%d}"
        + (f", updated {paper.updated:%Y-%m-%d}" if paper.updated != paper.published else ""),
    ]
    if paper.journal_ref:
        lines.append(f"  {paper.journal_ref}")
    if paper.doi:
        lines.append(f"  doi: {paper.doi}")
    lines.append("")
    lines.extend(
        textwrap.wrap(paper.abstract, width=100, initial_indent="  ", subsequent_indent="  ")
    )
    return "\n".join(lines)


def print_report(report: Any) -> None:
    _say(f"window {report.window.start.isoformat()} → {report.window.end.isoformat()}")
    _say(f"{'source':<12} {'mentions':>8} {'papers':>7} {'requests':>8}  status")
    for s in report.sources:
        status = "ok" if s.ok else f"FAILED: {s.error}"
        _say(f"{s.source:<12} {s.mentions:>8} {s.papers:>7} {s.requests:>8}  {status}")
        for note in s.notes:
            _say(f"{'':<12} {note}")
    arxiv = "ok" if report.arxiv_error is None else f"FAILED: {report.arxiv_error}"
    _say(f"{'arxiv':<12} {'':>8} {report.resolved:>7} {'':>8}  {arxiv}")
    if report.feed is not None:
        _say(f"{'arxiv feed':<12} {report.feed.describe()}")
    if report.missing:
        _say(f"unknown to arXiv: {', '.join(report.missing)}")
    if not report.sources:
        _say("no popularity source is enabled (see README: Sources)")


async def cmd_fetch(settings: Settings, args: argparse.Namespace) -> int:
    from bot.runtime import open_runtime, utc_now

    until = parse_moment(args.until) if args.until else utc_now()
    since = (
        parse_moment(args.since)
        if args.since
        else until - dt.timedelta(hours=settings.scheduler.ingest_lookback_hours)
    )
    if since >= until:
        raise InvalidDateError(
            f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})"
        )
    categories = parse_categories(args.categories) or tuple(settings.arxiv.categories)
    async with open_runtime(settings) as rt:
        report = await rt.ingest.run(
            Window(since, until), progress=_say, categories=categories, replay=True
        )
    print_report(report)
    collected = any(s.ok for s in report.sources)
    return EXIT_OK if collected or not report.sources else EXIT_FAILURE


async def cmd_digest(settings: Settings, args: argparse.Namespace) -> int:
    from bot.render.json import render_json
    from bot.render.markdown import render_markdown
    from bot.runtime import open_runtime

    day = parse_day(args.date)
    categories = parse_categories(args.categories)
    async with open_runtime(settings) as rt:
        if args.fetch:
            report = await rt.ingest.run(Window.for_day(day), progress=_say, replay=True)
            print_report(report)
        digest = await rt.digests.for_day(
            day,
            categories=categories,
            threshold=args.threshold,
            top_n=args.top,
            ranking=RankingMode(args.ranking),
            sort=HotSort(args.sort),
            heat=args.format == "json",
        )
    for name, error in digest.failed_sources.items():
        _say(f"warning: the last {name} fetch failed ({error}); the ranking may be incomplete")
    if not digest.papers:
        if digest.ranking is RankingMode.FIELD:
            min_posters, top_percent = (
                settings.ranking.field_min_posters,
                settings.ranking.field_top_percent,
            )
            _say(
                f"no paper was in the top {top_percent:g}% of its field with {min_posters}+ "
                f"people posting it on {day.isoformat()}"
            )
        else:
            _say(f"no paper scored {digest.threshold:g} or more on {day.isoformat()}")
    render = render_json if args.format == "json" else render_markdown
    sys.stdout.write(render(digest))
    return EXIT_OK


async def cmd_paper(settings: Settings, args: argparse.Namespace) -> int:
    from bot.runtime import open_runtime
    from bot.services.papers import check_query

    query = check_query(" ".join(args.query))  # a bad id is reported before anything is opened
    chart = _chart_path(args.chart) if args.chart else None
    async with open_runtime(settings) as rt:
        result = await rt.paper_lookup.lookup(query)
        report = await rt.digests.paper_report(result.papers[0].arxiv_id)
        now = rt.clock()
    origin = "stored" if result.origin == "stored" else "fetched from arXiv"
    _say(f"{len(result.papers)} paper(s), {origin}")
    best, *others = result.papers
    print(format_paper(best) + "\n\n" + format_attention(report.ranked))
    if others:
        print("\n\n" + "\n\n".join(format_paper(p) for p in others))
    if chart is not None:
        from bot.render.chart import render_chart
        from bot.sources.registry import source_name

        png = await asyncio.to_thread(
            render_chart,
            report.series,
            title=best.title,
            labels={key: source_name(key) for key in report.series},
            now=now,
        )
        try:
            chart.write_bytes(png)
        except OSError as exc:
            raise UserFacingError(f"cannot write {chart}: {exc.strerror or exc}") from None
        empty = " (nobody posted it in the last 7 days: the chart says so)"
        _say(f"chart written to {chart}" + ("" if report.series else empty))
    return EXIT_OK


def _chart_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() != ".png":
        raise UserFacingError(
            f"--chart writes a PNG: give a file name ending in .png, not {text!r}"
        )
    if not path.parent.is_dir():
        raise UserFacingError(f"--chart: the folder {str(path.parent)!r} does not exist")
    return path


def format_attention(ranked: RankedPaper | None) -> str:
    """The paper's attention over the last 7 days, as /paper says it, in plain text."""
    if ranked is None:
        return "  Nobody has posted this paper in the last 7 days."
    from bot.sources.registry import metrics_text, source_name

    lines = [f"  Score {ranked.score:,.0f} over the last 7 days"]
    lines += [
        f"    {source_name(source)}: {metrics_text(source, metrics)}"
        for source, metrics in sorted(ranked.by_source.items())
    ]
    if ranked.heat is not None:
        cohort = ranked.heat.cohort
        top = max(1, math.ceil(100 - ranked.heat.percentile - 1e-9))
        lines.append(
            f"  Top {top}% of {cohort.category} on {cohort.day.isoformat()} "
            f"({cohort.size} paper{'s' if cohort.size != 1 else ''})"
        )
    if ranked.gain is not None:
        from bot.core.heat import is_rising

        state = "rising" if is_rising(ranked) else "not rising"
        lines.append(f"  {state}: +{ranked.gain:,.0f} in the last 24 h")
    return "\n".join(lines)


async def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    return await DB_COMMANDS[args.db_command](settings, args)


async def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from bot.storage.engine import open as open_database

    db = await open_database(settings.database.url, migrate=False)
    try:
        before = await db.current_revision()
        await db.upgrade()
        revision = await db.current_revision()
    finally:
        await db.close()
    if before == revision:
        print(f"database already at revision {revision}")
    else:
        print(f"database upgraded from revision {before or '(empty)'} to {revision}")
    return EXIT_OK


async def cmd_db_copy(settings: Settings, args: argparse.Namespace) -> int:
    from bot.storage.copy import copy_database

    report = await copy_database(args.source, args.target, replace=args.replace, progress=_say)
    print(format_copy(report))
    problem = report.first_problem()
    if problem is not None:
        raise StorageError(f"{problem}; the copy was rolled back: the target is as it was")
    return EXIT_OK


def format_copy(report: CopyReport) -> str:
    """The table of rows per table on each side, then what was copied where, how fast."""
    width = max([len("table"), *(len(t.name) for t in report.tables)])
    lines = [f"{'table':<{width}}  {'source':>11}  {'target':>11}  check"]
    for t in report.tables:
        state = "ok" if t.ok else "DIFFERS"
        lines.append(f"{t.name:<{width}}  {t.source_rows:>11,}  {t.target_rows:>11,}  {state}")
    target_rows = sum(t.target_rows for t in report.tables)
    lines.append(f"{'total':<{width}}  {report.rows:>11,}  {target_rows:>11,}")
    if not report.ok:
        return "\n".join(lines)  # rolled back: the error line says which table differs
    lines.append(
        f"copied {report.rows:,} rows in {len(report.tables)} tables from {report.source} "
        f"to {report.target} in {report.seconds:.1f} s ({report.rows_per_second:,.0f} rows/s)"
        + (", replacing the target's data" if report.replaced else "")
    )
    lines += [
        f"{t.name}: {t.nul_dropped:,} row(s) had NUL characters in their text, which "
        "PostgreSQL cannot store: copied without them"
        for t in report.tables
        if t.nul_dropped
    ]
    if report.source_search:
        lines.append(f"search indexes not copied: {', '.join(report.source_search)}")
    if report.target_search:
        lines.append(f"search indexes built by the target: {', '.join(report.target_search)}")
    if report.skipped:
        lines.append(f"not copied (not hotpapers tables): {', '.join(report.skipped)}")
    return "\n".join(lines)


DB_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "upgrade": cmd_db_upgrade,
    "copy": cmd_db_copy,
}


async def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from bot.fakes.demo import run_demo

    sys.stdout.write(await run_demo(settings, output=args.format, progress=_say))
    return EXIT_OK


# --- the Discord bot: run, sync, invite ------------------------------------------------------
# The composition root of the bot: discord.py is imported here only when one of these runs, so
# that the other commands start without it.


def invite_permissions() -> discord.Permissions:
    """The least the bot needs: see and post in the digest channel, embed, and start a thread
    from its header message (which needs the channel's message history)."""
    import discord

    return discord.Permissions(
        view_channel=True,
        send_messages=True,
        embed_links=True,
        read_message_history=True,
        create_public_threads=True,
        send_messages_in_threads=True,
    )


def invite_url(application_id: int) -> str:
    import discord

    return discord.utils.oauth_url(
        application_id, permissions=invite_permissions(), scopes=("bot", "applications.commands")
    )


@contextlib.contextmanager
def discord_endpoints(settings: Settings) -> Iterator[None]:
    """Point discord.py at ``discord.api_base`` / ``discord.gateway_url`` (proxies, fakes)."""
    import yarl
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    Route.BASE = settings.discord.api_base.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord.gateway_url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


def _token(settings: Settings) -> str:
    token = settings.secrets.discord_token
    if token is None:
        raise ConfigError(
            "DISCORD_TOKEN is not set: create a bot token in the Discord developer portal "
            "(see README, 'For server owners')"
        )
    return token.get_secret_value()


def _warm_up_charts() -> None:
    try:
        from bot.render.chart import warm_up

        warm_up()
    except Exception:  # a chart is a bonus: /paper answers without it
        log.warning("charts could not be prepared", exc_info=True)


def with_shards(settings: Settings, count: int | None, ids: list[int] | None) -> Settings:
    """``settings`` with ``run --shard-count/--shard-ids`` over ``discord.shard_count/ids``
    (each given option replaces its setting); a bad pair is a ConfigError naming the options."""
    from bot.core.shards import check_shards

    if count is None and ids is None:
        return settings
    discord_settings = settings.discord
    new_count = count if count is not None else discord_settings.shard_count
    new_ids = ids if ids is not None else discord_settings.shard_ids
    try:
        checked = check_shards(new_count, new_ids)
    except ValueError as exc:
        given = []
        if count is not None:
            given.append(f"--shard-count {count}")
        if ids is not None:
            given.append(f"--shard-ids {','.join(map(str, ids))}")
        raise ConfigError(f"{' '.join(given)}: {exc}") from None
    update = {"shard_count": new_count, "shard_ids": None if checked is None else list(checked)}
    return settings.model_copy(update={"discord": discord_settings.model_copy(update=update)})


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.core.shards import Shards
    from bot.storage.lock import run_lock

    settings = with_shards(settings, args.shard_count, args.shard_ids)
    token = _token(settings)
    # SQLite serves one bot process: a second `run` on the same file is refused here, before
    # it migrates, connects or schedules anything (PostgreSQL takes no lock).
    with run_lock(settings.database.url) as locked:
        shards = Shards.of(settings.discord.shard_count, settings.discord.shard_ids)
        if locked is not None and not shards.every_guild:
            log.warning(
                "%s on SQLite: no other process can run the other shards on this file, so "
                "their servers get no digest and no answer; use PostgreSQL to run several "
                "(README: Scaling out)",
                shards.describe(),
            )
        return await _run_bot(settings, token)


async def _run_bot(settings: Settings, token: str) -> int:
    import discord

    from bot.client import make_bot
    from bot.runtime import open_runtime

    with discord_endpoints(settings):
        async with open_runtime(settings) as rt:
            bot = make_bot(rt)
            loop = asyncio.get_running_loop()
            stopping = asyncio.Event()
            # Kept until it ends: a task nobody references may be collected mid-close.
            closing: set[asyncio.Task[None]] = set()

            def stop() -> None:
                if not stopping.is_set():
                    log.info("shutting down")
                    stopping.set()
                    task = loop.create_task(bot.close())
                    closing.add(task)
                    task.add_done_callback(closing.discard)

            for sig in (signal.SIGINT, signal.SIGTERM):
                # Not on Windows' loop (NotImplementedError), nor outside the main thread
                # (RuntimeError): there the host stops the bot, e.g. by cancelling it.
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop)
            # matplotlib's import and fonts (about half a second), in a thread while the bot
            # connects: the first /paper chart is then as quick as the next.
            warming = loop.create_task(asyncio.to_thread(_warm_up_charts))
            closing.add(warming)
            warming.add_done_callback(closing.discard)
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
                await bot.close()  # idempotent: stops the scheduler, drains the jobs
                if closing:
                    await asyncio.wait(closing)
    return EXIT_OK


async def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    import discord

    from bot.client import HotPapersBot
    from bot.runtime import open_runtime

    token = _token(settings)
    with discord_endpoints(settings):
        async with open_runtime(settings) as rt:
            bot = HotPapersBot(rt, schedule=False)
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
    return EXIT_OK


async def cmd_invite(settings: Settings, args: argparse.Namespace) -> int:
    import discord

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
    return EXIT_OK


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "fetch": cmd_fetch,
    "digest": cmd_digest,
    "paper": cmd_paper,
    "db": cmd_db,
    "demo": cmd_demo,
    "run": cmd_run,
    "sync": cmd_sync,
    "invite": cmd_invite,
}


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic narrates every migration step at INFO; our own line says which revision we reached.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def log_level(settings: Settings, command: str) -> str:
    """``logging.level`` when it was set; otherwise INFO for the bot, WARNING for one-shot commands.

    A one-shot command reports its own progress on stderr; INFO lines from the layers below
    would repeat it, and bury the one line an error is.
    """
    if command == "run" or "level" in settings.logging.model_fields_set:
        return settings.logging.level
    return "WARNING"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hotpapers`` and ``python -m bot``; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors: argparse has printed them
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        settings = load_settings(args.config)
        configure_logging("DEBUG" if args.verbose else log_level(settings, args.command))
        return asyncio.run(COMMANDS[args.command](settings, args))
    except (UserFacingError, ConfigError) as exc:
        print(f"hotpapers: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except (SourceError, StorageError, HotPapersError) as exc:
        print(f"hotpapers: error: {exc.message}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("hotpapers: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last resort: one line, the details in the log
        # The traceback goes to the log at ERROR for `run` (a service: its log is what an
        # operator reads after a crash) and with -v. A one-shot command logs at WARNING to the
        # same stderr as its one line, so without -v it gets no traceback: the line says how.
        if args.command == "run" or args.verbose:
            log.exception("hotpapers %s crashed", args.command)
            hint = "the traceback is in the log above"
        else:
            hint = "run with -v for details"
        print(
            f"hotpapers: error: unexpected {type(exc).__name__}: {exc} ({hint})",
            file=sys.stderr,
        )
        return EXIT_FAILURE
