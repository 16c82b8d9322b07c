"""MentionRepository for streamed posts: discovery without metrics, deletes, account deletions."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import func, select

from bot.core.models import Mention, Window
from bot.sources.bluesky import post_uri, post_url
from bot.storage.dialect import CHUNK
from bot.storage.engine import Database
from bot.storage.mentions import MentionRepository
from bot.storage.tables import mention_metrics, mention_papers, mentions
from tests.storage.factories import T0, make_mention

HOUR = dt.timedelta(hours=1)
DAY = Window(T0 - 12 * HOUR, T0 + 12 * HOUR)
ALICE = "did:plc:alice4ufkqhhjq2n7xsf3c2r"
BOB = "did:plc:bobbyz6quxkuk6v5gjx3edwm"


@pytest.fixture
def repo(db: Database) -> MentionRepository:
    return MentionRepository(db)


def streamed(
    did: str = ALICE,
    rkey: str = "3lbq2y7yc2k2a",
    *,
    ids: tuple[str, ...] = ("2503.00001",),
    text: str = "new paper arxiv.org/abs/2503.00001",
    lang: str | None = "en",
    created_at: dt.datetime = T0,
) -> Mention:
    """A post as the stream gives it: the DID as author, no handle, no metrics."""
    return Mention(
        source="bluesky",
        post_id=post_uri(did, rkey),
        url=post_url(did, rkey),
        author=did,
        text=text,
        created_at=created_at,
        arxiv_ids=ids,
        metrics={},
        lang=lang,
    )


def refreshed(post: Mention, **metrics: int) -> Mention:
    """The same post as the AppView shows it: handle, display name, counts."""
    rkey = post.post_id.rsplit("/", 1)[-1]
    return dataclasses.replace(
        post,
        url=post_url("alice.example.com", rkey),
        author="alice.example.com",
        author_name="Alice",
        metrics=metrics or {"likes": 10, "reposts": 2, "quotes": 0, "replies": 1},
    )


async def count(db: Database, table: object) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def ids_stored(repo: MentionRepository) -> set[tuple[str, str]]:
    return {(s.mention.source, s.mention.post_id) for s in await repo.in_window(DAY)}


# -- upsert_discovered ---------------------------------------------------------------------


async def test_a_discovered_post_is_stored_without_metrics(repo: MentionRepository) -> None:
    post = streamed(ALICE, "r1", ids=("2503.00002", "2503.00001"))
    assert await repo.upsert_discovered([post], T0 + HOUR) == 1
    (stored,) = await repo.in_window(DAY)
    assert stored.mention == post
    assert stored.mention.metrics == {}
    # No snapshot yet: the time it was first seen stands in.
    assert stored.fetched_at == T0 + HOUR
    assert await repo.history("bluesky", post.post_id) == []


async def test_discovering_the_same_posts_again_changes_nothing(
    repo: MentionRepository, db: Database
) -> None:
    batch = [streamed(rkey="r1"), streamed(rkey="r2", ids=("2503.00001", "2503.00002"))]
    assert await repo.upsert_discovered(batch, T0) == 2
    before = await repo.in_window(DAY)
    # A replay after a restart: the same events, later.
    assert await repo.upsert_discovered(batch, T0 + HOUR) == 2
    assert await count(db, mentions) == 2
    assert await count(db, mention_papers) == 3
    assert await count(db, mention_metrics) == 0
    assert await repo.in_window(DAY) == before  # first_seen_at stays as first written


async def test_a_post_twice_in_one_batch_is_stored_once(
    repo: MentionRepository, db: Database
) -> None:
    first = streamed(rkey="r1", text="v1")
    second = streamed(rkey="r1", ids=("2503.00002",), text="v2")
    assert await repo.upsert_discovered([first, second], T0) == 1
    (stored,) = await repo.in_window(DAY)
    assert (stored.mention.text, stored.mention.arxiv_ids) == ("v2", ("2503.00002",))
    assert await count(db, mention_papers) == 1


async def test_an_edit_replaces_text_language_and_links(
    repo: MentionRepository, db: Database
) -> None:
    await repo.upsert_discovered(
        [streamed("did:plc:x", "r1", ids=("2503.00001", "2503.00002"))], T0
    )
    edited = streamed("did:plc:x", "r1", ids=("2503.00003",), text="edited", lang="fr")
    await repo.upsert_discovered([edited], T0 + HOUR)
    (stored,) = await repo.in_window(DAY)
    assert stored.mention == edited
    assert await count(db, mention_papers) == 1
    assert await repo.unresolved_ids() == ["2503.00003"]


async def test_a_replay_keeps_what_a_refresh_learnt_and_every_snapshot(
    repo: MentionRepository,
) -> None:
    post = streamed(rkey="r1")
    await repo.upsert_discovered([post], T0)
    await repo.upsert([refreshed(post, likes=5)], T0 + HOUR)
    await repo.upsert([refreshed(post, likes=9)], T0 + 2 * HOUR)
    # The stream delivers the post again (a replay, or an edit of its text).
    await repo.upsert_discovered([dataclasses.replace(post, text="typo fixed")], T0 + 3 * HOUR)
    (stored,) = await repo.in_window(DAY)
    assert stored.mention.author == "alice.example.com"
    assert stored.mention.author_name == "Alice"
    assert stored.mention.url == post_url("alice.example.com", "r1")
    assert stored.mention.text == "typo fixed"
    assert stored.mention.metrics == {"likes": 9}
    assert stored.fetched_at == T0 + 2 * HOUR
    assert await repo.history("bluesky", post.post_id) == [
        (T0 + HOUR, {"likes": 5}),
        (T0 + 2 * HOUR, {"likes": 9}),
    ]


async def test_discovery_does_not_touch_other_sources(repo: MentionRepository) -> None:
    tweet = make_mention("r1", source="x")
    await repo.upsert([tweet], T0)
    await repo.upsert_discovered([streamed(rkey="r1")], T0)
    by_source = {s.mention.source: s.mention for s in await repo.in_window(DAY)}
    assert by_source["x"] == tweet
    assert by_source["bluesky"].metrics == {}


async def test_discovery_refuses_naive_times(repo: MentionRepository) -> None:
    with pytest.raises(ValueError, match="seen_at"):
        await repo.upsert_discovered([streamed()], T0.replace(tzinfo=None))


async def test_discovery_of_more_posts_than_a_batch(repo: MentionRepository, db: Database) -> None:
    posts = [streamed(rkey=f"r{i}", ids=(f"2503.{i:05d}",)) for i in range(CHUNK + 7)]
    assert await repo.upsert_discovered(posts, T0) == CHUNK + 7
    assert await count(db, mentions) == CHUNK + 7
    assert await count(db, mention_papers) == CHUNK + 7


# -- delete_posts ----------------------------------------------------------------------------


async def test_deleted_posts_go_with_their_links_and_snapshots(
    repo: MentionRepository, db: Database
) -> None:
    keep, gone = streamed(rkey="keep"), streamed(rkey="gone", ids=("2503.00009",))
    await repo.upsert_discovered([keep, gone], T0)
    await repo.upsert([refreshed(keep), refreshed(gone)], T0 + HOUR)
    assert await repo.delete_posts("bluesky", [gone.post_id]) == 1
    assert await ids_stored(repo) == {("bluesky", keep.post_id)}
    assert await count(db, mention_papers) == 1
    assert await count(db, mention_metrics) == 1
    assert await repo.history("bluesky", gone.post_id) == []
    assert await repo.unresolved_ids() == ["2503.00001"]


async def test_deleting_unknown_or_repeated_posts(repo: MentionRepository) -> None:
    post = streamed(rkey="r1")
    await repo.upsert_discovered([post], T0)
    assert await repo.delete_posts("bluesky", []) == 0
    assert await repo.delete_posts("bluesky", [post_uri(ALICE, "never-seen")]) == 0
    assert await repo.delete_posts("bluesky", [post.post_id, post.post_id]) == 1
    assert await repo.delete_posts("bluesky", [post.post_id]) == 0  # a replayed delete
    assert await ids_stored(repo) == set()


async def test_deleting_posts_is_per_source(repo: MentionRepository) -> None:
    await repo.upsert([make_mention("same-id", source="x")], T0)
    await repo.upsert([make_mention("same-id", source="hackernews")], T0)
    assert await repo.delete_posts("x", ["same-id"]) == 1
    assert await ids_stored(repo) == {("hackernews", "same-id")}


async def test_deleting_more_posts_than_a_batch(repo: MentionRepository, db: Database) -> None:
    posts = [streamed(rkey=f"r{i}") for i in range(CHUNK + 3)]
    await repo.upsert_discovered(posts, T0)
    doomed = [p.post_id for p in posts[1:]]
    assert await repo.delete_posts("bluesky", doomed) == CHUNK + 2
    assert await ids_stored(repo) == {("bluesky", posts[0].post_id)}
    assert await count(db, mention_papers) == 1


# -- delete_with_prefix (account deletions) ------------------------------------------------


async def test_an_account_deletion_forgets_all_its_posts_and_nothing_else(
    repo: MentionRepository, db: Database
) -> None:
    alice = [streamed(ALICE, f"a{i}") for i in range(3)]
    bob = streamed(BOB, "b1")
    # A DID that extends Alice's: the "/" after the DID keeps it apart.
    longer = streamed(ALICE + "x", "c1")
    await repo.upsert_discovered([*alice, bob, longer], T0)
    await repo.upsert([refreshed(alice[0])], T0 + HOUR)
    assert await repo.delete_with_prefix("bluesky", f"at://{ALICE}/") == 3
    assert await ids_stored(repo) == {("bluesky", bob.post_id), ("bluesky", longer.post_id)}
    assert await count(db, mention_papers) == 2
    assert await count(db, mention_metrics) == 0
    assert await repo.delete_with_prefix("bluesky", f"at://{ALICE}/") == 0


@pytest.mark.parametrize(
    ("deleted", "others"),
    [
        # LIKE's wildcards in the DID match themselves only.
        ("did:plc:a_c", ["did:plc:abc", "did:plc:a-c", "did:plc:aXc"]),
        ("did:web:a%b", ["did:web:ab", "did:web:aXYZb", "did:web:a%2b"]),
        ("did:web:a%", ["did:web:a", "did:web:aaaa"]),
        # DIDs are case-sensitive (SQLite's LIKE is not).
        ("did:web:Example.com", ["did:web:example.com", "did:web:EXAMPLE.COM"]),
    ],
)
async def test_an_account_prefix_is_matched_literally(
    repo: MentionRepository, deleted: str, others: list[str]
) -> None:
    await repo.upsert_discovered([streamed(d, "r1") for d in (deleted, *others)], T0)
    assert await repo.delete_with_prefix("bluesky", f"at://{deleted}/") == 1
    assert await ids_stored(repo) == {("bluesky", post_uri(d, "r1")) for d in others}


async def test_an_account_deletion_is_per_source(repo: MentionRepository) -> None:
    post = streamed(ALICE, "r1")
    elsewhere = dataclasses.replace(post, source="other")
    await repo.upsert_discovered([post, elsewhere], T0)
    assert await repo.delete_with_prefix("bluesky", f"at://{ALICE}/") == 1
    assert await ids_stored(repo) == {("other", post.post_id)}
