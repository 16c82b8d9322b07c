"""Tests for the arXiv taxonomy: data, validation, suggestions, filtering and search."""

from __future__ import annotations

import dataclasses

import pytest

from bot.core.errors import UnknownCategoryError, UserFacingError
from bot.core.taxonomy import (
    ALIASES,
    ARCHIVES,
    CATEGORIES,
    POPULAR,
    SUBSUMED_ARCHIVES,
    Category,
    category_name,
    in_filter,
    is_archive,
    search_categories,
    validate_category,
)

# ---------------------------------------------------------------------------------------------
# The data


def test_counts() -> None:
    # arXiv's definitions list 155 active categories, aliases included.
    assert len(CATEGORIES) == 155
    assert len(ARCHIVES) == 38
    per_archive = {
        "cs": 40,
        "math": 32,
        "physics": 22,
        "q-bio": 10,
        "cond-mat": 9,
        "q-fin": 9,
        "astro-ph": 6,
        "stat": 6,
        "nlin": 5,
        "eess": 4,
        "econ": 3,
    }
    for archive, count in per_archive.items():
        assert sum(c.archive == archive for c in CATEGORIES.values()) == count, archive


def test_every_category_is_well_formed() -> None:
    groups = {
        "Physics",
        "Mathematics",
        "Computer Science",
        "Quantitative Biology",
        "Quantitative Finance",
        "Statistics",
        "Electrical Engineering and Systems Science",
        "Economics",
    }
    for cid, cat in CATEGORIES.items():
        assert cat.id == cid
        assert cat.archive in ARCHIVES, cid
        assert cid == cat.archive or cid.startswith(f"{cat.archive}."), cid
        assert cat.name, cid
        assert cat.name.strip() == cat.name, cid
        assert cat.group in groups, cid
    assert len({cid.lower() for cid in CATEGORIES}) == len(CATEGORIES)
    assert {c.group for c in CATEGORIES.values()} == groups


def test_known_entries_are_transcribed_exactly() -> None:
    assert CATEGORIES["cs.LG"] == Category("cs.LG", "Machine Learning", "cs", "Computer Science")
    assert CATEGORIES["stat.ML"] == Category("stat.ML", "Machine Learning", "stat", "Statistics")
    assert CATEGORIES["math-ph"] == Category(
        "math-ph", "Mathematical Physics", "math-ph", "Physics"
    )
    assert CATEGORIES["cs.CV"].name == "Computer Vision and Pattern Recognition"
    assert CATEGORIES["cs.CE"].name == "Computational Engineering, Finance, and Science"
    assert CATEGORIES["astro-ph.CO"].name == "Cosmology and Nongalactic Astrophysics"
    assert CATEGORIES["physics.data-an"].name == "Data Analysis, Statistics and Probability"
    assert CATEGORIES["eess.AS"].group == "Electrical Engineering and Systems Science"
    assert CATEGORIES["econ.GN"].name == "General Economics"
    assert CATEGORIES["q-fin.TR"].name == "Trading and Market Microstructure"
    assert CATEGORIES["nlin.AO"].name == "Adaptation and Self-Organizing Systems"
    assert CATEGORIES["quant-ph"].archive == "quant-ph"


def test_archives() -> None:
    active = {
        "astro-ph", "cond-mat", "cs", "econ", "eess", "gr-qc", "hep-ex", "hep-lat", "hep-ph",
        "hep-th", "math", "math-ph", "nlin", "nucl-ex", "nucl-th", "physics", "q-bio", "q-fin",
        "quant-ph", "stat",
    }  # fmt: skip
    legacy = {
        "acc-phys", "adap-org", "alg-geom", "ao-sci", "atom-ph", "bayes-an", "chao-dyn",
        "chem-ph", "cmp-lg", "comp-gas", "dg-ga", "funct-an", "mtrl-th", "patt-sol", "plasm-ph",
        "q-alg", "solv-int", "supr-con",
    }  # fmt: skip
    assert set(ARCHIVES) == active | legacy
    assert set(SUBSUMED_ARCHIVES) == legacy
    assert ARCHIVES["cs"] == "Computer Science"
    assert ARCHIVES["solv-int"] == "Exactly Solvable and Integrable Systems"
    assert ARCHIVES["eess"] == "Electrical Engineering and Systems Science"
    for subsuming in SUBSUMED_ARCHIVES.values():
        assert subsuming in CATEGORIES
    # An archive with categories of its own has one named after every one of them.
    assert {c.archive for c in CATEGORIES.values()} == active


def test_aliases_are_arxivs() -> None:
    assert dict(ALIASES) == {
        "math.MP": "math-ph",
        "stat.TH": "math.ST",
        "math.IT": "cs.IT",
        "q-fin.EC": "econ.GN",
        "cs.SY": "eess.SY",
        "cs.NA": "math.NA",
    }
    for alias, canonical in ALIASES.items():
        assert alias in CATEGORIES
        assert canonical in CATEGORIES
        assert canonical not in ALIASES


def test_public_mappings_and_categories_are_read_only() -> None:
    with pytest.raises(TypeError):
        CATEGORIES["x.Y"] = CATEGORIES["cs.LG"]  # type: ignore[index]
    with pytest.raises(TypeError):
        ARCHIVES["x"] = "X"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        CATEGORIES["cs.LG"].name = "x"  # type: ignore[misc]


def test_popular_categories_exist() -> None:
    assert POPULAR[:6] == ("cs.LG", "cs.CV", "cs.CL", "cs.AI", "stat.ML", "cs.RO")
    assert all(cid in CATEGORIES and cid not in ALIASES for cid in POPULAR)
    assert len(set(POPULAR)) == len(POPULAR)


# ---------------------------------------------------------------------------------------------
# validate_category


@pytest.mark.parametrize("cid", sorted(CATEGORIES))
def test_every_id_validates_to_its_canonical_form(cid: str) -> None:
    expected = ALIASES.get(cid, cid)
    assert validate_category(cid) == expected
    assert validate_category(cid.lower()) == expected
    assert validate_category(cid.upper()) == expected
    assert validate_category(f"  {cid}\n") == expected
    assert validate_category(cid, allow_archive=False) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CS.lg", "cs.LG"),
        ("cs.cv", "cs.CV"),
        ("STAT.ML", "stat.ML"),
        ("Physics.Optics", "physics.optics"),
        ("HEP-TH", "hep-th"),
        ("math.MP", "math-ph"),
        ("cs.SY", "eess.SY"),
        ("math.IT", "cs.IT"),
        ("stat.TH", "math.ST"),
        ("q-fin.EC", "econ.GN"),
        ("cs.NA", "math.NA"),
        ("chao-dyn", "nlin.CD"),
        ("cmp-lg", "cs.CL"),
        ("SOLV-INT", "nlin.SI"),
        ("mtrl-th", "cond-mat.mtrl-sci"),
        ("bayes-an", "physics.data-an"),
    ],
)
def test_validate_normalises(text: str, expected: str) -> None:
    assert validate_category(text) == expected


def test_legacy_archives_are_categories_even_without_archives() -> None:
    assert validate_category("chao-dyn", allow_archive=False) == "nlin.CD"


@pytest.mark.parametrize(
    "archive", ["cs", "math", "physics", "astro-ph", "cond-mat", "q-bio", "stat"]
)
def test_archives_are_accepted_or_refused(archive: str) -> None:
    assert validate_category(archive) == archive
    assert validate_category(f" {archive.upper()} ") == archive
    with pytest.raises(UnknownCategoryError) as caught:
        validate_category(archive, allow_archive=False)
    # The refusal points at categories of that archive.
    assert caught.value.suggestions
    assert all(CATEGORIES[s].archive == archive for s in caught.value.suggestions)


def test_single_category_archives_are_categories_too() -> None:
    for cid in ["hep-th", "gr-qc", "quant-ph", "math-ph", "nucl-ex"]:
        assert is_archive(cid)
        assert validate_category(cid, allow_archive=False) == cid


def test_refused_cs_suggests_popular_cs_categories() -> None:
    with pytest.raises(UnknownCategoryError) as caught:
        validate_category("cs", allow_archive=False)
    assert caught.value.suggestions == ("cs.LG", "cs.CV", "cs.CL")


@pytest.mark.parametrize(
    ("typo", "wanted"),
    [
        ("cs.LF", "cs.LG"),
        ("cs.LGG", "cs.LG"),
        ("cs,LG", "cs.LG"),
        ("cs.CVV", "cs.CV"),
        ("stat.MLL", "stat.ML"),
        ("cs-LG", "cs.LG"),
        ("machine learning", "cs.LG"),
        ("machine learning", "stat.ML"),
        ("Machine Learnin", "cs.LG"),
        ("computer vision", "cs.CV"),
        ("robotics", "cs.RO"),
        ("quantum", "quant-ph"),
        ("astro-ph.CA", "astro-ph.CO"),
        ("hep_th", "hep-th"),
        ("solv_int", "nlin.SI"),
    ],
)
def test_suggestions(typo: str, wanted: str) -> None:
    with pytest.raises(UnknownCategoryError) as caught:
        validate_category(typo)
    assert wanted in caught.value.suggestions
    assert len(caught.value.suggestions) <= 3
    assert all(s in CATEGORIES or s in ARCHIVES for s in caught.value.suggestions)
    assert f"`{wanted}`" in str(caught.value)


def test_suggestions_for_a_shared_name_are_both_and_only_them() -> None:
    with pytest.raises(UnknownCategoryError) as caught:
        validate_category("machine learning")
    assert caught.value.suggestions == ("cs.LG", "stat.ML")


def test_suggestions_never_offer_aliases_or_refused_archives() -> None:
    with pytest.raises(UnknownCategoryError) as caught:
        validate_category("cs.SYY")
    assert "eess.SY" in caught.value.suggestions
    assert "cs.SY" not in caught.value.suggestions
    with pytest.raises(UnknownCategoryError) as caught:
        validate_category("css", allow_archive=False)
    assert "cs" not in caught.value.suggestions
    with pytest.raises(UnknownCategoryError) as caught:
        validate_category("css")
    assert "cs" in caught.value.suggestions


@pytest.mark.parametrize("text", ["", "   ", "zzzzzz", "12345", "🙂"])
def test_nonsense_has_no_suggestions(text: str) -> None:
    with pytest.raises(UnknownCategoryError) as caught:
        validate_category(text)
    assert caught.value.suggestions == ()
    assert isinstance(caught.value, UserFacingError)


def test_error_message_is_short_and_keeps_markdown_intact() -> None:
    with pytest.raises(UnknownCategoryError) as caught:
        validate_category("`" * 5 + "q" * 300)
    assert len(str(caught.value)) < 150
    assert str(caught.value).count("`") == 2


# ---------------------------------------------------------------------------------------------
# names and archives


def test_category_name() -> None:
    assert category_name("cs.LG") == "Machine Learning"
    assert category_name("CS.lg") == "Machine Learning"
    assert category_name("cs.SY") == "Systems and Control"
    assert category_name("math") == "Mathematics"
    assert category_name("solv-int") == "Exactly Solvable and Integrable Systems"
    assert category_name("hep-th") == "High Energy Physics - Theory"
    # arXiv may add categories; rendering them must not fail.
    assert category_name("cs.ZZ") == "cs.ZZ"


def test_is_archive() -> None:
    for archive in ARCHIVES:
        assert is_archive(archive)
    assert is_archive(" CS ")
    assert is_archive("solv-int")
    assert not is_archive("cs.LG")
    assert not is_archive("computer science")
    assert not is_archive("")


# ---------------------------------------------------------------------------------------------
# in_filter


@pytest.mark.parametrize(
    ("paper", "wanted", "expected"),
    [
        (["cs.LG"], [], True),
        ([], [], True),
        ([], ["cs.LG"], False),
        (["cs.LG"], ["cs.LG"], True),
        (["cs.LG"], ["cs.CV"], False),
        # cross-lists count
        (["cs.CV", "cs.LG", "stat.ML"], ["stat.ML"], True),
        (["math.OC", "cs.LG"], ["cs.CV", "cs.LG"], True),
        # archives
        (["cs.LG"], ["cs"], True),
        (["stat.ML", "cs.LG"], ["cs"], True),
        (["stat.ML"], ["cs"], False),
        (["physics.optics"], ["physics"], True),
        (["astro-ph.GA"], ["physics"], False),  # another archive of the Physics group
        (["hep-th"], ["hep-th"], True),
        (["math-ph"], ["math"], True),  # math-ph is also listed as math.MP
        (["math-ph"], ["math.MP"], True),
        (["math.MP"], ["math-ph"], True),
        # aliases count as the same category, whichever side names which
        (["eess.SY"], ["cs.SY"], True),
        (["cs.SY"], ["eess.SY"], True),
        (["eess.SY"], ["cs"], True),
        (["cs.IT"], ["math"], True),
        (["econ.GN"], ["q-fin"], True),
        (["eess.SP"], ["cs"], False),
        # legacy bare archives and legacy archives used as categories on old papers
        (["astro-ph"], ["astro-ph"], True),
        (["astro-ph"], ["astro-ph.CO"], False),
        (["chao-dyn"], ["nlin.CD"], True),
        (["chao-dyn"], ["nlin"], True),
        (["nlin.CD"], ["chao-dyn"], True),
        (["cmp-lg"], ["cs"], True),
        # case and whitespace do not matter
        (["cs.lg"], ["CS"], True),
        (["cs.LG"], [" cs.lg "], True),
        # a category newer than the taxonomy still belongs to its archive
        (["cs.ZZ"], ["cs"], True),
        (["cs.ZZ"], ["cs.ZZ"], True),
        (["cs.ZZ"], ["cs.LG"], False),
        # blank wanted items mean nothing
        (["cs.LG"], [""], True),
    ],
)
def test_in_filter(paper: list[str], wanted: list[str], expected: bool) -> None:
    assert in_filter(paper, wanted) is expected


def test_in_filter_takes_one_shot_iterables() -> None:
    assert in_filter(iter(["cs.LG"]), (w for w in ["cs"]))
    assert not in_filter(iter(["math.CO"]), (w for w in ["cs"]))


# ---------------------------------------------------------------------------------------------
# search_categories


def test_search_empty_lists_popular_first_then_the_rest() -> None:
    results = search_categories("")
    assert len(results) == 25
    assert [c.id for c in results] == list(POPULAR[:25])
    everything = search_categories("   ", limit=1000)
    assert len(everything) == len(CATEGORIES)
    rest = [c.id for c in everything[len(POPULAR) :]]
    assert rest == sorted(rest)
    assert {c.id for c in everything} == set(CATEGORIES)


def test_search_limit() -> None:
    assert len(search_categories("c")) == 25
    assert len(search_categories("c", limit=3)) == 3
    assert search_categories("cs", limit=0) == []


def test_search_prefix_on_id_comes_first() -> None:
    ids = [c.id for c in search_categories("cs.l")]
    assert ids == ["cs.LG", "cs.LO"]
    ids = [c.id for c in search_categories("cs.", limit=100)]
    assert all(i.startswith("cs.") for i in ids[:40])
    assert ids[:4] == ["cs.LG", "cs.CV", "cs.CL", "cs.AI"]
    assert "physics.optics" in ids[40:]  # "physics.optics" contains "cs." too, so it comes later
    ids = [c.id for c in search_categories("MATH", limit=100)]
    assert all(i.startswith("math") for i in ids[:33])  # 32 math.* and math-ph
    assert "cs.MS" in ids[33:]  # "Mathematical Software"
    assert "q-fin.MF" in ids[33:]  # "Mathematical Finance"


def test_search_matches_names() -> None:
    assert [c.id for c in search_categories("machine")] == ["cs.LG", "stat.ML"]
    assert [c.id for c in search_categories("Machine Learning")] == ["cs.LG", "stat.ML"]
    assert [c.id for c in search_categories("vision")] == ["cs.CV"]
    assert search_categories("optics")[0].id == "physics.optics"
    assert search_categories("robot")[0].id == "cs.RO"


def test_search_subject_class_and_word_prefix_beat_other_substrings() -> None:
    ids = [c.id for c in search_categories("lg")]
    assert ids[0] == "cs.LG"
    # "lg" also occurs inside "Algebra", "Algorithms": those come after.
    assert set(ids[1:]) >= {"math.AG", "cs.DS"}
    ids = [c.id for c in search_categories("ml")]
    assert ids[0] == "stat.ML"


def test_search_returns_nothing_for_nonsense() -> None:
    assert search_categories("zzzz") == []
