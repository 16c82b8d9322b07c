"""``/paper`` and ``/hot``: look a paper up; the top papers right now."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.arxiv_ids import parse_arxiv_id
from bot.core.errors import UserFacingError
from bot.core.models import HotSort, Paper
from bot.core.taxonomy import validate_category
from bot.render.chart import render_chart
from bot.services.papers import looks_like_id
from bot.sources.registry import source_name
from bot.ui import autocomplete as ac
from bot.ui.embeds import compact_embed, paper_embed, paper_links
from bot.ui.limits import fit_embeds
from bot.ui.messages import others_embed

if TYPE_CHECKING:
    from bot.client import HotPapersBot

log = logging.getLogger(__name__)
Interaction = discord.Interaction["HotPapersBot"]
# (uses, seconds) per member.
PAPER_COOLDOWN = (3, 30.0)
RANKING_COOLDOWN = (5, 30.0)


def refuse_malformed(query: str) -> None:
    """Input that can never match is refused at once, privately, before anything is deferred
    (a deferred answer is public: its "thinking…" placeholder would show in the channel)."""
    text = " ".join(query.split())
    if not text:
        raise UserFacingError("Give an arXiv id, an arXiv URL or some title words.")
    if looks_like_id(text) and "/" in text:
        parse_arxiv_id(text)  # raises InvalidArxivIdError with a message fit for the user


async def popularity_chart(
    paper: Paper, series: Mapping[str, list[tuple[dt.datetime, float]]], *, now: dt.datetime
) -> discord.File | None:
    """The paper's score over time as a PNG attachment, drawn off the event loop; None when
    nobody posted it (or the drawing failed: the answer goes out without it)."""
    if not series:
        return None
    try:
        png = await asyncio.to_thread(
            render_chart,
            series,
            title=paper.title,
            labels={key: source_name(key) for key in series},
            now=now,
        )
    except Exception:
        log.warning("chart of %s failed", paper.arxiv_id, exc_info=True)
        return None
    name = f"popularity-{paper.arxiv_id.replace('/', '-')}.png"
    return discord.File(io.BytesIO(png), filename=name, description="Score over time")


class Papers(commands.Cog):
    """Paper look-up and the live ranking."""

    def __init__(self, bot: HotPapersBot) -> None:
        self.bot = bot

    @app_commands.command(name="paper")
    @app_commands.describe(query="An arXiv id (2106.14108), an arXiv URL, or words from the title")
    # Per member: a title search may ask arXiv, which allows the whole bot one request per 3 s.
    @app_commands.checks.cooldown(*PAPER_COOLDOWN)
    async def paper(self, interaction: Interaction, query: app_commands.Range[str, 1, 300]) -> None:
        """Show a paper by arXiv id, URL or title words."""
        refuse_malformed(query)
        await interaction.response.defer(thinking=True)
        result = await self.bot.rt.paper_lookup.lookup(query)
        best, *others = result.papers
        report = await self.bot.rt.digests.paper_report(best.arxiv_id)
        embed = paper_embed(best, ranked=report.ranked, abstract_limit=1800, explain=True)
        chart = await popularity_chart(best, report.series, now=self.bot.rt.clock())
        if chart is not None:
            embed.set_image(url=f"attachment://{chart.filename}")
        embeds = [embed]
        if others:
            embeds.append(others_embed(others))
        files = [chart] if chart is not None else []
        await interaction.followup.send(
            embeds=fit_embeds(embeds), view=paper_links(best), files=files
        )

    @paper.autocomplete("query")
    async def paper_autocomplete(
        self, interaction: Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        pairs = await self.bot.rt.paper_lookup.autocomplete(current, limit=25)
        return ac.paper_choices(pairs)

    @app_commands.command(name="hot")
    @app_commands.checks.cooldown(*RANKING_COOLDOWN)
    @app_commands.describe(
        category="One arXiv category or archive (default: this server's categories)",
        days="How many days back to count (1-7, default 1)",
        sort="score: the most attention (default); rising: the week's papers that gained most "
        "in the last 24 hours",
    )
    async def hot(
        self,
        interaction: Interaction,
        category: str | None = None,
        days: app_commands.Range[int, 1, 7] = 1,
        sort: Literal["score", "rising"] = "score",
    ) -> None:
        """The top papers right now for this server's categories or one category."""
        if category:
            categories: list[str] = [validate_category(category)]
        elif interaction.guild_id:
            categories = await self.bot.rt.guild_settings.categories(interaction.guild_id)
        else:
            categories = []
        await interaction.response.defer(thinking=True)
        digest = await self.bot.rt.digests.hot(categories, days, HotSort(sort))
        where = ", ".join(categories) or "any category"
        if not digest.papers:
            if digest.sort is HotSort.RISING:
                text = f"No paper in {where} gained attention in the last 24 hours."
            else:
                span = "today" if days == 1 else f"in the last {days} days"
                text = f"No paper in {where} has been shared {span} yet."
            await interaction.followup.send(text)
            return
        now = self.bot.rt.clock()
        title = f"{'Rising' if digest.sort is HotSort.RISING else 'Hot'} now · {now:%Y-%m-%d}"
        await interaction.followup.send(embed=compact_embed(digest, categories, title=title))

    @hot.autocomplete("category")
    async def hot_category_autocomplete(
        self, interaction: Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return ac.category_choices(current)


async def setup(bot: HotPapersBot) -> None:
    await bot.add_cog(Papers(bot))
