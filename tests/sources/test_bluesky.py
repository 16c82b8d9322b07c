"""parse_event: Jetstream v1 frames → post upserts, deletes and account deletions, or nothing."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.fakes.bluesky import (
    account_deleted_event,
    account_event,
    commit_event,
    external_embed,
    frame,
    identity_event,
    link_facet,
    post_deleted_event,
    post_record,
    record_with_media_embed,
)
from bot.sources import bluesky
from bot.sources.bluesky import (
    MAX_FRAME_BYTES,
    AccountDelete,
    MalformedEventError,
    PostDelete,
    PostUpsert,
    linked_arxiv_ids,
    parse_event,
    post_uri,
)

UTC = dt.UTC
DATA = Path(__file__).resolve().parents[1] / "data" / "bluesky"
DID = "did:plc:eygmaihciaxprqvxpfvl6flk"
T_US = 1725911162329308  # 2024-09-09T19:46:02.329308Z
EVENT_TIME = dt.datetime(2024, 9, 9, 19, 46, 2, 329308, tzinfo=UTC)
CREATED = dt.datetime(2024, 9, 9, 19, 46, 2, 102000, tzinfo=UTC)


def data(name: str) -> str:
    return (DATA / f"{name}.json").read_text()


def data_event(name: str) -> dict[str, Any]:
    return json.loads(data(name))


def post_frame(text: str = "", rkey: str = "3l3qo2vuowo2b", **record: Any) -> str:
    return frame(commit_event(DID, rkey, post_record(text, CREATED, **record), T_US))


def upsert(raw: str | bytes) -> PostUpsert:
    time_us, event = parse_event(raw)
    assert isinstance(event, PostUpsert), event
    assert time_us == event.time_us
    return event


def ids_of(raw: str | bytes) -> tuple[str, ...]:
    return upsert(raw).mention.arxiv_ids


# -- posts that link papers --------------------------------------------------------------------


def test_link_facet_after_emoji_and_cjk_text() -> None:
    event = upsert(data("post_facet_emoji_cjk"))

    mention = event.mention
    assert event.time_us == T_US
    # The facet's full URL counts, not the shortened "arxiv.org/abs/2409.0123..." shown.
    assert mention.arxiv_ids == ("2409.01234",)
    assert mention.source == "bluesky"
    assert mention.post_id == f"at://{DID}/app.bsky.feed.post/3l3qo2vuowo2b"
    assert mention.url == f"https://bsky.app/profile/{DID}/post/3l3qo2vuowo2b"
    assert mention.author == DID
    assert mention.author_name is None
    assert mention.text.startswith("🎉🧪 新しい論文です")
    assert mention.created_at == CREATED
    assert mention.created_at.tzinfo is not None
    assert dict(mention.metrics) == {}
    assert mention.lang == "ja"


def test_facet_offsets_are_utf8_bytes() -> None:
    record = json.loads(data("post_facet_emoji_cjk"))["commit"]["record"]
    facet = record["facets"][0]["index"]
    shown = record["text"].encode()[facet["byteStart"] : facet["byteEnd"]].decode()
    assert shown == "arxiv.org/abs/2409.0123..."


def test_link_facet_without_a_uri_reads_its_span_of_the_text() -> None:
    text = "日本語 ✨ see https://arxiv.org/abs/2409.01234 ok"
    facet = link_facet(text, "https://arxiv.org/abs/2409.01234", "x")
    del facet["features"][0]["uri"]
    assert ids_of(post_frame(text, facets=[facet])) == ("2409.01234",)


def test_a_facet_linking_elsewhere_hides_the_arxiv_text_it_covers() -> None:
    # The shown text claims arXiv but the link goes elsewhere: the link is what readers follow.
    text = "see arxiv.org/abs/2409.01234"
    facet = link_facet(text, "arxiv.org/abs/2409.01234", "https://example.org/2409.01234")
    assert parse_event(post_frame(text, facets=[facet])) == (T_US, None)


def test_facets_with_spans_outside_the_text_still_count_by_uri() -> None:
    facet = {
        "index": {"byteStart": 500, "byteEnd": 900},
        "features": [{"$type": bluesky.LINK_FEATURE, "uri": "https://arxiv.org/abs/2409.01234"}],
    }
    assert ids_of(post_frame("short", facets=[facet])) == ("2409.01234",)


def test_external_embed() -> None:
    mention = upsert(data("post_external_embed")).mention
    assert mention.arxiv_ids == ("1706.03762",)  # pdf, v7 dropped
    assert mention.text == "A classic, still worth re-reading"


def test_record_with_media_embed() -> None:
    assert ids_of(data("post_record_with_media")) == ("2310.06825",)


def test_a_quoted_post_is_not_a_link() -> None:
    embed = {
        "$type": "app.bsky.embed.record",
        "record": {"uri": "at://did:plc:x/app.bsky.feed.post/arxiv", "cid": "bafyrei"},
    }
    assert parse_event(post_frame("quoting arxiv folks", embed=embed)) == (T_US, None)


def test_text_only_links_and_old_style_ids() -> None:
    # math.GT/0309136v1 → math/0309136 (the subject class and version are dropped).
    assert ids_of(data("post_text_old_style")) == ("hep-th/9901001", "math/0309136")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://arxiv.org/abs/2106.14108", ("2106.14108",)),
        ("https://arxiv.org/pdf/2106.14108v2", ("2106.14108",)),
        ("arxiv.org/pdf/2106.14108v3.pdf", ("2106.14108",)),
        ("ARXIV:2106.14108v2", ("2106.14108",)),
        ("hf.co/papers/2106.14108", ("2106.14108",)),
        ("https://www.alphaxiv.org/abs/2106.14108", ("2106.14108",)),
        ("doi:10.48550/arXiv.2106.14108", ("2106.14108",)),
        ("arXiv:hep-th/9901001v2", ("hep-th/9901001",)),
        ("https://arxiv.org/abs/math.GT/0309136", ("math/0309136",)),
    ],
)
def test_id_forms_follow_the_project_rules(text: str, expected: tuple[str, ...]) -> None:
    assert ids_of(post_frame(f"new paper: {text} !")) == expected


def test_bare_numbers_are_not_papers() -> None:
    assert parse_event(post_frame("price went 2106.14108 arxiv style")) == (T_US, None)


def test_one_post_linking_three_papers_lists_them_in_order() -> None:
    assert ids_of(data("post_three_papers")) == ("2401.00001", "2402.00002", "2403.00003")


def test_ids_are_deduplicated_in_first_seen_order() -> None:
    text = "arXiv:2402.00002 then arxiv.org/abs/2401.00001 then arXiv:2402.00002v2 again"
    facet = link_facet(text, "arxiv.org/abs/2401.00001", "https://arxiv.org/abs/2401.00001")
    embed = external_embed("https://arxiv.org/abs/2401.00001v4")
    assert ids_of(post_frame(text, facets=[facet], embed=embed)) == ("2402.00002", "2401.00001")


def test_facets_are_read_in_text_order_whatever_their_order_in_the_list() -> None:
    text = "first arxiv.org/abs/2401.00001 second arxiv.org/abs/2402.00002"
    one = link_facet(text, "arxiv.org/abs/2401.00001", "https://arxiv.org/abs/2401.00001")
    two = link_facet(text, "arxiv.org/abs/2402.00002", "https://arxiv.org/abs/2402.00002")
    assert ids_of(post_frame(text, facets=[two, one])) == ("2401.00001", "2402.00002")


def test_linked_arxiv_ids_tolerates_junk_in_optional_fields() -> None:
    record = {
        "text": 42,
        "facets": [None, {"features": "x"}, {"features": [None, {"$type": 3}]}, {"index": []}],
        "embed": {"$type": bluesky.RECORD_WITH_MEDIA_EMBED, "media": "nope"},
    }
    assert linked_arxiv_ids(record) == []


def test_bytes_frames_parse_like_text() -> None:
    raw = data("post_three_papers")
    assert parse_event(raw.encode()) == parse_event(raw)


def test_update_that_links_a_paper_is_an_upsert() -> None:
    event = data_event("post_external_embed")
    event["commit"]["operation"] = "update"
    assert upsert(frame(event)).mention.arxiv_ids == ("1706.03762",)


def test_update_that_no_longer_links_a_paper_drops_the_post() -> None:
    event = data_event("post_no_paper")
    event["commit"]["operation"] = "update"
    rkey = event["commit"]["rkey"]
    assert parse_event(frame(event)) == (T_US, PostDelete(post_uri(DID, rkey), T_US))


# -- created_at, lang, text ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ("2024-09-09T19:46:02.102Z", CREATED),
        ("2024-09-09T21:46:02.102+02:00", CREATED),
        ("2024-09-08T19:46:02.329308Z", dt.datetime(2024, 9, 8, 19, 46, 2, 329308, tzinfo=UTC)),
        ("2024-09-08T19:46:02.329307Z", EVENT_TIME),  # more than 24 h before
        ("2024-09-10T19:46:03Z", EVENT_TIME),  # in the future
        ("2024-09-09T19:46:02.102", EVENT_TIME),  # no zone
        ("yesterday", EVENT_TIME),
        ("0001-01-01T00:00:00+01:00", EVENT_TIME),  # before year 1 in UTC
        (1725911162, EVENT_TIME),
        (None, EVENT_TIME),
    ],
)
def test_created_at_falls_back_to_the_event_time(created: object, expected: dt.datetime) -> None:
    event = data_event("post_three_papers")
    event["commit"]["record"]["createdAt"] = created
    mention = upsert(frame(event)).mention
    assert mention.created_at == expected
    assert mention.created_at.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    ("langs", "expected"),
    [(["pt", "en"], "pt"), ([], None), ("en", None), ([7], None), (None, None)],
)
def test_lang_is_the_first_language(langs: object, expected: str | None) -> None:
    event = data_event("post_three_papers")
    event["commit"]["record"]["langs"] = langs
    assert upsert(frame(event)).mention.lang == expected


def test_missing_text_is_empty_and_lone_surrogates_are_replaced() -> None:
    event = data_event("post_external_embed")
    del event["commit"]["record"]["text"]
    assert upsert(frame(event)).mention.text == ""

    raw = post_frame("x", embed=external_embed("https://arxiv.org/abs/2106.14108"))
    raw = raw.replace('"text":"x"', '"text":"bad \\ud800 half\\u0000"')
    mention = upsert(raw).mention
    assert mention.text == "bad \ufffd half"
    mention.text.encode("utf-8")


# -- events that are not upserts ---------------------------------------------------------------


def test_post_delete() -> None:
    uri = f"at://{DID}/app.bsky.feed.post/3l3qo2vuowo2b"
    assert parse_event(data("post_delete")) == (T_US, PostDelete(uri, T_US))
    assert parse_event(frame(post_deleted_event(DID, "3l3qo2vuowo2b", 7))) == (
        7,
        PostDelete(uri, 7),
    )


def test_account_deleted_vs_deactivated() -> None:
    assert parse_event(data("account_deleted")) == (T_US, AccountDelete(DID, T_US))
    assert parse_event(data("account_deactivated")) == (T_US, None)
    assert parse_event(frame(account_deleted_event(DID, 5))) == (5, AccountDelete(DID, 5))
    for active, status in [(True, None), (False, "takendown"), (False, "suspended"), (False, None)]:
        event = account_event(DID, T_US, active=active, status=status)
        assert parse_event(frame(event)) == (T_US, None)


LIKE_DELETE = commit_event(
    DID, "3l3qo2vuowo2b", None, T_US, operation="delete", collection="app.bsky.feed.like"
)


@pytest.mark.parametrize(
    "raw",
    [
        data("like"),
        data("identity"),
        data("post_no_paper"),
        frame(identity_event(DID, T_US, "alice.bsky.social")),
        frame(LIKE_DELETE),
        frame({**data_event("like"), "kind": "sync"}),
        frame({**data_event("post_three_papers"), "kind": "sync"}),
    ],
)
def test_irrelevant_events_give_only_their_time(raw: str) -> None:
    assert parse_event(raw) == (T_US, None)


def test_other_collections_are_ignored_even_when_they_mention_arxiv() -> None:
    record = {"$type": "app.bsky.feed.generator", "description": "arxiv.org/abs/2106.14108"}
    event = commit_event(DID, "arxiv", record, T_US, collection="app.bsky.feed.generator")
    assert parse_event(frame(event)) == (T_US, None)


def test_unknown_operations_are_ignored() -> None:
    event = data_event("post_three_papers")
    event["commit"]["operation"] = "resync"
    assert parse_event(frame(event)) == (T_US, None)


def test_reply_posts_linking_papers_count() -> None:
    raw = post_frame(
        "arXiv:2106.14108",
        reply_to="at://did:plc:wa7b35aakoll7hugkrjtf3xf/app.bsky.feed.post/3l3pte3p2e325",
    )
    assert ids_of(raw) == ("2106.14108",)


def test_record_with_media_that_is_an_image_links_nothing() -> None:
    media = {"$type": "app.bsky.embed.images", "images": []}
    embed = record_with_media_embed(media, "at://did:plc:x/app.bsky.feed.post/3l3pte3p2e325")
    assert parse_event(post_frame("look", embed=embed)) == (T_US, None)


# -- malformed frames --------------------------------------------------------------------------


def _without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    event = copy.deepcopy(event)
    target = event
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return event


def _with(event: dict[str, Any], value: object, *path: str) -> dict[str, Any]:
    event = copy.deepcopy(event)
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return event


POST = json.loads((DATA / "post_three_papers.json").read_text())
PLAIN = json.loads((DATA / "post_no_paper.json").read_text())
ACCOUNT = json.loads((DATA / "account_deleted.json").read_text())
DELETE = json.loads((DATA / "post_delete.json").read_text())


@pytest.mark.parametrize(
    "event",
    [
        _without(POST, "did"),
        _without(POST, "time_us"),
        _without(POST, "kind"),
        _without(POST, "commit"),
        _without(POST, "commit", "rev"),
        _without(POST, "commit", "operation"),
        _without(POST, "commit", "collection"),
        _without(POST, "commit", "rkey"),
        _without(POST, "commit", "cid"),
        _without(POST, "commit", "record"),
        _without(PLAIN, "commit", "record"),  # the fast path checks the envelope too
        _with(POST, 17, "did"),
        _with(POST, "1725911162329308", "time_us"),
        _with(POST, 1725911162329308.0, "time_us"),
        _with(POST, True, "time_us"),
        _with(POST, -1, "time_us"),
        _with(POST, 10**20, "time_us"),
        _with(POST, None, "kind"),
        _with(POST, [], "commit"),
        _with(POST, 1, "commit", "rkey"),
        _with(POST, ["app.bsky.feed.post"], "commit", "collection"),
        _with(POST, "a text", "commit", "record"),
        _with(PLAIN, [], "commit", "record"),
        _with(POST, "not a did", "did"),
        _with(POST, "../../etc", "commit", "rkey"),
        _with(POST, "..", "commit", "rkey"),
        _with(DELETE, "x y", "commit", "rkey"),
        _without(ACCOUNT, "account"),
        _with(ACCOUNT, "deleted", "account"),
        _with(ACCOUNT, "did:plc:<script>", "did"),
    ],
)
def test_malformed_events(event: dict[str, Any]) -> None:
    with pytest.raises(MalformedEventError):
        parse_event(frame(event))


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "{",
        "not json",
        "[]",
        "null",
        '"commit"',
        "1725911162329308",
        b"\xff\xfe{}",
        "\ufeff" + data("like"),
        "[" * 100_000 + "]" * 100_000,
        '{"time_us": ' + "9" * 5000 + "}",
    ],
)
def test_frames_that_are_not_events(raw: str | bytes) -> None:
    with pytest.raises(MalformedEventError):
        parse_event(raw)


def test_a_megabyte_record_is_refused_before_parsing() -> None:
    event = data_event("post_three_papers")
    event["commit"]["record"]["text"] = "arxiv " * 200_000
    raw = frame(event)
    assert len(raw) > 1_000_000
    with pytest.raises(MalformedEventError, match="512 KiB"):
        parse_event(raw)
    with pytest.raises(MalformedEventError, match="512 KiB"):
        parse_event(raw.encode())


def test_the_size_limit_counts_utf8_bytes() -> None:
    event = data_event("post_no_paper")
    event["commit"]["record"]["text"] = ""
    room = MAX_FRAME_BYTES - len(frame(event).encode())
    event["commit"]["record"]["text"] = "é" * (room // 2)  # 2 bytes each: just fits
    assert len(frame(event).encode()) <= MAX_FRAME_BYTES
    assert parse_event(frame(event)) == (T_US, None)
    event["commit"]["record"]["text"] += "é"
    assert len(frame(event)) < MAX_FRAME_BYTES < len(frame(event).encode())
    with pytest.raises(MalformedEventError):
        parse_event(frame(event))


def test_malformed_messages_never_quote_the_frame() -> None:
    with pytest.raises(MalformedEventError) as info:
        parse_event('{"did": "did:plc:SECRETSTUFF", "time_us": "x"}')
    assert "SECRETSTUFF" not in str(info.value)


# -- the fast path -----------------------------------------------------------------------------


def test_the_screen_sees_escaped_letters() -> None:
    # "arXiv" spelled with JSON escapes: the frame holds no "xiv", the record does.
    raw = post_frame("ARXIV:2106.14108").replace("ARXIV", "\\u0041\\u0052\\u0058\\u0049\\u0056")
    assert "xiv" not in raw.lower()
    assert ids_of(raw) == ("2106.14108",)


def test_the_screen_sees_letters_that_fold_to_ascii() -> None:
    # Python's case-insensitive matching folds U+0131 (dotless i) into "i".
    raw = post_frame("arx\u0131v:2106.14108")
    assert ids_of(raw) == bluesky._parse(raw, screen=False)[1].mention.arxiv_ids  # type: ignore[union-attr]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
ID_TEXT = st.sampled_from(
    [
        "arxiv.org/abs/2106.14108",
        "https://arxiv.org/pdf/2401.00001v2",
        "arXiv:hep-th/9901001",
        "ARXIV:math.GT/0309136",
        "hf.co/papers/2402.00002",
        "alphaxiv.org/abs/2403.00003",
        "10.48550/arXiv.2404.00004",
        "arx\u0131v:2405.00005",
        "2106.14108",
        "🎉",
        "日本語",
        " ",
    ]
)
POST_TEXT = st.lists(st.text(max_size=8) | ID_TEXT, max_size=6).map(" ".join)


@st.composite
def facets(draw: st.DrawFn, text: str) -> list[Any]:
    size = len(text.encode("utf-8", "surrogatepass"))
    out = []
    for _ in range(draw(st.integers(0, 3))):
        start = draw(st.integers(-1, size + 2))
        end = draw(st.integers(-1, size + 2))
        feature: dict[str, Any] = {
            "$type": draw(st.sampled_from([bluesky.LINK_FEATURE, "app.bsky.richtext.facet#tag"]))
        }
        if draw(st.booleans()):
            feature["uri"] = draw(ID_TEXT | st.text(max_size=10) | JSON_VALUES)
        out.append({"index": {"byteStart": start, "byteEnd": end}, "features": [feature]})
    return out


@st.composite
def post_events(draw: st.DrawFn) -> dict[str, Any]:
    text = draw(POST_TEXT)
    record: dict[str, Any] = {"$type": bluesky.POST_COLLECTION, "text": text}
    record["facets"] = draw(facets(text))
    if draw(st.booleans()):
        uri = draw(ID_TEXT | st.text(max_size=10))
        embed = external_embed(uri)
        if draw(st.booleans()):
            embed = record_with_media_embed(embed, "at://did:plc:x/app.bsky.feed.post/y")
        record["embed"] = embed
    record["createdAt"] = draw(
        st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()) | JSON_VALUES
    )
    record["langs"] = draw(st.lists(st.text(max_size=3), max_size=2) | JSON_VALUES)
    event = commit_event(
        DID,
        draw(st.sampled_from(["3l3qo2vuowo2b", "self", "a.b~c", "..", "x y"])),
        record,
        draw(st.integers(0, 2**60)),
        operation=draw(st.sampled_from(["create", "update", "delete"])),
    )
    # Now and then, one field of the envelope or the record becomes anything at all.
    if draw(st.booleans()):
        where = draw(st.sampled_from([event, event["commit"], record]))
        key = draw(st.sampled_from(sorted(where)))
        where[key] = draw(JSON_VALUES)
    return event


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text() | st.binary())
@example("")
@example(b"\x00")
@example('{"did":"d","time_us":1,"kind":"commit","commit":{}}')
def test_arbitrary_text_or_bytes_only_ever_raise_malformed(raw: str | bytes) -> None:
    with contextlib.suppress(MalformedEventError):
        parse_event(raw)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(JSON_VALUES)
def test_arbitrary_json_only_ever_raises_malformed(value: object) -> None:
    with contextlib.suppress(MalformedEventError):
        parse_event(json.dumps(value))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(post_events(), st.booleans())
def test_near_valid_posts_only_raise_malformed_and_the_screen_changes_nothing(
    event: dict[str, Any], ascii_only: bool
) -> None:
    raw = json.dumps(event, ensure_ascii=ascii_only)
    try:
        fast = parse_event(raw)
    except MalformedEventError:
        with pytest.raises(MalformedEventError):
            bluesky._parse(raw, screen=False)
        return
    assert fast == bluesky._parse(raw, screen=False)
    _, parsed = fast
    if isinstance(parsed, PostUpsert):
        assert parsed.mention.arxiv_ids
        assert len(set(parsed.mention.arxiv_ids)) == len(parsed.mention.arxiv_ids)
        assert parsed.mention.created_at.tzinfo is not None
