"""``/category``: list, add, remove the server's arXiv categories; a category's top papers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import require_manage_guild
from bot.core.taxonomy import validate_category
from bot.ui import autocomplete as ac
from bot.ui.embeds import compact_embed
from bot.ui.messages import categories_embed, category_label, ok_embed
from cogs.papers import RANKING_COOLDOWN

if TYPE_CHECKING:
    from bot.client import HotPapersBot

Interaction = discord.Interaction["HotPapersBot"]


@app_commands.guild_only()
class Categories(
    commands.GroupCog,
    group_name="category",
    group_description="The arXiv categories this server follows",
):
    """The server's categories."""

    def __init__(self, bot: HotPapersBot) -> None:
        self.bot = bot

    @app_commands.command(name="list")
    async def list_(self, interaction: Interaction) -> None:
        """The categories this server follows, with their names."""
        assert interaction.guild_id is not None
        cats = await self.bot.rt.guild_settings.categories(interaction.guild_id)
        await interaction.response.send_message(embed=categories_embed(cats), ephemeral=True)

    @app_commands.command(name="add")
    @app_commands.describe(name="An arXiv category such as cs.LG, or a whole archive such as cs")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.check(require_manage_guild)
    async def add(self, interaction: Interaction, name: app_commands.Range[str, 1, 40]) -> None:
        """Follow an arXiv category (moderators)."""
        assert interaction.guild_id is not None
        category, added = await self.bot.rt.guild_settings.add_category(interaction.guild_id, name)
        text = (
            f"This server now follows {category_label(category)}."
            if added
            else f"This server already follows {category_label(category)}."
        )
        await interaction.response.send_message(embed=ok_embed(text), ephemeral=True)

    @add.autocomplete("name")
    async def add_autocomplete(
        self, interaction: Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return ac.category_choices(current)

    @app_commands.command(name="remove")
    @app_commands.describe(name="One of this server's categories")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.check(require_manage_guild)
    async def remove(self, interaction: Interaction, name: app_commands.Range[str, 1, 40]) -> None:
        """Stop following an arXiv category (moderators)."""
        assert interaction.guild_id is not None
        removed = await self.bot.rt.guild_settings.remove_category(interaction.guild_id, name)
        left = await self.bot.rt.guild_settings.categories(interaction.guild_id)
        tail = "" if left else " The server now follows every category."
        await interaction.response.send_message(
            embed=ok_embed(f"Removed {category_label(removed)}.{tail}"), ephemeral=True
        )

    @remove.autocomplete("name")
    async def remove_autocomplete(
        self, interaction: Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        cats = await self.bot.rt.guild_settings.categories(interaction.guild_id)
        return ac.own_category_choices(cats, current)

    @app_commands.command(name="top")
    @app_commands.checks.cooldown(*RANKING_COOLDOWN)
    @app_commands.describe(
        name="An arXiv category or archive", days="How many days back (1-7, default 1)"
    )
    async def top(
        self,
        interaction: Interaction,
        name: app_commands.Range[str, 1, 40],
        days: app_commands.Range[int, 1, 7] = 1,
    ) -> None:
        """The top papers of one category."""
        category = validate_category(name)
        await interaction.response.defer(thinking=True)
        digest = await self.bot.rt.digests.hot([category], days)
        if not digest.papers:
            span = "today" if days == 1 else f"in the last {days} days"
            await interaction.followup.send(f"No paper in `{category}` has been shared {span} yet.")
            return
        await interaction.followup.send(
            embed=compact_embed(digest, [category], title=f"Top papers · {category}")
        )

    @top.autocomplete("name")
    async def top_autocomplete(
        self, interaction: Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return ac.category_choices(current)


async def setup(bot: HotPapersBot) -> None:
    await bot.add_cog(Categories(bot))
