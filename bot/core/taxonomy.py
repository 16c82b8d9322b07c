"""The arXiv category taxonomy: categories, archives, aliases, validation, filtering and search.

The data (``data/taxonomy.json``) is transcribed from arXiv's own definitions in
``arXiv/arxiv-base: arxiv/taxonomy/definitions.py``: every active category (155, aliases
included), every archive (active and the legacy ones that old-style identifiers such as
``solv-int/9901001`` use), which legacy archive each current category subsumed, and arXiv's
category aliases. The ``test`` archive is left out.

Aliases are pairs arXiv treats as one category and lists together on papers (``cs.SY`` and
``eess.SY``). Both ids are in :data:`CATEGORIES` because users know both; :func:`validate_category`
returns the canonical one arXiv names in ``CATEGORY_ALIASES`` (``cs.SY`` → ``eess.SY``,
``math.MP`` → ``math-ph``, ``math.IT`` → ``cs.IT``, ``stat.TH`` → ``math.ST``,
``q-fin.EC`` → ``econ.GN``, ``cs.NA`` → ``math.NA``), and :func:`in_filter` treats the two as equal.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

from bot.core.errors import UnknownCategoryError

__all__ = [
    "ALIASES",
    "ARCHIVES",
    "CATEGORIES",
    "OLD_STYLE_ARCHIVES",
    "POPULAR",
    "SUBSUMED_ARCHIVES",
    "Category",
    "category_name",
    "in_filter",
    "is_archive",
    "search_categories",
    "validate_category",
]


@dataclass(frozen=True, slots=True)
class Category:
    """One arXiv category, e.g. ``cs.LG`` "Machine Learning", archive ``cs``, "Computer Science"."""

    id: str
    name: str
    archive: str
    group: str


def _load() -> dict[str, dict]:
    text = resources.files("bot.core").joinpath("data/taxonomy.json").read_text(encoding="utf-8")
    return json.loads(text)


_DATA = _load()
_GROUPS: dict[str, str] = _DATA["groups"]

#: Every archive id (active and legacy) → its name.
ARCHIVES: Mapping[str, str] = MappingProxyType(
    {aid: info["name"] for aid, info in _DATA["archives"].items()}
)

#: Every active category id, aliases included → its :class:`Category`.
CATEGORIES: Mapping[str, Category] = MappingProxyType(
    {
        cid: Category(
            id=cid,
            name=info["name"],
            archive=info["archive"],
            group=_GROUPS[_DATA["archives"][info["archive"]]["group"]],
        )
        for cid, info in _DATA["categories"].items()
    }
)

#: Alias category id → canonical category id.
ALIASES: Mapping[str, str] = MappingProxyType(dict(_DATA["aliases"]))

#: Legacy archive → the category that replaced it (``chao-dyn`` → ``nlin.CD``).
SUBSUMED_ARCHIVES: Mapping[str, str] = MappingProxyType(
    {aid: info["subsumed_by"] for aid, info in _DATA["archives"].items() if info["subsumed_by"]}
)

#: Archives that existed before April 2007, so may start an old-style identifier.
OLD_STYLE_ARCHIVES: frozenset[str] = frozenset(
    aid for aid, info in _DATA["archives"].items() if info["start"] <= "2007-03"
)

#: What the bot's audience follows most, shown first when autocomplete has nothing typed yet.
POPULAR: tuple[str, ...] = (
    "cs.LG",
    "cs.CV",
    "cs.CL",
    "cs.AI",
    "stat.ML",
    "cs.RO",
    "cs.CR",
    "cs.IR",
    "cs.NE",
    "cs.HC",
    "cs.SE",
    "cs.MA",
    "cs.SD",
    "eess.AS",
    "eess.IV",
    "eess.SP",
    "cs.DC",
    "cs.GR",
    "cs.CY",
    "math.OC",
    "quant-ph",
    "cond-mat.dis-nn",
    "q-bio.NC",
    "physics.comp-ph",
    "econ.EM",
)

_CATEGORY_BY_LOWER = {cid.lower(): cid for cid in CATEGORIES}
_ARCHIVE_BY_LOWER = {aid.lower(): aid for aid in ARCHIVES}
_POPULAR_RANK = {cid: rank for rank, cid in enumerate(POPULAR)}
# Suggestions below this similarity are noise ("cs" for "quantum"), and ones far behind the best
# match would only bury it.
_SUGGEST_CUTOFF = 0.6
_SUGGEST_SPREAD = 0.15
_MAX_SUGGESTIONS = 3
_MAX_ECHO = 64


def _popularity(cid: str) -> tuple[int, str]:
    return (_POPULAR_RANK.get(cid, len(POPULAR)), cid)


def _canonical(cid: str) -> str:
    return ALIASES.get(cid, cid)


def _equivalents(cid: str) -> frozenset[str]:
    """A category with every id arXiv treats as the same one (itself, its alias partner)."""
    canonical = _canonical(cid)
    return frozenset({canonical, *(alias for alias, c in ALIASES.items() if c == canonical)})


def _build_paper_index() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """lower-case id → (equivalent category ids, archives they belong to), for :func:`in_filter`."""
    index: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
    for cid, cat in CATEGORIES.items():
        ids = _equivalents(cid)
        index[cid.lower()] = (ids, frozenset(CATEGORIES[i].archive for i in ids) | {cat.archive})
    for aid in ARCHIVES:
        if aid.lower() in index:
            continue  # single-category archives (hep-th, quant-ph, ...) are already there
        if aid in SUBSUMED_ARCHIVES:
            # Old papers list the legacy archive (chao-dyn) as a category; it now means nlin.CD.
            ids = _equivalents(SUBSUMED_ARCHIVES[aid])
            archives = frozenset(CATEGORIES[i].archive for i in ids) | {aid}
            index[aid.lower()] = (ids | {aid}, archives)
        else:
            # Bare archives (astro-ph, cond-mat, q-bio) were categories on papers before the
            # archive was split into subject classes.
            index[aid.lower()] = (frozenset({aid}), frozenset({aid}))
    return index


_PAPER_INDEX = _build_paper_index()


def _echo(text: str) -> str:
    """The user's text, made safe to quote back inside backticks in one short line."""
    cleaned = " ".join(text.split()).replace("`", "'")
    return cleaned if len(cleaned) <= _MAX_ECHO else cleaned[: _MAX_ECHO - 1] + "…"


def _similarity(key: str, candidate: str) -> float:
    matcher = difflib.SequenceMatcher(None, key, candidate)
    if matcher.real_quick_ratio() < _SUGGEST_CUTOFF:
        return 0.0
    return matcher.ratio()


def _name_similarity(key: str, name: str) -> float:
    if key == name:
        return 1.0
    if len(key) >= 3 and key in name:
        return 0.9
    return _similarity(key, name)


def _suggest(key: str, *, allow_archive: bool) -> list[str]:
    if not key:
        return []
    scores: dict[str, float] = {}

    def offer(result: str, score: float) -> None:
        scores[result] = max(scores.get(result, 0.0), score)

    for cid, cat in CATEGORIES.items():
        offer(
            _canonical(cid),
            max(_similarity(key, cid.lower()), _name_similarity(key, cat.name.lower())),
        )
    for aid, name in ARCHIVES.items():
        score = max(_similarity(key, aid.lower()), _name_similarity(key, name.lower()))
        if aid in SUBSUMED_ARCHIVES:
            offer(SUBSUMED_ARCHIVES[aid], score)
        elif allow_archive or aid in CATEGORIES:
            offer(aid, score)
    if not scores:
        return []
    best = max(scores.values())
    floor = max(_SUGGEST_CUTOFF, best - _SUGGEST_SPREAD)
    ranked = sorted(
        (cid for cid, score in scores.items() if score >= floor),
        key=lambda cid: (-scores[cid], *_popularity(cid)),
    )
    return ranked[:_MAX_SUGGESTIONS]


def validate_category(text: str, *, allow_archive: bool = True) -> str:
    """The canonical id for a category (or archive) typed by a user.

    Case and surrounding whitespace are ignored (``CS.lg`` → ``cs.LG``), aliases map to their
    canonical category (``cs.SY`` → ``eess.SY``) and legacy archives to the category that subsumed
    them (``chao-dyn`` → ``nlin.CD``). Archives (``cs``, ``physics``) are accepted only with
    ``allow_archive``. Anything else raises :class:`UnknownCategoryError` with up to three
    suggestions, matched on ids and on names (``machine learning`` → ``cs.LG``, ``stat.ML``).
    """
    key = text.strip().lower()
    if key in _CATEGORY_BY_LOWER:
        return _canonical(_CATEGORY_BY_LOWER[key])
    if key in _ARCHIVE_BY_LOWER:
        aid = _ARCHIVE_BY_LOWER[key]
        if aid in SUBSUMED_ARCHIVES:
            return SUBSUMED_ARCHIVES[aid]
        if allow_archive:
            return aid
        # Aliases are left out: math.IT would be suggested as its canonical cs.IT, not a math one.
        members = sorted(
            (c.id for c in CATEGORIES.values() if c.archive == aid and c.id not in ALIASES),
            key=_popularity,
        )
        raise UnknownCategoryError(_echo(text), members[:_MAX_SUGGESTIONS])
    raise UnknownCategoryError(_echo(text), _suggest(key, allow_archive=allow_archive))


def category_name(cat_id: str) -> str:
    """The full name of a category or archive; an unknown id is returned as it is.

    Unknown ids are echoed rather than refused because papers carry whatever categories arXiv
    sends, including ones added after this taxonomy was transcribed, and rendering must not fail.
    """
    key = cat_id.strip().lower()
    if key in _CATEGORY_BY_LOWER:
        return CATEGORIES[_CATEGORY_BY_LOWER[key]].name
    if key in _ARCHIVE_BY_LOWER:
        return ARCHIVES[_ARCHIVE_BY_LOWER[key]]
    return cat_id


def is_archive(text: str) -> bool:
    """Whether ``text`` names an arXiv archive (``cs``, ``hep-th``, legacy ``solv-int``…)."""
    return text.strip().lower() in _ARCHIVE_BY_LOWER


def in_filter(paper_categories: Iterable[str], wanted: Iterable[str]) -> bool:
    """Whether a paper with these categories (cross-lists included) belongs in a ``wanted`` feed.

    True when any of the paper's categories is a wanted category (aliases count as equal) or lies
    in a wanted archive (``cs`` wants ``cs.LG``; ``physics`` wants ``physics.optics`` but not
    ``astro-ph.GA``, which is another archive of the same group). An empty ``wanted`` wants
    everything.
    """
    wanted_categories: set[str] = set()
    wanted_archives: set[str] = set()
    for item in wanted:
        key = item.strip().lower()
        if not key:
            continue
        if key in _CATEGORY_BY_LOWER:
            wanted_categories.add(_canonical(_CATEGORY_BY_LOWER[key]))
        elif key in _ARCHIVE_BY_LOWER:
            aid = _ARCHIVE_BY_LOWER[key]
            if aid in SUBSUMED_ARCHIVES:
                wanted_categories.add(SUBSUMED_ARCHIVES[aid])
            else:
                wanted_archives.add(aid)
        else:
            wanted_categories.add(item.strip())
    if not wanted_categories and not wanted_archives:
        return True
    for paper_category in paper_categories:
        known = _PAPER_INDEX.get(paper_category.strip().lower())
        if known is not None:
            ids, archives = known
        else:
            # A category newer than this taxonomy still belongs to the archive its id names.
            cid = paper_category.strip()
            ids, archives = frozenset({cid}), frozenset({cid.split(".", 1)[0]})
        if not ids.isdisjoint(wanted_categories) or not archives.isdisjoint(wanted_archives):
            return True
    return False


def search_categories(text: str, limit: int = 25) -> list[Category]:
    """Categories matching ``text`` for autocomplete, best first, at most ``limit``.

    Ids starting with the text come first, then categories whose subject class or a word of their
    name starts with it, then any other substring of id or name; ties go to popular categories.
    With nothing typed, :data:`POPULAR` comes first and then every other category by id.
    """
    if limit <= 0:
        return []
    query = " ".join(text.split()).lower()
    if not query:
        ordered = sorted(CATEGORIES, key=_popularity)
        return [CATEGORIES[cid] for cid in ordered[:limit]]

    def tier(cat: Category) -> int | None:
        cid = cat.id.lower()
        name = cat.name.lower()
        if cid.startswith(query):
            return 0
        subject = cid.split(".", 1)[1] if "." in cid else ""
        words = name.replace("-", " ").replace(",", " ").split()
        if (
            subject.startswith(query)
            or name.startswith(query)
            or any(w.startswith(query) for w in words)
        ):
            return 1
        if query in cid or query in name:
            return 2
        return None

    ranked = []
    for cat in CATEGORIES.values():
        rank = tier(cat)
        if rank is not None:
            ranked.append((rank, *_popularity(cat.id), cat))
    ranked.sort(key=lambda row: row[:3])
    return [row[3] for row in ranked[:limit]]
