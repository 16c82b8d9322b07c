"""arXiv identifiers: parsing, validating, normalising and extracting them from URLs and text.

Forms accepted (arXiv's rules in https://info.arxiv.org/help/arxiv_identifier.html):

* new style ``YYMM.NNNN`` from 0704 to 1412 and ``YYMM.NNNNN`` from 1501 on (``2106.14108``),
  YY ≥ 07, month 01 to 12, number not all zeros;
* old style ``archive[.SC]/YYMMNNN`` from 9108 to 0703 (``hep-th/9901001``, ``math.GT/0309136``),
  where the archive is one that existed then (:data:`bot.core.taxonomy.OLD_STYLE_ARCHIVES`) and the
  optional subject class is a category of that archive;
* both styles with an optional version ``vN`` (N ≥ 1, no leading zero) and an optional
  ``arXiv:`` prefix, in any case;
* URLs on arxiv.org / export.arxiv.org (``/abs/``, ``/pdf/`` with or without ``.pdf``, ``/html/``,
  ``/format/``), hf.co / huggingface.co ``/papers/`` and alphaxiv.org ``/abs/``, http or https,
  with or without ``www.``, with or without the scheme, with a trailing slash, query or fragment;
* arXiv's DataCite DOIs, ``10.48550/arXiv.2106.14108`` (also as ``doi:`` or a doi.org URL).

Decisions, each pinned by a test:

* **Canonical old-style ids drop the subject class**: ``math.GT/0309136`` → ``math/0309136``.
  arXiv's "identifier for services" table gives ``arXiv:math/0611800v2`` as the preferred external
  form of ``math.CA/0611800v2``; arxiv-base's ``Identifier`` builds ``id`` as
  ``archive/YYMMNNN``; and the DataCite DOIs read ``10.48550/arXiv.math/0703055``. So one
  paper has one key in storage whichever form it was linked by.
  The archive is lower-cased, as arXiv writes every archive.
* **arXiv DOIs are accepted** by :func:`parse_arxiv_id` and :func:`extract_arxiv_ids`:
  ``10.48550/arXiv.<id>`` is the DOI arXiv itself mints for the paper and prints on every abstract
  page, so it names exactly one paper. Every other DOI (``10.1145/…``) is refused.
* **Bare new-style ids in free text are not extracted**: a ``2106.14108`` in a tweet may be a
  price, a version or a figure, and posts are read through their expanded URLs anyway. In free
  text an id counts only after ``arXiv:``, inside an arXiv / Hugging Face / alphaXiv URL or as an
  arXiv DOI. An id must not continue into more digits or letters, and a URL's host must start the
  URL (``https://evil.example/arxiv.org/abs/…`` and ``notarxiv.org`` do not count).
* :func:`is_arxiv_id` is true exactly when :func:`parse_arxiv_id` would succeed (URLs included).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.core.errors import InvalidArxivIdError
from bot.core.taxonomy import CATEGORIES, OLD_STYLE_ARCHIVES

__all__ = ["ArxivId", "extract_arxiv_ids", "is_arxiv_id", "normalize_arxiv_id", "parse_arxiv_id"]

_EXAMPLES = "expected e.g. 2106.14108 or https://arxiv.org/abs/2106.14108"
_MAX_ECHO = 80
_FIRST_NEW_STYLE = 704  # April 2007
_FIVE_DIGITS_FROM = 1501  # January 2015
_FIRST_OLD_STYLE = (1991, 8)
_LAST_OLD_STYLE = (2007, 3)

_CATEGORY_BY_LOWER = {cid.lower(): cid for cid in CATEGORIES}

# Longest first so that "math-ph" is tried before "math".
_ARCHIVE_ALTERNATION = "|".join(
    re.escape(a) for a in sorted(OLD_STYLE_ARCHIVES, key=lambda a: (-len(a), a))
)

# The shape only; dates, digit counts and subject classes are checked in Python so that a wrong
# value gets a precise message instead of "no match". [0-9], not \d, which also matches other
# scripts' digits ("٢١٠٦") that arXiv never uses.
_ID = (
    r"(?:"
    r"(?P<yymm>[0-9]{4})\.(?P<num>[0-9]{4,5})"
    r"|"
    rf"(?P<archive>{_ARCHIVE_ALTERNATION})(?:\.(?P<subject>[a-z][a-z-]*[a-z]))?"
    r"/(?P<old_yymm>[0-9]{4})(?P<old_num>[0-9]{3})"
    r")"
    r"(?:v(?P<version>[0-9]+))?"
)
_PREFIX = r"arxiv:\s*"
_URL = (
    r"(?:https?://)?(?:www\.)?"
    r"(?:(?:export\.)?arxiv\.org/(?:abs|pdf|html|format)|(?:hf\.co|huggingface\.co)/papers"
    r"|alphaxiv\.org/abs)/"
)
_DOI = r"(?:(?:https?://)?(?:dx\.)?doi\.org/|doi:\s*)?10\.48550/arxiv\."
# What may follow an id at the end of a URL; anything else makes it "not one URL".
_URL_TAIL = r"(?:\.pdf)?/?(?:[?#]\S*)?"

_BARE_RE = re.compile(rf"(?:{_PREFIX})?{_ID}", re.IGNORECASE)
_URL_RE = re.compile(rf"{_URL}{_ID}{_URL_TAIL}", re.IGNORECASE)
_DOI_RE = re.compile(rf"{_DOI}{_ID}", re.IGNORECASE)
_FIND_RE = re.compile(
    # A match may not start inside a word, a host name or a path: that keeps out
    # "notarxiv.org", "https://other.example/arxiv.org/abs/..." and "xarXiv:...".
    rf"(?<![\w./:@-])(?:{_URL}|{_PREFIX}|{_DOI}){_ID}(?:\.pdf)?"
    # ...and an id may not run on into more digits, letters or ".digits".
    r"(?![\w]|\.\w)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ArxivId:
    """A normalised arXiv id (``2106.14108``, ``hep-th/9901001``) and its version, if any."""

    id: str
    version: int | None = None

    def __str__(self) -> str:
        return self.id

    @property
    def versioned(self) -> str:
        """The id with its version (``2106.14108v2``), or the bare id when it has none."""
        return self.id if self.version is None else f"{self.id}v{self.version}"


def _echo(text: str) -> str:
    """The user's text, safe to quote inside backticks on one short line."""
    cleaned = " ".join(text.split()).replace("`", "'")
    return cleaned if len(cleaned) <= _MAX_ECHO else cleaned[: _MAX_ECHO - 1] + "…"


def _check_version(version: str | None) -> str | None:
    # Versions count from v1 and arXiv never pads them, so "v0" and "v01" name nothing.
    if version is not None and version.startswith("0"):
        return f"version v{version} does not exist, versions start at v1"
    return None


def _from_match(match: re.Match[str]) -> ArxivId | str:
    """The id a regex match names, or the reason it names none."""
    version = match.group("version")
    problem = _check_version(version)
    if problem:
        return problem
    parsed_version = int(version) if version is not None else None

    if match.group("yymm") is not None:
        yymm, num = match.group("yymm"), match.group("num")
        month = int(yymm[2:])
        if not 1 <= month <= 12:
            return f"month {yymm[2:]} does not exist"
        if int(yymm) < _FIRST_NEW_STYLE:
            return "identifiers like YYMM.NNNNN start at 0704, April 2007"
        digits = 5 if int(yymm) >= _FIVE_DIGITS_FROM else 4
        if len(num) != digits:
            return f"papers from {yymm} have {digits}-digit numbers"
        if int(num) == 0:
            return "paper numbers start at 1"
        return ArxivId(f"{yymm}.{num}", parsed_version)

    archive = match.group("archive").lower()
    subject = match.group("subject")
    if subject is not None and f"{archive}.{subject}".lower() not in _CATEGORY_BY_LOWER:
        return f"{archive}.{subject} is not an arXiv category"
    yymm, num = match.group("old_yymm"), match.group("old_num")
    yy, month = int(yymm[:2]), int(yymm[2:])
    if not 1 <= month <= 12:
        return f"month {yymm[2:]} does not exist"
    year = 1900 + yy if yy >= 91 else 2000 + yy
    if not _FIRST_OLD_STYLE <= (year, month) <= _LAST_OLD_STYLE:
        return "identifiers like archive/YYMMNNN run from 9108 to 0703, March 2007"
    if int(num) == 0:
        return "paper numbers start at 1"
    # The subject class is dropped: arXiv's canonical form is archive/YYMMNNN (module docstring).
    return ArxivId(f"{archive}/{yymm}{num}", parsed_version)


def parse_arxiv_id(text: str) -> ArxivId:
    """The one arXiv id that ``text`` is, as an id, an ``arXiv:`` id, an arXiv URL or arXiv DOI.

    Surrounding whitespace and the ``<…>`` Discord users put around links are ignored. Raises
    :class:`InvalidArxivIdError` with a message fit to show the user otherwise.
    """
    stripped = text.strip()
    if stripped.startswith("<") and stripped.endswith(">"):
        stripped = stripped[1:-1].strip()
    if not stripped:
        raise InvalidArxivIdError(f"Expected an arXiv id or arXiv URL ({_EXAMPLES}), got nothing.")
    for pattern in (_BARE_RE, _URL_RE, _DOI_RE):
        match = pattern.fullmatch(stripped)
        if match is None:
            continue
        result = _from_match(match)
        if isinstance(result, ArxivId):
            return result
        raise InvalidArxivIdError(
            f"`{_echo(stripped)}` is not a valid arXiv id: {result}; {_EXAMPLES}."
        )
    raise InvalidArxivIdError(f"`{_echo(stripped)}` is not an arXiv id or arXiv URL ({_EXAMPLES}).")


def normalize_arxiv_id(text: str) -> str:
    """The canonical id without version (``arXiv:2106.14108v2`` → ``2106.14108``)."""
    return parse_arxiv_id(text).id


def is_arxiv_id(text: str) -> bool:
    """Whether :func:`parse_arxiv_id` accepts ``text``."""
    try:
        parse_arxiv_id(text)
    except InvalidArxivIdError:
        return False
    return True


def extract_arxiv_ids(text: str) -> list[str]:
    """Every arXiv id linked or cited in ``text``, canonical and without version, in order, once.

    Counts arXiv / Hugging Face / alphaXiv URLs, ``arXiv:`` ids and arXiv DOIs; bare numbers do
    not count (see the module docstring).
    """
    found: dict[str, None] = {}
    for match in _FIND_RE.finditer(text):
        result = _from_match(match)
        if isinstance(result, ArxivId):
            found.setdefault(result.id, None)
    return list(found)
