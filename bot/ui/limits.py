"""Discord's documented message and embed limits, enforced here and nowhere else."""

from __future__ import annotations

import discord

from bot.ui.text import clip

CONTENT = 2000
EMBEDS_PER_MESSAGE = 10
EMBED_TOTAL = 6000
TITLE = 256
DESCRIPTION = 4096
FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
AUTHOR_NAME = 256
CHOICES = 25
CHOICE_NAME = 100
CHOICE_VALUE = 100
BUTTON_LABEL = 80
ACTION_ROWS = 5  # rows of components per message
BUTTONS_PER_ROW = 5
# A digest's papers travel four to a message: each paper has its own row of link buttons
# (abstract, PDF, HTML; five rows at most), and four embeds of about 1,450 characters fit the
# 6,000 a message allows. Ten papers take three messages: header, thread and papers make five
# requests. It depends on the paper count alone, so a resumed digest packs as the first try.
PAPERS_PER_MESSAGE = 4


def embed_size(embed: discord.Embed) -> int:
    """Characters Discord counts towards the 6000 limit."""
    return len(embed)


def fit_embeds(embeds: list[discord.Embed]) -> list[discord.Embed]:
    """At most 10 embeds and 6000 characters in all: shorten descriptions, then drop the tail."""
    embeds = embeds[:EMBEDS_PER_MESSAGE]
    while embeds and sum(embed_size(e) for e in embeds) > EMBED_TOTAL:
        biggest = max(embeds, key=lambda e: len(e.description or ""))
        desc = biggest.description or ""
        excess = sum(embed_size(e) for e in embeds) - EMBED_TOTAL
        if len(desc) > 40:
            biggest.description = clip(desc, max(20, len(desc) - excess - 1))
        else:
            embeds.pop()
    return embeds
