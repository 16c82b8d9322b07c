"""Score series → a PNG chart of a paper's popularity over time (matplotlib's Agg, no pyplot).

Every chart is its own ``Figure`` on its own ``FigureCanvasAgg``: no pyplot, no global figure
manager, no rcParams changes, so :func:`render_chart` may run in several threads at once (in
``asyncio.to_thread``). matplotlib is imported on first use, not with this module: the import
and the font setup cost about half a second once per process, which :func:`warm_up` lets the
bot pay at start, off the event loop.

The palette. The chart draws its own opaque card, #2B2D31 (the background of Discord's dark
theme's embeds and side panels), so its contrast never depends on the reader's theme: in the
dark theme it sits like an embed, in the light theme it reads as a dark card, an image, with a
clear edge (13.8:1 against the light theme's white). A light card would glare in the dark theme
that most members use. Text is Discord's #F2F3F5 (12.4:1 on the card) and #B5BAC1 (7.1:1),
above WCAG AA's 4.5:1 for small text; the sources' lines are Okabe & Ito's colour-blind-safe
colours, all above the 3:1 WCAG asks of lines and other graphics (3.6:1 to 10.4:1; their blue
#0072B2, 2.7:1, is left out); the total is the thickest line, in the text colour. Only the grid,
a decoration, is deliberately faint (1.35:1). ``tests/render/test_chart.py`` checks the ratios.

Text from outside (the arXiv title, the labels) never goes through mathtext (``parse_math``
off), is set on one line, shortened with "…" to fit, and drawn with matplotlib's bundled DejaVu
Sans only (a file path, never a font lookup): a character the font lacks (CJK, emoji) becomes
"□" instead of a glyph-missing warning, and the output is the same on every machine.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import io
import math
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core.series import Point, total_series
from bot.sources.registry import REGISTRY, source_name

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backend_bases import RendererBase
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

CHART_WIDTH = 800  # pixels
CHART_HEIGHT = 400  # pixels
DPI = 100

BACKGROUND = "#2B2D31"
TEXT = "#F2F3F5"
MUTED_TEXT = "#B5BAC1"  # axis labels, ticks, axes lines
GRID = "#3F4147"  # decoration only: faint on purpose
TOTAL_COLOUR = TEXT
# Okabe & Ito, in REGISTRY's order (X, Bluesky, Hacker News, Hugging Face, then any other
# source): reddish purple, sky blue, orange, yellow, bluish green, vermillion.
SOURCE_COLOURS = ("#CC79A7", "#56B4E9", "#E69F00", "#F0E442", "#009E73", "#D55E00")
# Every colour that must stay readable on BACKGROUND: at least 3:1 (WCAG 2's contrast ratio).
READABLE_COLOURS = (TEXT, MUTED_TEXT, TOTAL_COLOUR, *SOURCE_COLOURS)

EMPTY_TEXT = "No snapshots yet"
TOTAL_LABEL = "Total"
MISSING_GLYPH = "\u25a1"  # □, in DejaVu Sans
ELLIPSIS = "\u2026"

_REGULAR = "DejaVuSans.ttf"
_BOLD = "DejaVuSans-Bold.ttf"
_PAD = 16  # pixels around the card's content
_AXES_LEFT, _AXES_RIGHT, _AXES_TOP, _AXES_BOTTOM = 64, 206, 68, 56  # margins, pixels
_AXES_WIDTH = CHART_WIDTH - _AXES_LEFT - _AXES_RIGHT
_AXES_HEIGHT = CHART_HEIGHT - _AXES_TOP - _AXES_BOTTOM
_TOTAL_WIDTH, _SOURCE_WIDTH = 3.4, 1.8  # line widths, points
_UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SOURCE_ORDER = {entry.key: index for index, entry in enumerate(REGISTRY)}


def render_chart(
    series: Mapping[str, Sequence[tuple[dt.datetime, float]]],
    *,
    title: str,
    labels: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> bytes:
    """A PNG of CHART_WIDTH by CHART_HEIGHT pixels: one step line per source of ``series``
    (source key → points oldest first, as :func:`bot.core.series.score_series` gives them), a
    thicker total line, a legend with each line's latest value, a UTC time axis and a "score"
    axis from 0.

    ``labels`` names the sources (default: the registry's display names). ``now`` is the right
    edge: every line holds its last value until then (default: the last point). Without any
    point the chart says "No snapshots yet". CPU-bound (~80 ms): call it in a thread.
    """
    canvas = _canvas(series, title=title, labels=labels or {}, now=now)
    out = io.BytesIO()
    # No "Software" chunk: the same chart is the same bytes whatever matplotlib's version.
    # zlib level 1: a fifth of a chart's time saved for a PNG about 15% larger (~40 KiB).
    canvas.print_png(out, metadata={"Software": None}, pil_kwargs={"compress_level": 1})
    return out.getvalue()


def _canvas(
    series: Mapping[str, Sequence[tuple[dt.datetime, float]]],
    *,
    title: str,
    labels: Mapping[str, str],
    now: dt.datetime | None,
) -> FigureCanvasAgg:
    """The chart's own Agg canvas and figure, ready to draw."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if now is not None and now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    figure = Figure(
        figsize=(CHART_WIDTH / DPI, CHART_HEIGHT / DPI),
        dpi=DPI,
        facecolor=BACKGROUND,
        edgecolor=BACKGROUND,
    )
    canvas = FigureCanvasAgg(figure)
    renderer = canvas.get_renderer()
    _title(figure, renderer, title)
    drawn = {key: list(points) for key, points in series.items() if points}
    if drawn:
        _plot(figure, renderer, drawn, labels, now)
    else:
        _text(
            figure,
            CHART_WIDTH / 2,
            CHART_HEIGHT / 2,
            EMPTY_TEXT,
            _font(_REGULAR, 14),
            colour=MUTED_TEXT,
            ha="center",
            va="center",
        )
    return canvas


def warm_up() -> None:
    """Import matplotlib, read the fonts and draw two charts like real ones (every source, days
    of points, a long title of every printable ASCII character, and an empty one), so that the
    first chart a member asks for is as fast as the next. Blocking (about 600 ms, most of it
    matplotlib's import): run it in a thread."""
    start = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    series = {
        entry.key: [(start + dt.timedelta(hours=hour), float(hour * n)) for hour in range(60)]
        for n, entry in enumerate(REGISTRY, start=1)
    }
    title = "".join(map(chr, range(32, 127))) * 2
    render_chart(series, title=title, now=start + dt.timedelta(days=3))
    render_chart({}, title=title)
    # The import leaves a few hundred thousand new objects: the first full collection after it
    # takes ~50 ms, better paid here than inside a member's first chart.
    gc.collect()


def contrast_ratio(foreground: str, background: str = BACKGROUND) -> float:
    """WCAG 2's contrast ratio of two ``#RRGGBB`` colours, from 1 to 21."""
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _luminance(colour: str) -> float:
    """WCAG 2's relative luminance of ``#RRGGBB``."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def source_colour(key: str, others: Sequence[str] = ()) -> str:
    """A source's line colour: fixed by its place in the registry, so that a source has the
    same colour in every chart; an unknown source takes the next one by its place in
    ``others`` (the chart's unknown sources, sorted)."""
    index = _SOURCE_ORDER.get(key)
    if index is None:
        index = len(REGISTRY) + (list(others).index(key) if key in others else 0)
    return SOURCE_COLOURS[index % len(SOURCE_COLOURS)]


# -- drawing ----------------------------------------------------------------------------------
# Ticks, tick labels, axis labels and the legend are drawn as plain lines and texts: matplotlib's
# Tick, Axis and Legend artists cost two thirds of a chart's time, and every text here is set in
# the bundled font by file, never by family name.


def _title(figure: Figure, renderer: RendererBase, title: str) -> None:
    font = _font(_BOLD, 13)
    text = _fit(_displayable(title, _BOLD), font, CHART_WIDTH - 2 * _PAD, renderer)
    _text(figure, _PAD, CHART_HEIGHT - _PAD, text, font, colour=TEXT, va="top")


def _plot(
    figure: Figure,
    renderer: RendererBase,
    series: dict[str, list[Point]],
    labels: Mapping[str, str],
    now: dt.datetime | None,
) -> None:
    ax = figure.add_axes(
        (
            _AXES_LEFT / CHART_WIDTH,
            _AXES_BOTTOM / CHART_HEIGHT,
            _AXES_WIDTH / CHART_WIDTH,
            _AXES_HEIGHT / CHART_HEIGHT,
        )
    )
    ax.set_axis_off()
    total = total_series(series)
    first = min(points[0][0] for points in series.values())
    last = max(points[-1][0] for points in series.values())
    end = max(last, now) if now is not None else last
    others = sorted(key for key in series if key not in _SOURCE_ORDER)

    def line(points: Sequence[Point], colour: str, width: float, zorder: float) -> None:
        times = [at for at, _ in points]
        values = [value for _, value in points]
        if times[-1] < end:  # a step holds its value until the right edge
            times.append(end)
            values.append(values[-1])
        ax.plot(
            _days(times),
            values,
            drawstyle="steps-post",
            color=colour,
            linewidth=width,
            solid_joinstyle="miter",
            zorder=zorder,
            # A lone point has no step to draw: a dot shows it.
            marker="o" if len(times) == 1 else "",
            markersize=width * 2.5,
        )

    # The total under the sources: where one source is the whole score, it outlines that line.
    line(total, TOTAL_COLOUR, _TOTAL_WIDTH, 2)
    entries = [(TOTAL_LABEL, total[-1][1], TOTAL_COLOUR, _TOTAL_WIDTH)]
    order = sorted(series, key=lambda k: (-series[k][-1][1], _SOURCE_ORDER.get(k, 99), k))
    for key in order:
        colour = source_colour(key, others)
        line(series[key], colour, _SOURCE_WIDTH, 3)
        entries.append(
            (labels.get(key) or source_name(key), series[key][-1][1], colour, _SOURCE_WIDTH)
        )

    left, right = _days([first, end])
    _time_axis(ax, left, right if end > first else None)
    _score_axis(ax, max(value for points in (total, *series.values()) for _, value in points))
    # The axes' left and bottom lines, as one L.
    ax.plot(
        [0, 0, 1],
        [1, 0, 0],
        transform=ax.transAxes,
        color=MUTED_TEXT,
        linewidth=0.9,
        clip_on=False,
        zorder=4,
    )
    _legend(figure, renderer, entries)


def _days(moments: Sequence[dt.datetime]) -> list[float]:
    """matplotlib's date numbers (days since its epoch): ``date2num``'s values, five times
    faster for aware datetimes (it converts each one's time zone)."""
    from matplotlib.dates import date2num

    offset = float(date2num(_UNIX_EPOCH))
    return [offset + moment.timestamp() / 86400 for moment in moments]


def _time_axis(ax: Axes, start: float, end: float | None) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.transforms import blended_transform_factory

    if end is None:  # one moment: an hour either side, not a zero-width axis
        start, end = start - 1 / 24, start + 1 / 24
    ax.set_xlim(start, end)
    locator = AutoDateLocator(tz=dt.UTC, minticks=3, maxticks=7)
    locator.set_axis(ax.xaxis)
    formatter = ConciseDateFormatter(locator, tz=dt.UTC)
    ticks = [x for x in locator() if start <= x <= end]
    names = formatter.format_ticks(ticks)
    below = blended_transform_factory(ax.transData, ax.transAxes)
    marks: list[float] = []
    for x, name in zip(ticks, names, strict=True):
        ax.text(
            x,
            -8 / _AXES_HEIGHT,
            _displayable(name, _REGULAR),
            transform=below,
            ha="center",
            va="top",
            clip_on=False,
            **_text_style(_font(_REGULAR, 9.5), MUTED_TEXT),
        )
        marks += [x, x, math.nan]
    ax.plot(
        marks,
        [0, -4 / _AXES_HEIGHT, math.nan] * len(ticks),
        transform=below,
        color=MUTED_TEXT,
        linewidth=0.9,
        clip_on=False,
    )
    offset = _displayable(formatter.get_offset(), _REGULAR)
    ax.text(
        0.5,
        -(_AXES_BOTTOM - 12) / _AXES_HEIGHT,
        f"{offset} (UTC)" if offset else "UTC",
        transform=ax.transAxes,
        ha="center",
        va="bottom",
        clip_on=False,
        **_text_style(_font(_REGULAR, 9.5), MUTED_TEXT),
    )


def _score_axis(ax: Axes, top: float) -> None:
    from matplotlib.ticker import MaxNLocator
    from matplotlib.transforms import blended_transform_factory

    # Headroom above the highest value, so that the line never runs along the frame.
    top = max(top * 1.06, 1.0)
    ticks = [t for t in MaxNLocator(nbins=5, integer=True).tick_values(0, top) if t >= 0]
    ceiling = next((t for t in ticks if t >= top), top)
    ax.set_ylim(0, ceiling)
    beside = blended_transform_factory(ax.transAxes, ax.transData)
    grid: list[float] = []
    for y in (t for t in ticks if t <= ceiling):
        ax.text(
            -8 / _AXES_WIDTH,
            y,
            _tick_number(y, ceiling),
            transform=beside,
            ha="right",
            va="center_baseline",
            clip_on=False,
            **_text_style(_font(_REGULAR, 9.5), MUTED_TEXT),
        )
        grid += [y, y, math.nan]
    ax.plot(
        [0, 1, math.nan] * (len(grid) // 3),
        grid,
        transform=beside,
        color=GRID,
        linewidth=0.8,
        zorder=1,
    )
    # Above the axis, clear of the top tick's label: horizontal text reads faster than turned.
    ax.text(
        -8 / _AXES_WIDTH,
        1 + 10 / _AXES_HEIGHT,
        "score",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        clip_on=False,
        **_text_style(_font(_REGULAR, 9.5), MUTED_TEXT),
    )


def _legend(
    figure: Figure, renderer: RendererBase, entries: Sequence[tuple[str, float, str, float]]
) -> None:
    from matplotlib.lines import Line2D

    font = _font(_REGULAR, 9.5)
    left = CHART_WIDTH - _AXES_RIGHT + 20
    text_left = left + 30
    for row, (name, value, colour, width) in enumerate(entries):
        y = CHART_HEIGHT - _AXES_TOP - 8 - row * 22
        figure.add_artist(
            Line2D(
                [left / CHART_WIDTH, (left + 22) / CHART_WIDTH],
                [y / CHART_HEIGHT] * 2,
                transform=figure.transFigure,
                color=colour,
                linewidth=width,
                solid_capstyle="butt",
            )
        )
        label = f"{_displayable(name, _REGULAR)} · {_number(value)}"
        fitted = _fit(label, font, CHART_WIDTH - _PAD - text_left, renderer)
        _text(figure, text_left, y, fitted, font, colour=TEXT, va="center_baseline")


def _number(value: float) -> str:
    """A legend's value: whole numbers as such, a weighted score's fraction to one decimal."""
    return f"{value:,.0f}" if abs(value - round(value)) < 0.05 else f"{value:,.1f}"


def _tick_number(value: float, ceiling: float) -> str:
    """A score axis label, short enough for the margin and in one unit along the axis:
    9,500 on an axis up to 10,000; 95k up to 100k and more; 9.5M up to a million and more."""
    if ceiling >= 1e6:
        return f"{value / 1e6:g}M" if value else "0"
    if ceiling >= 1e5:
        return f"{value / 1e3:g}k" if value else "0"
    return f"{value:,.0f}"


# -- text -------------------------------------------------------------------------------------


def _text(
    figure: Figure, x: float, y: float, text: str, font: FontProperties, colour: str, **style: Any
) -> None:
    """Text on the figure at (``x``, ``y``) pixels from its bottom left corner."""
    figure.text(x / CHART_WIDTH, y / CHART_HEIGHT, text, **_text_style(font, colour), **style)


def _text_style(font: FontProperties, colour: str) -> dict[str, Any]:
    """Literal text in a bundled font: no mathtext (``$…$`` stays as typed), no TeX."""
    return {"fontproperties": font, "color": colour, "parse_math": False, "usetex": False}


def _fit(text: str, font: FontProperties, width: float, renderer: RendererBase) -> str:
    """``text``, cut at the end with "…" to fit ``width`` pixels.

    Measuring is what costs (FreeType lays out every glyph): the text is first cut to what could
    possibly fit (no glyph is narrower than a fifth of an em), then the cut is guessed from the
    average glyph and corrected, two or three measurements where a binary search takes eight.
    """

    def measure(candidate: str) -> float:
        return float(renderer.get_text_width_height_descent(candidate, font, ismath=False)[0])

    em = font.get_size_in_points() * DPI / 72
    head = text[: math.ceil(width / (0.2 * em))]
    full = measure(head)
    if head == text and full <= width:
        return text
    per_glyph = full / max(len(head), 1)
    length = min(len(head), int(width / per_glyph))
    while length > 0:
        candidate = head[:length].rstrip() + ELLIPSIS
        over = measure(candidate) - width
        if over <= 0:
            return candidate
        length -= max(1, math.ceil(over / per_glyph))
    return ELLIPSIS


def _displayable(text: str, font_file: str) -> str:
    """``text`` on one line, in glyphs the font has: whitespace runs (newlines too) become one
    space, invisible controls go, and any other character the font lacks becomes "□"."""
    glyphs = _charmap(font_file)
    kept: list[str] = []
    for char in text:
        category = unicodedata.category(char)
        if char.isspace():
            kept.append(" ")
        elif ord(char) in glyphs and category not in ("Cc", "Cf"):
            kept.append(char)
        elif category[0] not in ("M", "C"):
            kept.append(MISSING_GLYPH)
        # else: a control, or a mark, joiner or selector without a glyph: its base says enough
    return " ".join("".join(kept).split())


@functools.cache
def _font_path(name: str) -> str:
    import matplotlib

    return str(Path(matplotlib.get_data_path(), "fonts", "ttf", name))


@functools.cache
def _charmap(name: str) -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(_font_path(name)).get_charmap())


def _font(name: str, size: float) -> FontProperties:
    from matplotlib.font_manager import FontProperties

    return FontProperties(fname=_font_path(name), size=size)
