"""Services say why with structured reasons; ``bot.ui.messages`` alone words them."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest

from bot.core.models import (
    Digest,
    EmptyDay,
    EmptyKind,
    EmptyReason,
    NoteKind,
    StatusNote,
    Window,
)
from bot.services.delivery import empty_reason
from bot.ui.messages import empty_text, note_text

MONDAY, SATURDAY = dt.date(2020, 12, 21), dt.date(2020, 12, 26)


def _digest(day: dt.date, failed: tuple[str, ...] = ()) -> Digest:
    return Digest(
        day=day,
        window=Window.for_day(day),
        categories=(),
        papers=(),
        generated_at=dt.datetime.combine(day, dt.time(9), dt.UTC),
        threshold=50.0,
        failed_sources=dict.fromkeys(failed, "timeout"),
    )


@pytest.mark.parametrize(
    ("digest", "quiet", "kind"),
    [
        (_digest(MONDAY, ("x",)), False, EmptyKind.SOURCES_FAILED),
        (_digest(MONDAY), True, EmptyKind.ARXIV_HOLIDAY),
        (_digest(SATURDAY), False, EmptyKind.WEEKEND),
        (_digest(MONDAY), False, EmptyKind.BELOW_THRESHOLD),
    ],
)
def test_an_empty_digest_has_a_structured_reason_worded_by_the_ui(digest, quiet, kind):
    reason = empty_reason(digest, digest.day, 50.0, arxiv_quiet=quiet)
    assert isinstance(reason, EmptyReason)
    assert (reason.kind, reason.threshold) == (kind, 50.0)
    text = empty_text(reason)
    assert text.startswith("No hot papers today:")
    if kind is EmptyKind.SOURCES_FAILED:
        assert reason.failed_sources == ("x",)
        assert "X" in text
    else:
        assert "50" in text


def test_every_status_note_kind_has_words():
    start = dt.datetime(2020, 12, 21, 10, tzinfo=dt.UTC)
    for kind in NoteKind:
        note = StatusNote(
            kind,
            source="bluesky",
            detail="timeout",
            start=start,
            end=start + dt.timedelta(hours=12),
            threshold=25,
            empty_day=EmptyDay.SILENT,
            names=("Send Messages",),
        )
        assert note_text(note).strip(), kind
    gap = StatusNote(
        NoteKind.STREAM_GAP, source="bluesky", start=start, end=start + dt.timedelta(hours=12)
    )
    assert "(12.0 h) were missed" in note_text(gap)


def test_the_launcher_is_gone_and_the_jobs_need_no_discord():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("bot.launcher")
    jobs = importlib.import_module("bot.jobs")
    assert "discord" not in vars(jobs)


@pytest.mark.parametrize(
    "kind", [EmptyKind.BELOW_THRESHOLD, EmptyKind.WEEKEND, EmptyKind.ARXIV_HOLIDAY]
)
def test_a_server_ranking_by_field_is_told_of_its_field_not_a_threshold(kind):
    text = empty_text(EmptyReason(kind, 50.0, field=True))
    assert "stood out in its field" in text
    assert "50" not in text
    note = note_text(
        StatusNote(NoteKind.BELOW_THRESHOLD, threshold=50.0, empty_day=EmptyDay.SILENT, field=True)
    )
    assert "stands out in its field" in note
    assert "50" not in note
    assert note.endswith("skipped.")
