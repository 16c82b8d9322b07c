"""Use cases: ingest popularity and papers, build digests, look papers up, guild settings."""
