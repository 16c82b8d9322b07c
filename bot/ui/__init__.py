"""Discord presentation: digests and papers → embeds, views and user-facing messages."""
