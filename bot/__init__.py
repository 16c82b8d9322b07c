"""hotpapers: the day's hottest arXiv papers, ranked by social attention, delivered to Discord."""

__version__ = "0.1.0"
