"""The error hierarchy: what a SourceError says with and without its source's name."""

from __future__ import annotations

from bot.core.errors import (
    ArxivApiError,
    MalformedResponseError,
    SourceError,
    SourceUnavailableError,
)


def test_source_error_message_names_the_source_and_detail_does_not() -> None:
    error = MalformedResponseError("hackernews", "answer is not JSON")
    assert error.source == "hackernews"
    assert error.message == "hackernews: answer is not JSON"
    assert str(error) == "hackernews: answer is not JSON"
    assert error.detail == "answer is not JSON"


def test_every_source_error_has_a_detail() -> None:
    errors: list[SourceError] = [
        SourceError("x", "X rejected the bearer token (401)"),
        SourceUnavailableError("huggingface", "HTTP 503 after 5 attempts"),
        ArxivApiError("incorrect id format for abc"),
    ]
    assert [(e.source, e.detail) for e in errors] == [
        ("x", "X rejected the bearer token (401)"),
        ("huggingface", "HTTP 503 after 5 attempts"),
        ("arxiv", "incorrect id format for abc"),
    ]
    assert all(e.message == f"{e.source}: {e.detail}" for e in errors)


def test_members_read_a_fixed_phrase_for_each_kind_of_source_failure() -> None:
    from bot.core.errors import failure_phrase

    assert MalformedResponseError("x", "<html>host</html>").kind == "malformed"
    assert SourceUnavailableError("x", "down").kind == "unreachable"
    assert SourceUnavailableError("x", "timed out", kind="timeout").kind == "timeout"
    assert ArxivApiError("bad id").kind == "refused"
    assert SourceError("x", "no token").kind == "failed"
    assert failure_phrase("timeout") == "timed out"
    assert failure_phrase("http 503") == "answered HTTP 503"
    assert failure_phrase("malformed") == "sent a malformed answer"
    # Unknown, missing or odd kinds (a row from before kinds were stored) say nothing more.
    for odd in (None, "http <script>", "http 5030", "whatever"):
        assert failure_phrase(odd) == "is failing"
