"""Tests for arXiv identifier parsing, normalisation and extraction."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.arxiv_ids import (
    ArxivId,
    extract_arxiv_ids,
    is_arxiv_id,
    normalize_arxiv_id,
    parse_arxiv_id,
)
from bot.core.errors import InvalidArxivIdError, UserFacingError
from bot.core.taxonomy import ARCHIVES, CATEGORIES, OLD_STYLE_ARCHIVES

# Timing on a shared CI machine is not what these properties are about.
props = settings(deadline=None)

# ---------------------------------------------------------------------------------------------
# Explicit examples


@pytest.mark.parametrize(
    ("text", "expected_id", "expected_version"),
    [
        ("2106.14108", "2106.14108", None),
        ("2106.14108v2", "2106.14108", 2),
        ("2106.14108V2", "2106.14108", 2),
        ("0704.0001", "0704.0001", None),
        ("1412.9999v12", "1412.9999", 12),
        ("1501.00001", "1501.00001", None),
        ("9912.12345", "9912.12345", None),
        ("  2106.14108\n", "2106.14108", None),
        ("arXiv:2106.14108", "2106.14108", None),
        ("ARXIV:2106.14108v3", "2106.14108", 3),
        ("arxiv: 2106.14108", "2106.14108", None),
        ("hep-th/9901001", "hep-th/9901001", None),
        ("hep-th/9901001v1", "hep-th/9901001", 1),
        ("HEP-TH/9901001", "hep-th/9901001", None),
        ("arXiv:hep-th/9108001", "hep-th/9108001", None),
        ("astro-ph/0703999", "astro-ph/0703999", None),
        ("math-ph/0001001", "math-ph/0001001", None),
        ("solv-int/9901001", "solv-int/9901001", None),
        ("cmp-lg/9404001", "cmp-lg/9404001", None),
        ("q-alg/9712001", "q-alg/9712001", None),
        ("cond-mat.stat-mech/0101001", "cond-mat/0101001", None),
        ("https://arxiv.org/abs/2106.14108", "2106.14108", None),
        ("http://arxiv.org/abs/2106.14108v1", "2106.14108", 1),
        ("https://www.arxiv.org/abs/2106.14108", "2106.14108", None),
        ("arxiv.org/abs/2106.14108", "2106.14108", None),
        ("https://export.arxiv.org/abs/2106.14108", "2106.14108", None),
        ("https://arxiv.org/pdf/2106.14108", "2106.14108", None),
        ("https://arxiv.org/pdf/2106.14108v2", "2106.14108", 2),
        ("https://arxiv.org/pdf/2106.14108v2.pdf", "2106.14108", 2),
        ("https://arxiv.org/pdf/2106.14108.pdf", "2106.14108", None),
        ("https://arxiv.org/pdf/hep-th/9901001v1.pdf", "hep-th/9901001", 1),
        ("https://arxiv.org/html/2106.14108v2", "2106.14108", 2),
        ("https://arxiv.org/html/2106.14108v2/#S3", "2106.14108", 2),
        ("https://arxiv.org/format/2106.14108", "2106.14108", None),
        ("https://arxiv.org/abs/2106.14108/", "2106.14108", None),
        ("https://arxiv.org/abs/2106.14108?context=cs.LG", "2106.14108", None),
        ("https://arxiv.org/abs/2106.14108#comments", "2106.14108", None),
        ("HTTPS://ARXIV.ORG/ABS/2106.14108", "2106.14108", None),
        ("https://huggingface.co/papers/2106.14108", "2106.14108", None),
        ("https://hf.co/papers/2106.14108", "2106.14108", None),
        ("http://www.huggingface.co/papers/2106.14108", "2106.14108", None),
        ("https://www.alphaxiv.org/abs/2106.14108v3", "2106.14108", 3),
        ("alphaxiv.org/abs/2106.14108", "2106.14108", None),
        ("<https://arxiv.org/abs/2106.14108>", "2106.14108", None),
        ("10.48550/arXiv.2106.14108", "2106.14108", None),
        ("https://doi.org/10.48550/arXiv.2106.14108", "2106.14108", None),
        ("doi:10.48550/ARXIV.2106.14108", "2106.14108", None),
        ("https://doi.org/10.48550/arXiv.math/0703055", "math/0703055", None),
    ],
)
def test_parse_accepts(text: str, expected_id: str, expected_version: int | None) -> None:
    parsed = parse_arxiv_id(text)
    assert parsed == ArxivId(expected_id, expected_version)
    assert normalize_arxiv_id(text) == expected_id
    assert is_arxiv_id(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "<>",
        "hello",
        "arXiv",
        "arXiv:",
        "v2",
        "2106",
        "2106.",
        ".14108",
        "2106.14108v",
        "2106.14108v0",
        "2106.14108v01",
        "2106.14108.",
        "2106.141089",  # 6 digits
        "2106.1410",  # 4 digits after 1501
        "1412.12345",  # 5 digits before 1501
        "1501.1234",
        "0612.1234",  # new style before April 2007
        "0703.0001",
        "0513.0001",
        "2113.00001",  # month 13
        "2100.12345",  # month 00
        "2106.00000",  # number zero
        "0704.0000",
        "2021.12.01",  # dates
        "2021-06-14",
        "14/06/2021",
        "12:30",
        "10.1145/3292500.3330701",  # another publisher's DOI
        "https://doi.org/10.1145/3292500.3330701",
        "10.48550/arXiv.2113.00001",  # arXiv's DOI prefix does not make a bad id good
        "hep-th/0704001",  # old style after March 2007
        "hep-th/9107001",  # before August 1991
        "hep-th/5001001",
        "hep-th/9913001",
        "hep-th/9901000",
        "hep-th/990101",
        "hep-th/99010011",
        "stat/0101001",  # stat started with the new scheme
        "eess/0101001",
        "foo-bar/9901001",
        "math.XX/0309136",  # no such subject class
        "math.GT0309136",
        "hep-th9901001",
        "https://example.com/abs/2106.14108",
        "https://notarxiv.org/abs/2106.14108",
        "https://arxiv.org.evil.example/abs/2106.14108",
        "https://arxiv.org/list/cs.LG/recent",
        "https://arxiv.org/abs/",
        "https://arxiv.org/abs/2106.14108 https://arxiv.org/abs/2106.14109",  # two, not one
        "https://huggingface.co/2106.14108",
        "https://github.com/papers/2106.14108",
        "see arXiv:2106.14108",
        "2106.14108 is great",
        "٢١٠٦.١٤١٠٨",  # digits of another script
        "２１０６.１４１０８",  # full-width digits
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidArxivIdError):
        parse_arxiv_id(text)
    assert not is_arxiv_id(text)


def test_error_is_user_facing_with_a_clear_message() -> None:
    with pytest.raises(InvalidArxivIdError) as caught:
        parse_arxiv_id("10.1000/xyz")
    assert isinstance(caught.value, UserFacingError)
    assert str(caught.value) == (
        "`10.1000/xyz` is not an arXiv id or arXiv URL "
        "(expected e.g. 2106.14108 or https://arxiv.org/abs/2106.14108)."
    )


def test_error_names_the_impossible_part() -> None:
    with pytest.raises(InvalidArxivIdError, match="month 13 does not exist"):
        parse_arxiv_id("2113.00001")
    with pytest.raises(InvalidArxivIdError, match="5-digit"):
        parse_arxiv_id("2106.1410")
    with pytest.raises(InvalidArxivIdError, match="got nothing"):
        parse_arxiv_id("  ")


def test_error_message_is_short_and_keeps_markdown_intact() -> None:
    with pytest.raises(InvalidArxivIdError) as caught:
        parse_arxiv_id("`" * 10 + "x" * 500)
    message = str(caught.value)
    assert len(message) < 200
    assert message.count("`") == 2


def test_canonical_old_style_id_drops_the_subject_class() -> None:
    # arXiv's preferred external form of math.CA/0611800v2 is arXiv:math/0611800v2.
    assert parse_arxiv_id("math.GT/0309136") == ArxivId("math/0309136", None)
    assert parse_arxiv_id("math.CA/0611800v2").versioned == "math/0611800v2"
    assert normalize_arxiv_id("arXiv:math.gt/0309136") == "math/0309136"
    assert normalize_arxiv_id("https://arxiv.org/abs/math.GT/0309136v1") == "math/0309136"
    assert normalize_arxiv_id("math/0309136") == "math/0309136"


def test_arxiv_doi_names_the_paper() -> None:
    assert normalize_arxiv_id("10.48550/arXiv.2106.14108") == "2106.14108"
    assert extract_arxiv_ids("doi: https://doi.org/10.48550/arXiv.2106.14108") == ["2106.14108"]
    assert not is_arxiv_id("10.1145/3292500.3330701")


def test_arxiv_id_str_and_versioned() -> None:
    assert str(ArxivId("2106.14108", 2)) == "2106.14108"
    assert ArxivId("2106.14108", 2).versioned == "2106.14108v2"
    assert ArxivId("2106.14108", None).versioned == "2106.14108"
    assert f"{parse_arxiv_id('hep-th/9901001v3')}" == "hep-th/9901001"
    with pytest.raises(AttributeError):
        parse_arxiv_id("2106.14108").id = "x"  # type: ignore[misc]


def test_every_old_style_archive_is_in_the_taxonomy() -> None:
    assert OLD_STYLE_ARCHIVES.issubset(ARCHIVES)
    assert {"hep-th", "math", "cs", "solv-int", "chao-dyn", "alg-geom", "q-bio"} <= (
        OLD_STYLE_ARCHIVES
    )
    # These archives began after April 2007, so no old-style id can name them.
    assert not {"stat", "q-fin", "eess", "econ"} & OLD_STYLE_ARCHIVES


# ---------------------------------------------------------------------------------------------
# Extraction, explicit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://arxiv.org/abs/2106.14108", ["2106.14108"]),
        (
            "New paper! https://arxiv.org/abs/2106.14108v2 (code: https://github.com/x/y) "
            "builds on arXiv:hep-th/9901001 and https://huggingface.co/papers/2301.00001.",
            ["2106.14108", "hep-th/9901001", "2301.00001"],
        ),
        (
            "https://arxiv.org/pdf/2106.14108v1.pdf and again arxiv.org/abs/2106.14108 and "
            "arXiv:2106.14108v3",
            ["2106.14108"],
        ),
        ("[paper](https://arxiv.org/abs/2106.14108)", ["2106.14108"]),
        ("<https://arxiv.org/abs/2106.14108>", ["2106.14108"]),
        ('"https://arxiv.org/abs/2106.14108"', ["2106.14108"]),
        ("https://arxiv.org/html/2106.14108v2/x1.png", ["2106.14108"]),
        ("https://arxiv.org/abs/math.GT/0309136", ["math/0309136"]),
        ("arXiv:2301.00002, arXiv:2301.00001.", ["2301.00002", "2301.00001"]),
        ("(arXiv: 2301.00002)", ["2301.00002"]),
        ("https://t.co/redirect?u=https://arxiv.org/abs/2301.00002", ["2301.00002"]),
        # Bare numbers in free text are not taken for ids.
        ("We got 2106.14108 points on 2301.00001", []),
        ("version 2106.14108v2", []),
        # ...nor ids embedded in longer digit runs or words.
        ("arXiv:12106.14108", []),
        ("https://arxiv.org/abs/2106.141089", []),
        ("https://arxiv.org/abs/2106.14108999", []),
        ("https://arxiv.org/abs/2106.14108abc", []),
        ("https://arxiv.org/abs/2106.14108.5", []),
        ("myarXiv:2106.14108", []),
        # ...nor other publishers' DOIs or unrelated hosts.
        ("https://doi.org/10.1145/3292500.3330701", []),
        ("10.1103/PhysRevD.2106.14108", []),
        ("https://example.com/abs/2106.14108", []),
        ("https://evil.example/arxiv.org/abs/2106.14108", []),
        ("https://notarxiv.org/abs/2106.14108", []),
        ("https://arxiv.org.evil.example/abs/2106.14108", []),
        ("https://nothf.co/papers/2106.14108", []),
        ("https://github.com/huggingface.co/papers/2106.14108", []),
        # Impossible ids inside arXiv URLs are skipped, the good ones kept.
        (
            "arxiv.org/abs/2113.00001 arxiv.org/abs/1412.12345 arxiv.org/abs/2301.00001",
            ["2301.00001"],
        ),
        ("https://arxiv.org/list/cs.LG/recent", []),
        ("", []),
    ],
)
def test_extract(text: str, expected: list[str]) -> None:
    assert extract_arxiv_ids(text) == expected


# ---------------------------------------------------------------------------------------------
# Properties


def _new_style() -> st.SearchStrategy[tuple[str, str]]:
    """(id as written, canonical id) for a valid new-style id."""

    def build(yy: int, mm: int, number: int) -> tuple[str, str]:
        digits = 5 if yy * 100 + mm >= 1501 else 4
        number = number % (10**digits) or 1
        ident = f"{yy:02d}{mm:02d}.{number:0{digits}d}"
        return ident, ident

    return st.builds(build, st.integers(7, 99), st.integers(1, 12), st.integers(1, 99_999)).filter(
        lambda pair: pair[0] >= "0704"
    )


def _old_style() -> st.SearchStrategy[tuple[str, str]]:
    """(id as written, canonical id) for a valid old-style id, sometimes with a subject class."""
    months = [
        (y % 100, m)
        for y in range(1991, 2008)
        for m in range(1, 13)
        if (1991, 8) <= (y, m) <= (2007, 3)
    ]
    archives = sorted(OLD_STYLE_ARCHIVES)

    @st.composite
    def build(draw: st.DrawFn) -> tuple[str, str]:
        archive = draw(st.sampled_from(archives))
        yy, mm = draw(st.sampled_from(months))
        number = draw(st.integers(1, 999))
        canonical = f"{archive}/{yy:02d}{mm:02d}{number:03d}"
        subjects = sorted(c for c in CATEGORIES if c.startswith(f"{archive}."))
        prefix = archive
        if subjects and draw(st.booleans()):
            prefix = draw(st.sampled_from(subjects))
        return f"{prefix}/{yy:02d}{mm:02d}{number:03d}", canonical

    return build()


ids = st.one_of(_new_style(), _old_style())
versions = st.one_of(st.none(), st.integers(1, 500))

Form = Callable[[str], str]
# Forms that also say which version; each is one of the ways a paper is linked or cited.
VERSIONED_FORMS: list[Form] = [
    lambda v: v,
    lambda v: f"arXiv:{v}",
    lambda v: f"arxiv:{v}",
    lambda v: f"ARXIV: {v}",
    lambda v: f"https://arxiv.org/abs/{v}",
    lambda v: f"http://arxiv.org/abs/{v}",
    lambda v: f"https://www.arxiv.org/abs/{v}",
    lambda v: f"http://www.arxiv.org/abs/{v}",
    lambda v: f"arxiv.org/abs/{v}",
    lambda v: f"https://export.arxiv.org/abs/{v}",
    lambda v: f"http://export.arxiv.org/abs/{v}",
    lambda v: f"https://arxiv.org/pdf/{v}",
    lambda v: f"https://arxiv.org/pdf/{v}.pdf",
    lambda v: f"http://export.arxiv.org/pdf/{v}.pdf",
    lambda v: f"https://arxiv.org/html/{v}",
    lambda v: f"https://arxiv.org/html/{v}/",
    lambda v: f"https://arxiv.org/format/{v}",
    lambda v: f"https://arxiv.org/abs/{v}/",
    lambda v: f"https://arxiv.org/abs/{v}?context=cs",
    lambda v: f"https://arxiv.org/abs/{v}#comments",
    lambda v: f"https://huggingface.co/papers/{v}",
    lambda v: f"https://www.huggingface.co/papers/{v}",
    lambda v: f"http://hf.co/papers/{v}",
    lambda v: f"https://hf.co/papers/{v}?utm_source=x",
    lambda v: f"https://alphaxiv.org/abs/{v}",
    lambda v: f"https://www.alphaxiv.org/abs/{v}",
    lambda v: f"http://alphaxiv.org/abs/{v}",
]
# arXiv's DOIs name a paper, never a version.
UNVERSIONED_FORMS: list[Form] = [
    lambda i: f"10.48550/arXiv.{i}",
    lambda i: f"https://doi.org/10.48550/arXiv.{i}",
    lambda i: f"doi:10.48550/arXiv.{i}",
]
# Bare ids are only an id when they are the whole text.
EXTRACTABLE_FORMS = VERSIONED_FORMS[1:]


def _with_version(written: str, version: int | None) -> str:
    return written if version is None else f"{written}v{version}"


@props
@given(ids, versions, st.sampled_from(VERSIONED_FORMS))
def test_round_trip_through_every_form(
    ident: tuple[str, str], version: int | None, form: Form
) -> None:
    written, canonical = ident
    text = form(_with_version(written, version))
    assert parse_arxiv_id(text) == ArxivId(canonical, version)
    assert parse_arxiv_id(f"  {text}\t") == ArxivId(canonical, version)
    assert is_arxiv_id(text)


@props
@given(ids, st.sampled_from(UNVERSIONED_FORMS))
def test_round_trip_through_arxiv_dois(ident: tuple[str, str], form: Form) -> None:
    written, canonical = ident
    assert parse_arxiv_id(form(written)) == ArxivId(canonical, None)


@props
@given(ids, versions, st.sampled_from(VERSIONED_FORMS + UNVERSIONED_FORMS))
def test_normalize_is_idempotent(ident: tuple[str, str], version: int | None, form: Form) -> None:
    written, canonical = ident
    once = normalize_arxiv_id(form(_with_version(written, version)))
    assert once == canonical
    assert normalize_arxiv_id(once) == once
    assert parse_arxiv_id(parse_arxiv_id(once).versioned) == ArxivId(once, None)


@props
@given(ids, versions)
def test_versioned_round_trips(ident: tuple[str, str], version: int | None) -> None:
    written, _ = ident
    parsed = parse_arxiv_id(_with_version(written, version))
    assert parse_arxiv_id(parsed.versioned) == parsed


_fillers = st.sampled_from([" ", "\n", " and ", ", ", "; see ", " (", ") ", " — ", " | "])
_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", max_size=30)


@props
@given(
    st.lists(
        st.tuples(ids, versions, st.sampled_from(EXTRACTABLE_FORMS + UNVERSIONED_FORMS)),
        min_size=1,
        max_size=6,
    ),
    _words,
    _words,
    st.data(),
)
def test_extraction_finds_exactly_the_linked_papers(
    links: list[tuple[tuple[str, str], int | None, Form]],
    before: str,
    after: str,
    data: st.DataObject,
) -> None:
    parts = [before]
    for (written, _), version, form in links:
        is_doi = form in UNVERSIONED_FORMS
        parts.append(data.draw(_fillers))
        parts.append(form(written if is_doi else _with_version(written, version)))
    parts.append(data.draw(_fillers))
    parts.append(after)
    expected = list(dict.fromkeys(canonical for (_, canonical), _, _ in links))
    assert extract_arxiv_ids("".join(parts)) == expected


def _digits_for(yymm: str) -> int:
    return 5 if yymm >= "1501" else 4


def _old_style_month(yymm: str) -> bool:
    return yymm >= "9108" or yymm <= "0703"


def _look_alikes() -> st.SearchStrategy[str]:
    """Strings shaped like arXiv ids that arXiv never issued, and other things people paste."""
    d = st.integers
    bad_month = st.builds(
        lambda yy, mm, n: f"{yy:02d}{mm:02d}.{n:05d}",
        d(7, 99),
        st.one_of(st.just(0), d(13, 99)),
        d(1, 99_999),
    )
    too_early = st.builds(
        lambda yy, mm, n: f"{yy:02d}{mm:02d}.{n:04d}",
        d(0, 7),
        d(1, 12),
        d(1, 9_999),
    ).filter(lambda s: s < "0704")
    wrong_digits = st.builds(
        lambda yy, mm, k, n: f"{yy:02d}{mm:02d}.{n % 10**k:0{k}d}",
        d(7, 99),
        d(1, 12),
        d(1, 7),
        d(1, 9_999_999),
    ).filter(lambda s: len(s.split(".")[1]) != _digits_for(s.split(".")[0]))
    zero_number = st.builds(lambda yy, mm: f"{yy:02d}{mm:02d}.00000", d(15, 99), d(1, 12))
    old_out_of_range = st.builds(
        lambda archive, yy, mm, n: f"{archive}/{yy:02d}{mm:02d}{n:03d}",
        st.sampled_from(sorted(OLD_STYLE_ARCHIVES)),
        d(0, 99),
        d(1, 12),
        d(1, 999),
    ).filter(lambda s: not _old_style_month(s.split("/")[1][:4]))
    unknown_archive = st.builds(
        lambda name, n: f"{name}/9901{n:03d}",
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=10),
        d(1, 999),
    ).filter(lambda s: s.split("/")[0] not in OLD_STYLE_ARCHIVES)
    dates = st.builds(
        lambda y, m, day, sep: f"{y}{sep}{m:02d}{sep}{day:02d}",
        d(1990, 2100),
        d(1, 12),
        d(1, 31),
        st.sampled_from(["-", ".", "/"]),
    )
    other_dois = st.builds(
        lambda registrant, a, b: f"10.{registrant}/{a}.{b}",
        d(1000, 99_999).filter(lambda r: r != 48550),
        d(0, 9_999_999),
        d(0, 9_999_999),
    )
    version_only = st.builds(lambda n: f"v{n}", d(0, 100))
    bad_version = st.builds(lambda n: f"2106.14108v0{n}", d(0, 9))
    words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz .,:;!?-", max_size=40)
    return st.one_of(
        bad_month,
        too_early,
        wrong_digits,
        zero_number,
        old_out_of_range,
        unknown_archive,
        dates,
        other_dois,
        version_only,
        bad_version,
        words,
    )


@props
@given(_look_alikes())
def test_look_alikes_are_rejected(text: str) -> None:
    assert not is_arxiv_id(text)
    with pytest.raises(InvalidArxivIdError):
        parse_arxiv_id(text)
    # Not even inside an arXiv URL or after "arXiv:" do they become ids.
    assert extract_arxiv_ids(f"https://arxiv.org/abs/{text} arXiv:{text}") == []


@props
@given(ids, st.integers(0, 9))
def test_ids_inside_longer_digit_runs_are_not_extracted(ident: tuple[str, str], digit: int) -> None:
    written, _ = ident
    assert extract_arxiv_ids(f"https://arxiv.org/abs/{written}{digit}") == []
    assert extract_arxiv_ids(f"arXiv:{digit}{written}") == []


@props
@given(ids)
def test_bare_ids_in_free_text_are_not_extracted(ident: tuple[str, str]) -> None:
    written, _ = ident
    assert extract_arxiv_ids(f"look at {written} today") == []
