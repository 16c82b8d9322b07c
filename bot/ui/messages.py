"""User-facing messages: errors, /about, category lists, digest settings and status."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import discord

from bot.core.errors import failure_phrase
from bot.core.models import (
    AlertKind,
    DigestState,
    EmptyDay,
    EmptyKind,
    EmptyReason,
    NoteKind,
    Paper,
    RankingMode,
    StatusNote,
)
from bot.core.taxonomy import ARCHIVES, CATEGORIES
from bot.sources.registry import REGISTRY, source_list, source_name
from bot.ui import limits
from bot.ui.embeds import COLOR
from bot.ui.text import clip, inline_code, link_text, safe, safe_url

if TYPE_CHECKING:
    from bot.services.archive import ArchiveLink
    from bot.services.delivery import DeliveryAlert, GuildStatus

GENERIC_ERROR = "Something went wrong on our side. It has been logged; please try again later."
ERROR_COLOR = discord.Colour(0xE67E22)


def error_embed(text: str) -> discord.Embed:
    return discord.Embed(description=clip(f"⚠️ {text}", limits.DESCRIPTION), colour=ERROR_COLOR)


def ok_embed(text: str) -> discord.Embed:
    return discord.Embed(description=clip(f"✅ {text}", limits.DESCRIPTION), colour=COLOR)


def others_embed(papers: Sequence[Paper]) -> discord.Embed:
    """Further matches of a title search, linked."""
    lines = []
    for p in papers[:5]:
        title = clip(link_text(" ".join(p.title.split())), 120)
        lines.append(f"• [{title}]({safe_url(p.abs_url)}) `{p.arxiv_id}`")
    return discord.Embed(title="Other matches", description="\n".join(lines), colour=COLOR)


def category_label(cat: str) -> str:
    if cat in CATEGORIES:
        return f"`{cat}` {CATEGORIES[cat].name}"
    if cat in ARCHIVES:
        return f"`{cat}` {ARCHIVES[cat]} (whole archive)"
    return inline_code(cat)


def categories_embed(categories: Sequence[str]) -> discord.Embed:
    if not categories:
        text = (
            "This server follows **every category**. A moderator can narrow it with "
            "`/category add`, e.g. `cs.LG` or a whole archive like `cs`."
        )
    else:
        text = "\n".join(f"• {category_label(c)}" for c in categories)
    return discord.Embed(
        title="Categories of this server", description=clip(text, limits.DESCRIPTION), colour=COLOR
    )


def about_embed(
    weights: Mapping[str, Mapping[str, float]],
    threshold: float,
    post_threshold: float,
    field_rule: tuple[int, float] = (2, 10.0),
) -> discord.Embed:
    min_posters, top_percent = field_rule

    def fmt(source: str) -> str:
        w = weights.get(source, {})
        return " + ".join(f"{v:g}×{k}" for k, v in w.items() if v) or "not counted"

    counted = "\n".join(f"• {entry.name}: {fmt(entry.key)}" for entry in REGISTRY)

    embed = discord.Embed(
        title="hotpapers",
        description=(
            "Every day, researchers share new arXiv papers on social sites. hotpapers finds the "
            "papers people are talking about, ranks them by that attention, and posts the top "
            "ones here at the time your moderators choose."
        ),
        colour=COLOR,
    )
    embed.add_field(
        name="How ranking works",
        value=clip(
            "A paper's score is the sum, over every post that links it in the last day, of its "
            f"weighted popularity:\n{counted}\n"
            f"Papers scoring **{threshold:g}** or more are listed best first; under each, the "
            f"posts that scored {post_threshold:g} or more (always the best one).\n"
            "A server can rank **by field** instead (`/digest settings ranking:field`): each "
            "category's papers that stand out among the papers of its arXiv day (top "
            f"{top_percent:g}%, posted by {min_posters}+ people), so a small field is not "
            "crowded out by a big one. "
            "`/hot sort:rising` shows what gained most in the last 24 hours.",
            limits.FIELD_VALUE,
        ),
        inline=False,
    )
    embed.add_field(
        name="Where the attention comes from",
        value=clip(
            "\n".join(f"• **{entry.name}**: {entry.about}." for entry in REGISTRY),
            limits.FIELD_VALUE,
        ),
        inline=False,
    )
    embed.add_field(
        name="Commands",
        value=(
            "`/paper` look a paper up · `/hot` today's top papers · `/category list` · "
            "`/category top` · `/digest status`\nModerators: `/category add|remove`, "
            "`/digest channel|time|settings|preview|pause|resume|archive`"
        ),
        inline=False,
    )
    return embed


def ranking_text(ranking: str, threshold: str, min_posters: int, top_percent: float) -> str:
    """How a server's digest chooses its papers, in a few words."""
    if ranking == RankingMode.FIELD:
        return (
            f"ranking: **field** (each category's top {top_percent:g}% of its day, "
            f"posted by {min_posters}+ people)"
        )
    return f"ranking: absolute · threshold: {threshold}"


def _ts(moment: dt.datetime | None, style: str = "f") -> str:
    return f"<t:{int(moment.timestamp())}:{style}>" if moment else "—"


# How /digest status shows the last digest's state.
_STATE_TEXT: dict[str, str] = {
    DigestState.SENT: "✅ sent",
    DigestState.EMPTY: "∅ nothing to post",
    DigestState.FAILED: "❌ failed",
    DigestState.SENDING: "⏳ sending",
    DigestState.PENDING: "⏳ pending",
}


def status_embed(status: GuildStatus, archive: ArchiveLink | None = None) -> discord.Embed:
    """``/digest status``: settings, next and last post, sources, the public archive (its
    link while it is on), and why anything is off."""
    cfg = status.config
    channel = f"<#{cfg.channel_id}>" if cfg.channel_id else "not set — use `/digest channel`"
    threshold = (
        f"{cfg.threshold:g}"
        if cfg.threshold is not None
        else f"{status.default_threshold:g} (default)"
    )
    cats = ", ".join(f"`{c}`" for c in cfg.categories) or "every category"
    embed = discord.Embed(title="Daily digest status", colour=COLOR)
    embed.add_field(
        name="Settings",
        value=clip(
            f"Channel: {channel}\nTime: **{cfg.post_time}** {cfg.timezone}\n"
            f"Categories: {cats}\nTop: {cfg.top_n} · "
            f"{ranking_text(cfg.ranking, threshold, *status.field_rule)}"
            f" · style: {cfg.style} · empty days: {cfg.empty_day}"
            + (
                f"\n⏸️ **Paused**: {safe(cfg.pause_reason or 'by a moderator')}"
                if cfg.paused
                else ""
            ),
            limits.FIELD_VALUE,
        ),
        inline=False,
    )
    embed.add_field(
        name="Next post",
        value=_ts(status.next_post)
        + (f" ({_ts(status.next_post, 'R')})" if status.next_post else ""),
        inline=True,
    )
    last = status.last
    if last is None:
        last_text = "never"
    else:
        result = _STATE_TEXT.get(last.status, last.status)
        last_text = f"{last.digest_date} — {result}"
        if last.paper_count:
            last_text += f", {last.paper_count} papers"
        if last.error:
            last_text += f"\n{safe(last.error)}"
    embed.add_field(name="Last post", value=clip(last_text, limits.FIELD_VALUE), inline=True)
    lines = []
    for key, run in sorted(status.sources.items()):
        name = source_name(key)
        if run is None:
            lines.append(f"• {name}: not run yet")
        elif run.error:
            # A fixed phrase: the recorded error is for operators (it may quote the service).
            phrase = failure_phrase(run.error_kind)
            lines.append(f"• ❌ {name}: {phrase} ({_ts(run.finished_at, 'R')})")
        else:
            unit = "announcements" if key == "arxiv feed" else "mentions"
            lines.append(f"• ✅ {name}: {run.mentions} {unit} ({_ts(run.finished_at, 'R')})")
    embed.add_field(
        name="Sources",
        value=clip("\n".join(lines) or "none enabled", limits.FIELD_VALUE),
        inline=False,
    )
    embed.add_field(
        name="Public archive",
        value=clip(archive_status_text(archive), limits.FIELD_VALUE),
        inline=False,
    )
    if status.notes:
        embed.add_field(
            name="Why it may be empty or late",
            value=clip(
                "\n".join(f"• {safe(note_text(n))}" for n in status.notes), limits.FIELD_VALUE
            ),
            inline=False,
        )
    return embed


def note_text(note: StatusNote) -> str:
    """One reason a digest may be empty or late, in words a member understands."""
    match note.kind:
        case NoteKind.NO_CHANNEL:
            return "No channel is set yet: a moderator can use /digest channel."
        case NoteKind.PAUSED:
            return f"The digest is paused ({note.detail or 'by a moderator'})."
        case NoteKind.LAST_FAILED:
            return f"The last digest failed: {note.detail}."
        case NoteKind.SOURCE_FAILED:
            return (
                f"{source_name(note.source)} {failure_phrase(note.detail)}: "
                "the ranking is incomplete."
            )
        case NoteKind.NO_SOURCES:
            return "No popularity source is enabled on this bot."
        case NoteKind.STREAM_GAP:
            assert note.start is not None
            assert note.end is not None
            hours = (note.end - note.start).total_seconds() / 3600
            return (
                f"{source_name(note.source)} posts from {note.start:%Y-%m-%d %H:%M} to "
                f"{note.end:%Y-%m-%d %H:%M} UTC ({hours:.1f} h) were missed: the bot was "
                "offline longer than the stream can replay."
            )
        case NoteKind.ARXIV_QUIET:
            return (
                "arXiv's latest announcement feed was empty (a weekend or an arXiv "
                "holiday): few new papers are being shared."
            )
        case NoteKind.WEEKEND_NEXT:
            return "The next post falls on a weekend: arXiv announces no new papers then."
        case NoteKind.BELOW_THRESHOLD:
            then = "a short message." if note.empty_day is EmptyDay.MESSAGE else "skipped."
            if note.field:
                return (
                    "Right now no paper in this server's categories stands out in its field; "
                    f"the digest would be {then}"
                )
            return (
                "Right now no paper in this server's categories reaches the threshold "
                f"({note.threshold:g}); the digest would be {then}"
            )
        case NoteKind.CHANNEL_GONE:
            return "The digest channel is gone or hidden from me: set another with /digest channel."
        case NoteKind.MISSING_PERMISSIONS:
            return (
                f"In the digest channel I'm missing {', '.join(note.names)}: nothing can be posted."
            )
        case NoteKind.NO_THREAD_PERMISSIONS:
            names = ", ".join(note.names)
            return f"Without {names} the papers go in the channel instead of a thread."
    raise AssertionError(note.kind)  # every kind is worded above


def empty_text(reason: EmptyReason) -> str:
    """Why a digest has no paper, in words a member understands."""
    if reason.field:
        missed = "no paper stood out in its field"
    else:
        missed = f"no paper reached a score of {reason.threshold:g}"
    match reason.kind:
        case EmptyKind.SOURCES_FAILED:
            names = source_list(reason.failed_sources)
            return (
                f"No hot papers today: {names} could not be reached, so the ranking is incomplete."
            )
        case EmptyKind.ARXIV_HOLIDAY:
            return (
                "No hot papers today: arXiv's latest announcement was empty (an arXiv holiday), "
                f"and {missed}."
            )
        case EmptyKind.WEEKEND:
            return f"No hot papers today: arXiv announces nothing on weekends, and {missed}."
    if reason.field:
        return "No hot papers today: no paper in this server's categories stood out in its field."
    return (
        "No hot papers today: no paper in this server's categories "
        f"reached a score of {reason.threshold:g}."
    )


def alert_text(alert: DeliveryAlert) -> str:
    """The notice moderators get when their digest fails for good or is paused."""
    day = alert.day.isoformat()
    where = f"<#{alert.channel_id}>" if alert.channel_id else "the digest channel"
    if alert.kind is AlertKind.CHANNEL_GONE:
        text = (
            f"⚠️ **hotpapers**: the digest channel was deleted, so the daily digest is "
            f"**paused** (Hot Papers {day} was not posted). A moderator can pick a new channel "
            "with `/digest channel`."
        )
    elif alert.kind is AlertKind.NO_PERMISSION:
        missing = ", ".join(alert.missing) or "the permissions it needs"
        text = (
            f"⚠️ **hotpapers**: Hot Papers {day} could not be posted in {where}: the bot lacks "
            f"{missing} there. Give it those permissions (or choose another channel with "
            "`/digest channel`): it will be retried every 10 minutes for a few hours; "
            "`/digest status` shows what is missing."
        )
    else:
        text = (
            f"⚠️ **hotpapers**: Hot Papers {day} could not be posted in {where} after "
            f"{alert.attempts} attempts; it will not be retried. `/digest status` shows the "
            "reason; the next digest goes out as scheduled."
        )
    return clip(text + "\n-# Set where these notices go with `/digest alerts`.", limits.CONTENT)


# --- the public archive (/digest archive) ---------------------------------------------------


def _archive_where(link: ArchiveLink) -> str:
    if link.absolute:
        return f"<{safe_url(link.url)}>"
    # No web.public_url: only the path is known, not the site's address.
    return (
        f"`{link.url}` on this bot's web site (its operator has not set `web.public_url`, so "
        "I can't give the full address)"
    )


def archive_status_text(archive: ArchiveLink | None) -> str:
    """The archive's line in ``/digest status``: its address while on."""
    if archive is None:
        return "Off. A moderator can publish the digests posted here with `/digest archive on`."
    return f"On: {_archive_where(archive)}"


def archive_on_text(link: ArchiveLink, *, already: bool) -> str:
    """``/digest archive on``: where the archive is, and what it shows and doesn't."""
    state = "was already on" if already else "is now on"
    return (
        f"This server's public archive {state}: {_archive_where(link)}\n"
        "Anyone with the link can read the digests posted here: each day's papers, their "
        "counts and the public posts about them. It shows nothing of this server's members, "
        "channels or settings. It has Atom and JSON feeds; `/digest archive off` hides it at once."
    )


def archive_off_text(*, already: bool) -> str:
    """``/digest archive off``: hidden, and the address kept."""
    state = "was already off" if already else "is now off"
    return (
        f"This server's public archive {state}: its pages and feeds answer “not found”, as "
        "for a server that never published one. `/digest archive on` brings it back at the "
        "same address."
    )
