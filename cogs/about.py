"""``/about``: what the bot does and how ranking works."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.ui.messages import about_embed

if TYPE_CHECKING:
    from bot.client import HotPapersBot


class About(commands.Cog):
    def __init__(self, bot: HotPapersBot) -> None:
        self.bot = bot

    @app_commands.command(name="about")
    async def about(self, interaction: discord.Interaction[HotPapersBot]) -> None:
        """What hotpapers does and how it ranks papers."""
        ranking = self.bot.rt.settings.ranking
        embed = about_embed(
            ranking.weights,
            ranking.threshold,
            ranking.post_threshold,
            (ranking.field_min_posters, ranking.field_top_percent),
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: HotPapersBot) -> None:
    await bot.add_cog(About(bot))
