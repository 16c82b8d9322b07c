"""Fakes of arXiv, the popularity sources and Discord on 127.0.0.1, for tests and the demo."""
