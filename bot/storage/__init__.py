"""Storage: the only package that talks SQL. Repositories take a Database and return core models.

Open the database once at start (``async with Database.connect(url) as db``), build the
repositories on it, and hand those to the services.
"""

from __future__ import annotations

from bot.storage.digests import DigestRecord, DigestRepository
from bot.storage.engine import Database, head_revision, open
from bot.storage.engine import open as open_database
from bot.storage.guilds import GuildConfig, GuildRepository
from bot.storage.mentions import MentionRepository, StoredMention
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository, SourceRun

__all__ = [
    "Database",
    "DigestRecord",
    "DigestRepository",
    "GuildConfig",
    "GuildRepository",
    "MentionRepository",
    "PaperRepository",
    "RunRepository",
    "SourceRun",
    "StoredMention",
    "head_revision",
    "open",
    "open_database",
]
