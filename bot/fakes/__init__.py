"""Fakes of arXiv and the popularity sources on 127.0.0.1, for tests and the offline demo.

Shipped because ``hotpapers demo`` serves from them. The fake Discord is test code only: it lives
in ``tests/fakes/discord``.
"""
