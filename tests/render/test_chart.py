"""The popularity chart: a valid PNG of a fixed size, readable colours, hostile titles, threads."""

from __future__ import annotations

import datetime as dt
import io
import struct
import threading
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import matplotlib.image
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.mathtext import MathTextParser
from matplotlib.text import Text

from bot.render import chart
from bot.render.chart import (
    BACKGROUND,
    CHART_HEIGHT,
    CHART_WIDTH,
    GRID,
    MISSING_GLYPH,
    READABLE_COLOURS,
    SOURCE_COLOURS,
    contrast_ratio,
    render_chart,
    source_colour,
    warm_up,
)
from bot.sources.registry import REGISTRY

UTC = dt.UTC
T0 = dt.datetime(2026, 3, 9, 8, tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)
Series = Mapping[str, Sequence[tuple[dt.datetime, float]]]

SERIES: Series = {
    "x": [(T0, 3.0), (T0 + 30 * MINUTE, 40.0), (T0 + 90 * MINUTE, 120.0)],
    "hackernews": [(T0 + 10 * MINUTE, 12.0), (T0 + 70 * MINUTE, 61.0)],
    "bluesky": [(T0 + 5 * MINUTE, 2.0), (T0 + 95 * MINUTE, 18.0)],
}
HOSTILE_TITLES = [
    "$\\frac{a}{b}$",
    "Cost $O(n \\log n)$ and $$ unbalanced $ signs \\",
    "A very long title " * 40,
    "大規模言語モデルの推論能力に関する研究",
    "Emoji 🔥🚀 and a family 👨\u200d👩\u200d👧 with a flag 🇯🇵 and ❤️",
    "line one\nline two\r\n\tline three",
    "\u202eright-to-left override\u202c, \x00 NUL, \x1b[31m escape, lone \ud800 surrogate",
    "",
    "   ",
    "_^{}%#&~ <b>html</b> `code` **bold**",
]


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG signature and its first chunk, IHDR."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind, width, height = struct.unpack(">I4sII", data[8:24])
    assert (length, kind) == (13, b"IHDR")
    return width, height


def pixels(data: bytes) -> np.ndarray:
    """The decoded image as rows of RGB bytes."""
    image = matplotlib.image.imread(io.BytesIO(data))
    assert image.shape[:2] == (CHART_HEIGHT, CHART_WIDTH)
    return np.round(image[..., :3] * 255).astype(np.uint8)


def colours_of(data: bytes) -> set[str]:
    flat = pixels(data).reshape(-1, 3).astype(np.uint32)
    packed = np.unique((flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2])
    return {f"#{int(rgb):06X}" for rgb in packed}


def texts(series: Series, **kwargs: object) -> list[Text]:
    """The chart's texts that say something, with the figure drawn (their layout final)."""
    options: dict[str, object] = {"title": "A paper", "labels": {}, "now": None, **kwargs}
    canvas = chart._canvas(series, **options)  # type: ignore[arg-type]
    canvas.draw()
    return [t for t in canvas.figure.findobj(Text) if t.get_visible() and t.get_text()]


def test_a_valid_png_of_the_documented_size() -> None:
    data = render_chart(SERIES, title="Attention is all you need", now=T0 + 3 * 60 * MINUTE)
    assert png_size(data) == (CHART_WIDTH, CHART_HEIGHT) == (800, 400)
    image = pixels(data)
    # An opaque card of its own: the corners are the background, whatever Discord's theme.
    assert colours_of(data) >= {BACKGROUND}
    assert {"#{:02X}{:02X}{:02X}".format(*image[y, x]) for y, x in ((0, 0), (-1, -1))} == {
        BACKGROUND
    }
    png_alpha = matplotlib.image.imread(io.BytesIO(data))[..., 3]
    assert png_alpha.min() == 1.0


def test_not_blank_and_each_line_in_its_colour() -> None:
    found = colours_of(render_chart(SERIES, title="A paper"))
    assert len(found) > 20  # antialiased lines and text, not a flat card
    # Every source's colour and the total's are drawn, exactly, somewhere.
    expected = {source_colour(key) for key in SERIES} | {chart.TOTAL_COLOUR}
    assert expected <= found


def test_colours_are_fixed_per_source_across_charts() -> None:
    assert [source_colour(e.key) for e in REGISTRY] == list(SOURCE_COLOURS[: len(REGISTRY)])
    assert source_colour("mastodon", ["lemmy", "mastodon"]) != source_colour("lemmy", ["lemmy"])
    only_hn = colours_of(render_chart({"hackernews": SERIES["hackernews"]}, title="t"))
    assert source_colour("hackernews") in only_hn
    assert source_colour("x") not in only_hn


@pytest.mark.parametrize("colour", READABLE_COLOURS)
def test_text_and_lines_contrast_at_least_3_to_1_with_the_card(colour: str) -> None:
    assert contrast_ratio(colour, BACKGROUND) >= 3.0


def test_contrast_ratio_is_wcag_2() -> None:
    assert contrast_ratio("#FFFFFF", "#000000") == pytest.approx(21.0)
    assert contrast_ratio("#000000", "#FFFFFF") == pytest.approx(21.0)
    assert contrast_ratio("#777777", "#FFFFFF") == pytest.approx(4.48, abs=0.01)
    assert contrast_ratio(BACKGROUND, BACKGROUND) == pytest.approx(1.0)
    # Body text reaches AA for small text, not just the 3:1 of lines; the grid stays faint.
    assert contrast_ratio(chart.TEXT) >= 7.0
    assert contrast_ratio(chart.MUTED_TEXT) >= 4.5
    assert contrast_ratio(GRID) < 1.5
    # The card stands out on Discord's light theme (white) as well.
    assert contrast_ratio(BACKGROUND, "#FFFFFF") >= 7.0


@pytest.mark.parametrize("series", [{}, {"x": []}, {"x": [], "bluesky": []}])
def test_no_snapshots_yet(series: Series) -> None:
    data = render_chart(series, title="A paper without posts")
    assert png_size(data) == (CHART_WIDTH, CHART_HEIGHT)
    assert len(colours_of(data)) > 5  # the title and the sentence
    assert not set(SOURCE_COLOURS) & colours_of(data)
    assert [t.get_text() for t in texts(series)] == ["A paper", chart.EMPTY_TEXT]


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_hostile_titles_neither_raise_nor_warn(title: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_mathtext(*args: object, **kwargs: object) -> None:
        raise AssertionError("outside text reached mathtext")

    monkeypatch.setattr(MathTextParser, "parse", no_mathtext)
    labels = {"x": title, "hackernews": "$x^2$ 日本"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = render_chart(SERIES, title=title, labels=labels)
        empty = render_chart({}, title=title)
    assert png_size(data) == png_size(empty) == (CHART_WIDTH, CHART_HEIGHT)


def test_text_is_literal_in_the_bundled_font_and_fits() -> None:
    drawn = texts(SERIES, title="$\\frac{a}{b}$ " + "long " * 200, labels={"x": "$x$"})
    fonts = {t.get_fontproperties().get_file() for t in drawn}
    assert {chart._font_path("DejaVuSans.ttf"), chart._font_path("DejaVuSans-Bold.ttf")} == fonts
    assert not any(t.get_parse_math() or t.get_usetex() for t in drawn)
    (title,) = (t for t in drawn if t.get_fontproperties().get_file().endswith("-Bold.ttf"))
    assert title.get_text().startswith("$\\frac{a}{b}$ long")
    assert title.get_text().endswith(chart.ELLIPSIS)
    for text in drawn:
        box = text.get_window_extent()
        assert box.x0 >= 0
        assert box.y0 >= 0
        assert box.x1 <= CHART_WIDTH
        assert box.y1 <= CHART_HEIGHT
    assert "$x$ · 120" in [t.get_text() for t in drawn]


def test_legend_names_sources_by_their_display_names_with_their_latest_values() -> None:
    said = [t.get_text() for t in texts(SERIES)]
    legend = [s for s in said if " · " in s]
    # The total first, then the sources, highest first.
    assert legend == ["Total · 199", "X · 120", "Hacker News · 61", "Bluesky · 18"]
    assert "score" in said
    assert "2026-Mar-09 (UTC)" in said


def test_a_lone_point_and_a_right_edge_in_the_future() -> None:
    for series, now in (
        ({"x": [(T0, 5.0)]}, None),
        ({"x": [(T0, 5.0)]}, T0 + 60 * MINUTE),
        ({"x": [(T0, 5.0)]}, T0 - 60 * MINUTE),  # a clock behind the data is ignored
        ({"x": [(T0, 0.0)], "bluesky": [(T0, 0.0)]}, None),  # all zero: the axis still has a top
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert png_size(render_chart(series, title="t", now=now)) == (800, 400)
    with pytest.raises(ValueError, match="timezone-aware"):
        render_chart(SERIES, title="t", now=dt.datetime(2026, 3, 9, 12))


def test_the_same_chart_is_the_same_bytes() -> None:
    assert render_chart(SERIES, title="t") == render_chart(SERIES, title="t")
    assert render_chart(SERIES, title="t") != render_chart(SERIES, title="u")


def test_safe_to_render_from_several_threads_at_once() -> None:
    inputs: list[tuple[Series, str]] = [
        (SERIES, "first"),
        ({}, "empty"),
        ({"huggingface": [(T0, 10.0), (T0 + MINUTE, 30.0)]}, "大規模 🔥 $x$"),
        (
            {key: [(T0 + i * MINUTE, float(i)) for i in range(300)] for key in SERIES},
            "A long one " * 20,
        ),
    ]
    expected = [render_chart(series, title=title) for series, title in inputs]
    start = threading.Barrier(4)

    def render(index: int) -> bytes:
        if index < 4:
            start.wait(timeout=30)  # the first four begin together
        series, title = inputs[index % len(inputs)]
        return render_chart(series, title=title)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(render, range(16)))
    assert results == [expected[i % len(inputs)] for i in range(16)]


def test_warm_up() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warm_up()


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_displayable_text_is_one_line_of_glyphs_the_font_has(text: str) -> None:
    for font in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"):
        shown = chart._displayable(text, font)
        assert shown == " ".join(shown.split())  # one line, single spaces, no edges
        assert all(ord(c) in chart._charmap(font) for c in shown)


def test_displayable_keeps_what_the_font_has_and_boxes_the_rest() -> None:
    shown = chart._displayable("naïve\nCafé 日本 🔥\u200d!\u202e", "DejaVuSans.ttf")
    assert shown == f"naïve Café {MISSING_GLYPH * 2} {MISSING_GLYPH}!"


@pytest.mark.parametrize("top", [0.3, 7.0, 9_400.0, 95_000.0, 3.2e6, 4.5e9])
def test_score_labels_fit_the_margin_at_any_scale(top: float) -> None:
    series = {"x": [(T0, top / 3), (T0 + MINUTE, top)]}
    for text in texts(series):
        box = text.get_window_extent()
        assert box.x0 >= 0
        assert box.x1 <= CHART_WIDTH


def test_score_labels_share_one_unit() -> None:
    assert [chart._tick_number(v, 10_000) for v in (0, 2_500, 10_000)] == ["0", "2,500", "10,000"]
    assert [chart._tick_number(v, 200_000) for v in (0, 50_000)] == ["0", "50k"]
    assert [chart._tick_number(v, 2.5e6) for v in (5e5, 2.5e6)] == ["0.5M", "2.5M"]
