"""The ``hotpapers`` command line: fetch, digest, paper, db, demo, run, sync, invite, web."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
import random
import signal
import sys
import textwrap
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
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
from bot.settings import HttpSettings, Settings, load_settings

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


# The last time zone to start a day (Kiribati's Line Islands): a date after today there has
# not begun anywhere, so nobody can have posted about it yet.
LAST_ZONE = dt.timezone(dt.timedelta(hours=14))


def latest_day(now: dt.datetime | None = None) -> dt.date:
    """Today in UTC+14: the latest date that has begun somewhere on Earth."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(LAST_ZONE).date()


def parse_day(text: str, *, now: dt.datetime | None = None) -> dt.date:
    """A YYYY-MM-DD day of arXiv's era that has begun somewhere (``now``: the clock)."""
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidDateError(
            f"`{text}` is not a date; expected YYYY-MM-DD, e.g. 2020-12-22"
        ) from None
    _in_era(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC), text)
    latest = latest_day(now)
    if day > latest:
        raise InvalidDateError(
            f"`{text}` is in the future: no day after {latest.isoformat()} has begun anywhere "
            "yet (UTC+14), so nothing has been posted about it"
        )
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


# The longest window `fetch` takes without --max-days: a month covers any catch-up after an
# outage. Hugging Face is asked once per day of the window (and Hacker News splits busy
# windows), so arXiv's whole era would be some 13,000 requests and hours of rate limits.
FETCH_MAX_DAYS = 31


def check_window_length(since: dt.datetime, until: dt.datetime, max_days: int) -> None:
    """Refuse a window longer than ``max_days`` (``fetch --max-days``), saying what it costs."""
    days = math.ceil((until - since) / dt.timedelta(days=1))
    if days > max_days:
        start, end = since.astimezone(dt.UTC), until.astimezone(dt.UTC)
        raise InvalidDateError(
            f"the window {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC is {days:,} days, "
            f"longer than {max_days} (--max-days): some sources are asked once per day "
            f"(Hugging Face, when enabled: {days:,} requests here). Fetch a shorter window, or "
            f"pass --max-days {days} to fetch it all"
        )


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


# Discord ids (snowflakes) are 64-bit, and a timestamp in their top bits keeps them below 2**63.
SNOWFLAKE_LIMIT = 2**63


def _snowflake(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a Discord id (a whole number)") from None
    if not 0 < value < SNOWFLAKE_LIMIT:
        raise argparse.ArgumentTypeError(
            f"`{text}` is not a Discord id: ids are whole numbers from 1 to 2^63 - 1"
        )
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"`{text}` is not a finite number of 0 or more")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2, and ``-v`` goes anywhere."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # On every parser, so that `hotpapers fetch -v` works as `hotpapers -v fetch` does.
        # SUPPRESS: a subcommand without -v leaves one given before it in place.
        self.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
        )

    def error(self, message: str) -> Any:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hotpapers",
        description="The day's hottest arXiv papers, ranked by social attention.",
    )
    parser.add_argument("--version", action="version", version=f"hotpapers {__version__}")
    parser.add_argument("--config", metavar="PATH", help="TOML settings file")
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
    fetch.add_argument(
        "--max-days",
        type=_positive_int,
        default=FETCH_MAX_DAYS,
        metavar="N",
        help=f"refuse a window longer than N days (default: {FETCH_MAX_DAYS}); some sources "
        "are asked once per day of the window",
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
    db_backup = db_sub.add_parser(
        "backup",
        help="write a checked copy of the SQLite database, even while the bot runs",
        description="Copy the SQLite database with SQLite's online backup API (consistent while "
        "the bot writes), check the copy, and rename it into place. On PostgreSQL, print the "
        "pg_dump command to use instead.",
    )
    db_backup.add_argument(
        "path", metavar="PATH", help="the file to write, or a folder for a timestamped file"
    )
    db_backup.add_argument("--force", action="store_true", help="replace PATH if it exists")
    db_backup.add_argument(
        "--quick", action="store_true", help="check the copy with quick_check, not integrity_check"
    )
    db_restore = db_sub.add_parser(
        "restore",
        help="replace the SQLite database by a backup (the bot stopped), migrating it if older",
        description="Restore a backup made by `db backup` in the database's place, atomically, "
        "keeping the database it replaces as <name>.before-restore-<time>. Refused while the "
        "bot runs. On PostgreSQL, print the pg_restore command to use instead.",
    )
    db_restore.add_argument("path", metavar="PATH", help="the backup file")
    db_restore.add_argument(
        "--no-keep", action="store_true", help="do not keep the database being replaced"
    )
    db_restore.add_argument(
        "--quick", action="store_true", help="check the copy with quick_check, not integrity_check"
    )
    db_stats = db_sub.add_parser(
        "stats", help="rows and size per table, and how fast the database grows per day"
    )
    db_stats.add_argument("--json", action="store_true", help="machine-readable output")

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
    sync.add_argument(
        "--guild", type=_snowflake, metavar="ID", help="sync to one guild only (instant)"
    )
    sub.add_parser("invite", help="print the URL that adds the bot to a server")
    sub.add_parser(
        "web",
        help="serve the health checks, metrics and public archive alone (no Discord token)",
        description="The web server on web.host:web.port without the bot: /healthz, /readyz "
        "(the database and ingestion), /metrics and the public archive, from the database. "
        "`hotpapers run` serves the same itself when web.enabled is set.",
    )
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
    check_window_length(since, until, args.max_days)
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
    reported: set[str] = set()  # the sources whose failure the fetch summary showed
    async with open_runtime(settings) as rt:
        if args.fetch:
            report = await rt.ingest.run(Window.for_day(day), progress=_say, replay=True)
            print_report(report)
            failed = [s.source for s in report.sources if not s.ok]
            if report.sources and len(failed) == len(report.sources):
                # Nothing was collected: an empty post now would be published by a cron job.
                raise HotPapersError(
                    f"every enabled source failed ({', '.join(failed)}: see above), so no post "
                    f"for {day.isoformat()} is printed; try again later"
                )
            reported.update(failed)
        digest = await rt.digests.for_day(
            day,
            categories=categories,
            threshold=args.threshold,
            top_n=args.top,
            ranking=RankingMode(args.ranking),
            sort=HotSort(args.sort),
            heat=args.format == "json",
        )
    if reported:
        # The summary above gave each failure's reason: name the sources, once.
        _say(f"warning: {', '.join(sorted(reported))} failed; the ranking may be incomplete")
    for name, error in digest.failed_sources.items():
        if name not in reported:
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


async def cmd_db_backup(settings: Settings, args: argparse.Namespace) -> int:
    from bot.storage.backup import backup_sqlite

    report = await asyncio.to_thread(
        backup_sqlite,
        settings.database.url,
        args.path,
        force=args.force,
        quick=args.quick,
        progress=_say,
    )
    print(report.describe())
    return EXIT_OK


async def cmd_db_restore(settings: Settings, args: argparse.Namespace) -> int:
    from bot.storage.backup import restore_sqlite

    report = await restore_sqlite(
        settings.database.url, args.path, keep=not args.no_keep, quick=args.quick, progress=_say
    )
    print(report.describe())
    return EXIT_OK


async def cmd_db_stats(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from bot.storage.stats import database_stats

    stats = await database_stats(settings.database.url)
    print(json.dumps(stats.as_json(), indent=2) if args.json else stats.describe())
    return EXIT_OK


DB_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "upgrade": cmd_db_upgrade,
    "copy": cmd_db_copy,
    "backup": cmd_db_backup,
    "restore": cmd_db_restore,
    "stats": cmd_db_stats,
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


# Discord out of reach: `run` tries again after a doubling, jittered wait, never sooner than
# this (the loop has no end, so it must never spin) and never later than http.backoff_max_seconds.
RECONNECT_FLOOR_SECONDS = 1.0


def reconnect_delay(
    failures: int, http: HttpSettings, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after ``failures`` failed attempts to reach Discord: doubling from
    ``http.backoff_initial_seconds`` (at least 1 s) up to ``http.backoff_max_seconds``, jittered
    to 50-100 % so that bots restarting together (a network back after an outage) spread out."""
    cap = max(http.backoff_max_seconds, RECONNECT_FLOOR_SECONDS)
    first = max(http.backoff_initial_seconds, RECONNECT_FLOOR_SECONDS)
    # The exponent is bounded: a bot retrying for days would overflow a float otherwise.
    base = first * 2 ** min(failures - 1, 32)
    return min(cap, base) * (0.5 + rand() / 2)


def unreachable_cause(
    exc: BaseException, bot: discord.Client | None = None
) -> BaseException | None:
    """The network failure behind ``exc`` when it means Discord could not be reached (no
    network yet, a name that does not resolve, a refused connection, a timeout, Discord's own
    5xx): worth trying again later. None for anything else (a rejected token, a bug)."""
    import aiohttp
    import discord

    if isinstance(exc, AttributeError) and bot is not None and bot.ws is None:
        # discord.py 2.x: when the first gateway connection fails, its reconnect path reads the
        # sequence of a websocket it never had; the connection error is this one's context.
        context = exc.__context__
        return unreachable_cause(context) if context is not None else None
    network = (aiohttp.ClientConnectionError, OSError, TimeoutError)
    unavailable = (discord.GatewayNotFound, discord.DiscordServerError)
    return exc if isinstance(exc, network + unavailable) else None


def unreachable_text(exc: BaseException) -> str:
    """Why Discord could not be reached, in one line that names the host where it can."""
    import aiohttp
    import discord

    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot reach Discord at {exc.host}:{exc.port}: the name does not resolve"
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        why = os.strerror(cause.errno).lower() if cause.errno else str(cause) or "failed"
        return f"cannot reach Discord at {exc.host}:{exc.port}: {why}"
    if isinstance(exc, discord.DiscordServerError):
        return f"Discord is unavailable: it answered HTTP {exc.status}"
    if isinstance(exc, TimeoutError):
        return "cannot reach Discord: no answer in time"
    if isinstance(exc, discord.GatewayNotFound):
        return "Discord is unavailable: it has no gateway to give"
    return f"cannot reach Discord: {exc or type(exc).__name__}"


def not_reached(exc: BaseException, settings: Settings) -> HotPapersError:
    """The one-line error of `sync` and `invite` when Discord could not be reached."""
    return HotPapersError(
        f"{unreachable_text(exc)} (check the network, and discord.api_base: "
        f"{settings.discord.api_base})"
    )


async def _start_bot(
    bot: discord.Client, token: str, settings: Settings, stopping: asyncio.Event
) -> None:
    """``bot.start(token)`` that outlasts a Discord it cannot reach yet.

    At boot the network may come up after the service (names that do not resolve, refused
    connections), and Discord has outages: while the login or the first gateway connection
    fails so, one line is logged and the attempt repeated after :func:`reconnect_delay`, until
    it succeeds or ``stopping`` is set. Once connected, discord.py reconnects by itself. Any
    other failure, a rejected token (401) first, is raised at once.
    """
    import discord

    async def forget_session() -> None:
        # A failed login keeps the HTTP session it opened, and closing that session closes the
        # client's connector as well: close both, and the next login opens new ones.
        await bot.http.close()
        bot.http.connector = discord.utils.MISSING

    if await _keep_trying(lambda: bot.login(token), bot, settings, stopping, forget_session):
        await _keep_trying(bot.connect, bot, settings, stopping)


async def _keep_trying(
    step: Callable[[], Awaitable[None]],
    bot: discord.Client,
    settings: Settings,
    stopping: asyncio.Event,
    after_failure: Callable[[], Awaitable[None]] | None = None,
) -> bool:
    """Await ``step()`` until it does not fail for want of Discord; False if stopped first."""
    failures = 0
    while not stopping.is_set():
        try:
            await step()
        except Exception as exc:
            if stopping.is_set():
                return False  # the stop closed the bot under this attempt
            # Only until the bot first connects: then discord.py reconnects by itself, and a
            # failure that escapes it is not the network's.
            cause = None if bot.is_ready() else unreachable_cause(exc, bot)
            if cause is None:
                raise
            failures += 1
            delay = reconnect_delay(failures, settings.http)
            log.warning(
                "%s (attempt %d); trying again in %.1f s",
                unreachable_text(cause),
                failures,
                delay,
            )
            if after_failure is not None:
                await after_failure()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
        else:
            if failures:
                log.info("reached Discord after %d failed attempts", failures)
            return True
    return False


def _warm_up_charts() -> None:
    try:
        from bot.render.chart import warm_up

        warm_up()
    except Exception:  # a chart is a bonus: /paper answers without it
        log.warning("charts could not be prepared", exc_info=True)


# Commands that keep no state never create the data directory: `demo` works in a scratch one,
# `invite` only asks Discord.
STATELESS_COMMANDS = frozenset({"demo", "invite"})


def in_data_dir(settings: Settings) -> Settings:
    """``settings`` with ``storage.data_dir`` absolute and created, and a relative SQLite
    ``database.url`` placed inside it (``bot.storage.location``; README: The data directory)."""
    from bot.storage.location import prepare

    where = prepare(settings.database.url, settings.storage.data_dir)
    return settings.model_copy(
        update={
            "storage": settings.storage.model_copy(update={"data_dir": where.data_dir}),
            "database": settings.database.model_copy(update={"url": where.database_url}),
        }
    )


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
    from bot.storage.location import data_dir, keep_chart_cache_in
    from bot.web.app import build_server

    with discord_endpoints(settings):
        async with open_runtime(settings) as rt:
            bot = make_bot(rt)
            # Health, metrics and the archive (web.enabled), listening before the bot logs in:
            # a port in use stops the start in one line.
            web = build_server(rt, bot) if settings.web.enabled else None
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
            # connects: the first /paper chart is then as quick as the next. Its font cache
            # goes in the data directory (a service's user may have no writable home).
            keep_chart_cache_in(data_dir(settings.storage.data_dir))
            warming = loop.create_task(asyncio.to_thread(_warm_up_charts))
            closing.add(warming)
            warming.add_done_callback(closing.discard)
            try:
                if web is not None:
                    await web.start()
                async with bot:
                    await _start_bot(bot, token, settings, stopping)
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
                if web is not None:
                    await web.stop()  # after the drain: /readyz answers until the end
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
                    if args.guild is not None:
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
            except Exception as exc:
                cause = unreachable_cause(exc)
                if cause is None:
                    raise
                raise not_reached(cause, settings) from None
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
            # Two REST calls and no gateway: no warning about voice libraries (the bot does no
            # voice), nor about intents (with Guilds on, discord.py has none to give).
            discord.VoiceClient.warn_nacl = False
            discord.VoiceClient.warn_dave = False
            client = discord.Client(intents=discord.Intents(guilds=True))
            try:
                async with client:
                    await client.login(_token(settings))
                    app = await client.application_info()
                    app_id = app.id
            except discord.LoginFailure:
                raise ConfigError(
                    "Discord rejected DISCORD_TOKEN (401): check the bot token"
                ) from None
            except Exception as exc:
                cause = unreachable_cause(exc)
                if cause is None:
                    raise
                raise not_reached(cause, settings) from None
    print(invite_url(app_id))
    return EXIT_OK


async def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    """The web server alone, from the database, until SIGINT or SIGTERM."""
    from bot.runtime import open_runtime
    from bot.web.app import build_server

    async with open_runtime(settings) as rt:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stopping.set)
        async with build_server(rt):
            await stopping.wait()
            log.info("shutting down")
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
    "web": cmd_web,
}
# Long-running services: they log at INFO, and a crash's traceback goes to their log.
SERVICE_COMMANDS = frozenset({"run", "web"})


# The database drivers' and SQLAlchemy's loggers. At DEBUG, aiosqlite logs every call with its
# arguments (97 % of the lines of `-v` once): they stay at WARNING unless database.echo asks
# for the SQL statements (their parameters hidden: storage/engine.py).
DATABASE_LOGGERS = ("aiosqlite", "asyncpg", "sqlalchemy")
# Commands that print an ingest report, where each source's failure is its FAILED row: the
# ingest service's warning about the same failure would say it again (shown with -v).
REPORTING_COMMANDS = frozenset({"fetch", "digest"})


def configure_logging(level: str, *, echo_sql: bool = False) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic narrates every migration step at INFO; our own line says which revision we reached.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    for name in DATABASE_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    if echo_sql:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    for name in ("discord.client", "discord.shard"):  # unsharded, and each shard
        gateway = logging.getLogger(name)
        if not any(isinstance(f, ReconnectInOneLine) for f in gateway.filters):
            gateway.addFilter(ReconnectInOneLine())


class ReconnectInOneLine(logging.Filter):
    """discord.py logs each gateway reconnect at ERROR with the whole traceback of its cause.
    When the cause is the network (a refused or reset connection, a name that does not resolve),
    one WARNING line says as much: the bot is trying again, as it should."""

    def filter(self, record: logging.LogRecord) -> bool:
        cause = record.exc_info[1] if record.exc_info else None
        if cause is not None and str(record.msg).startswith("Attempting a reconnect"):
            network = unreachable_cause(cause)
            if network is not None:
                record.msg = f"{record.msg}: %s"
                record.args = (*(record.args or ()), unreachable_text(network))
                record.exc_info = record.exc_text = None
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def log_level(settings: Settings, command: str) -> str:
    """``logging.level`` when it was set; otherwise INFO for the bot, WARNING for one-shot commands.

    A one-shot command reports its own progress on stderr; INFO lines from the layers below
    would repeat it, and bury the one line an error is.
    """
    if command in SERVICE_COMMANDS or "level" in settings.logging.model_fields_set:
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
        verbose = getattr(args, "verbose", False)
        configure_logging(
            "DEBUG" if verbose else log_level(settings, args.command),
            echo_sql=settings.database.echo,
        )
        if args.command in REPORTING_COMMANDS and not verbose:
            from bot.services import ingest

            logging.getLogger(ingest.__name__).setLevel(logging.ERROR)
        if args.command not in STATELESS_COMMANDS:
            settings = in_data_dir(settings)
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
        if args.command in SERVICE_COMMANDS or getattr(args, "verbose", False):
            log.exception("hotpapers %s crashed", args.command)
            hint = "the traceback is in the log above"
        else:
            hint = "run with -v for details"
        print(
            f"hotpapers: error: unexpected {type(exc).__name__}: {exc} ({hint})",
            file=sys.stderr,
        )
        return EXIT_FAILURE
