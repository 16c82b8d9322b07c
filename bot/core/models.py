"""Domain models shared by every layer: papers, mentions, windows, ranked papers and digests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

UTC = dt.UTC


class Metric(StrEnum):
    """A popularity count a source reports for one post."""

    REPOSTS = "reposts"  # X retweets, Bluesky reposts
    LIKES = "likes"  # X likes ("favorites" in the seed's format), Bluesky likes
    REPLIES = "replies"
    QUOTES = "quotes"
    POINTS = "points"  # Hacker News points
    COMMENTS = "comments"  # Hacker News / Hugging Face comments
    UPVOTES = "upvotes"  # Hugging Face upvotes


class DigestStyle(StrEnum):
    """How a server's daily digest is laid out."""

    THREAD = "thread"  # a header in the channel, the papers in a thread under it
    CHANNEL = "channel"  # the header and the papers in the channel
    COMPACT = "compact"  # one message: the ranked list in one embed


class RankingMode(StrEnum):
    """How a server's digest chooses its papers."""

    ABSOLUTE = "absolute"  # the seed's rule: a threshold on the score, best first
    FIELD = "field"  # each followed category's hottest papers for its field, interleaved


class HotSort(StrEnum):
    """How ``/hot`` and ``hotpapers digest`` order papers."""

    SCORE = "score"  # by score
    RISING = "rising"  # by the score gained over the last 24 h, gently decayed by age


class EmptyDay(StrEnum):
    """What a server gets on a day without hot papers."""

    MESSAGE = "message"  # a short message saying why
    SILENT = "silent"  # nothing


class DigestState(StrEnum):
    """Where a day's digest of one server stands (``pending → sending → sent|empty|failed``)."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    EMPTY = "empty"
    FAILED = "failed"


class EmptyKind(StrEnum):
    """Why a digest has no paper (the words are ``bot.ui.messages.empty_text``)."""

    SOURCES_FAILED = "sources_failed"  # some sources could not be reached
    ARXIV_HOLIDAY = "arxiv_holiday"  # arXiv's latest announcement was empty on a weekday
    WEEKEND = "weekend"  # arXiv announces nothing on weekends
    BELOW_THRESHOLD = "below_threshold"  # no paper in the categories reached the threshold


@dataclass(frozen=True, slots=True)
class EmptyReason:
    """Why a digest is empty: the kind, with what its sentence names."""

    kind: EmptyKind
    threshold: float
    failed_sources: tuple[str, ...] = ()
    field: bool = False  # the server ranks by field: no threshold, no paper stood out


class NoteKind(StrEnum):
    """Why a server's digest may be empty or late, as ``/digest status`` lists it (the words
    are ``bot.ui.messages.note_text``)."""

    NO_CHANNEL = "no_channel"
    PAUSED = "paused"  # detail: the pause reason
    LAST_FAILED = "last_failed"  # detail: the recorded error (written by the bot)
    SOURCE_FAILED = "source_failed"  # source, detail: the failure's kind
    NO_SOURCES = "no_sources"
    STREAM_GAP = "stream_gap"  # source, start, end
    ARXIV_QUIET = "arxiv_quiet"
    WEEKEND_NEXT = "weekend_next"
    BELOW_THRESHOLD = "below_threshold"  # threshold, empty_day
    CHANNEL_GONE = "channel_gone"
    MISSING_PERMISSIONS = "missing_permissions"  # names
    NO_THREAD_PERMISSIONS = "no_thread_permissions"  # names


@dataclass(frozen=True, slots=True)
class StatusNote:
    """One reason a digest may be empty or late, with what its sentence names."""

    kind: NoteKind
    source: str = ""
    detail: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    threshold: float = 0.0
    empty_day: EmptyDay = EmptyDay.MESSAGE
    names: tuple[str, ...] = ()
    field: bool = False  # BELOW_THRESHOLD of a server ranking by field


class AlertKind(StrEnum):
    """Why moderators are told about their digest."""

    FAILED = "failed"  # out of attempts: this day's digest will not be posted
    NO_PERMISSION = "no_permission"  # Discord answered 403: the bot may not post there
    CHANNEL_GONE = "channel_gone"  # the channel was deleted: the digest is paused


class AnnounceType(StrEnum):
    """How a paper appears in a day's arXiv RSS feed."""

    NEW = "new"
    CROSS = "cross"
    REPLACE = "replace"
    REPLACE_CROSS = "replace-cross"
    ABSONLY = "absonly"


@dataclass(frozen=True, slots=True)
class Paper:
    """An arXiv paper's metadata. ``arxiv_id`` is normalised and carries no version."""

    arxiv_id: str
    title: str
    abstract: str
    authors: tuple[str, ...]
    primary_category: str
    categories: tuple[str, ...]  # every category, primary first
    published: dt.datetime
    updated: dt.datetime
    version: int | None = None
    comment: str | None = None
    journal_ref: str | None = None
    doi: str | None = None

    @property
    def abs_url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv_id}"

    @property
    def pdf_url(self) -> str:
        return f"https://arxiv.org/pdf/{self.arxiv_id}"

    @property
    def html_url(self) -> str:
        return f"https://arxiv.org/html/{self.arxiv_id}"


@dataclass(frozen=True, slots=True)
class Announcement:
    """One item of a day's arXiv RSS feed for a category."""

    arxiv_id: str
    version: int | None
    announce_type: AnnounceType
    title: str
    abstract: str
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    announced: dt.datetime


@dataclass(frozen=True, slots=True)
class Mention:
    """A social post that links one or more arXiv papers, with its metrics as fetched."""

    source: str  # "x", "hackernews", "huggingface", ...
    post_id: str
    url: str
    author: str  # handle / username
    text: str
    created_at: dt.datetime
    arxiv_ids: tuple[str, ...]
    metrics: Mapping[str, int] = field(default_factory=dict)
    author_name: str | None = None
    lang: str | None = None

    def metric(self, name: str) -> int:
        return int(self.metrics.get(name, 0) or 0)


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open UTC time window ``[start, end)``."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("Window bounds must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("Window end must be after its start")

    @classmethod
    def for_day(cls, day: dt.date) -> Window:
        """The UTC day ``[D, D+1)``."""
        start = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
        return cls(start, start + dt.timedelta(days=1))

    @classmethod
    def last(cls, days: float, now: dt.datetime) -> Window:
        return cls(now - dt.timedelta(days=days), now)

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, dt.datetime) and self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class SourceReport:
    """What one popularity source produced for one window."""

    source: str
    mentions: tuple[Mention, ...] = ()
    requests: int = 0
    error: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class ScoredPost:
    """A mention with its weighted score, as shown under a paper."""

    mention: Mention
    score: float


@dataclass(frozen=True, slots=True)
class Cohort:
    """The papers a paper's heat is measured against: one category's papers announced on one
    arXiv day (``bot.core.heat``). ``size`` is the real number of papers, without padding."""

    category: str
    day: dt.date
    size: int


@dataclass(frozen=True, slots=True)
class Heat:
    """How a paper's score compares with its cohort's: a mid-rank percentile (0 to 100) and a
    robust z-score (distance from the median in scaled MADs)."""

    percentile: float
    z: float
    cohort: Cohort


@dataclass(frozen=True, slots=True)
class RankedPaper:
    """A paper in a ranking: its score, per-source metric totals and its best posts."""

    paper: Paper
    score: float
    by_source: Mapping[str, Mapping[str, int]]  # source -> metric -> summed count
    top_posts: tuple[ScoredPost, ...]
    as_of: dt.datetime | None = None  # when the newest metrics behind the score were fetched
    # Distinct human accounts (per source) whose posts linking the paper weigh more than 0.
    posters: int = 0
    heat: Heat | None = None  # set by bot.core.heat.field_select: the cohort it was chosen in
    gain: float | None = None  # score gained over the last 24 h (bot.core.heat.with_rising)
    rising: float | None = None  # the gain, gently decayed by the paper's age
    # A paper of the last days that qualifies only now, shown once (``DeliveryService``).
    second_chance: bool = False

    def total(self, metric: str) -> int:
        return sum(int(m.get(metric, 0)) for m in self.by_source.values())


@dataclass(frozen=True, slots=True)
class Digest:
    """The ranked papers of one window, ready to render."""

    day: dt.date
    window: Window
    categories: tuple[str, ...]  # empty = every category
    papers: tuple[RankedPaper, ...]
    generated_at: dt.datetime
    threshold: float
    failed_sources: Mapping[str, str] = field(default_factory=dict)
    ranking: RankingMode = RankingMode.ABSOLUTE
    sort: HotSort = HotSort.SCORE
