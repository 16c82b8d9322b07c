"""The web site (aiohttp): health checks, metrics, and the public archive with its feeds."""
