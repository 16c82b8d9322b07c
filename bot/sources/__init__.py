"""aiohttp clients of the external services: arXiv and the popularity sources."""
