"""Slash-command cogs: parse the interaction, call a service, render with ``bot.ui``, reply."""
