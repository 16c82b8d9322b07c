"""render_json: valid JSON with the digest's numbers, dates and texts, consistent with markdown."""

from __future__ import annotations

import datetime as dt
import json

from bot.core.models import Digest, Window
from bot.render.json import digest_to_dict, render_json
from bot.render.markdown import render_markdown
from tests.cli.test_reference import parse_post
from tests.render.test_markdown import (
    DAY,
    FETCHED,
    LIE,
    PAPERS,
    digest,
    other_post,
    ranked,
    x_post,
)


def multi_source() -> Digest:
    posts = (
        x_post(),
        x_post("second <post> & more", post_id="2", author="b", name="Bé", reposts=3, likes=30),
        other_post("hackernews", {"points": 70, "comments": 12}),
    )
    by_source = {"x": {"reposts": 1003, "likes": 185}, "hackernews": {"points": 70, "comments": 12}}
    bow = PAPERS["2012.11552"]
    post = x_post(post_id="9", reposts=399, likes=88)
    second = ranked(bow, (post,), {"x": {"reposts": 399, "likes": 88}})
    base = digest(ranked(posts=posts, by_source=by_source), second)
    return Digest(
        day=base.day,
        window=base.window,
        categories=("cs.LG", "cs.CV"),
        papers=base.papers,
        generated_at=base.generated_at,
        threshold=50,
        failed_sources={"huggingface": "huggingface: HTTP 503 after 5 attempts"},
    )


def test_round_trips_through_json_loads_with_the_same_numbers():
    d = multi_source()
    text = render_json(d)
    assert text.endswith("}\n")
    data = json.loads(text)
    assert data == json.loads(json.dumps(digest_to_dict(d)))
    assert data["title"] == "Hot Papers 2020-12-22"
    assert data["date"] == "2020-12-22"
    assert data["threshold"] == 50
    assert data["categories"] == ["cs.LG", "cs.CV"]
    assert data["failed_sources"] == {"huggingface": "huggingface: HTTP 503 after 5 attempts"}
    assert dt.datetime.fromisoformat(data["generated_at"]) == FETCHED
    window = Window.for_day(DAY)
    assert dt.datetime.fromisoformat(data["window"]["start"]) == window.start
    assert dt.datetime.fromisoformat(data["window"]["end"]) == window.end
    assert [p["rank"] for p in data["papers"]] == [1, 2]
    for paper, ranked_paper in zip(data["papers"], d.papers, strict=True):
        assert paper["arxiv_id"] == ranked_paper.paper.arxiv_id
        assert paper["score"] == ranked_paper.score
        assert paper["retweets"] == ranked_paper.total("reposts")
        assert paper["favorites"] == ranked_paper.total("likes")
        assert paper["by_source"] == {k: dict(v) for k, v in ranked_paper.by_source.items()}
        assert dt.datetime.fromisoformat(paper["as_of"]) == ranked_paper.as_of
        assert len(paper["top_posts"]) == len(ranked_paper.top_posts)
        for post, scored in zip(paper["top_posts"], ranked_paper.top_posts, strict=True):
            assert post["score"] == scored.score
            assert post["metrics"] == dict(scored.mention.metrics)
            assert post["text"] == scored.mention.text
            assert post["url"] == scored.mention.url
            assert dt.datetime.fromisoformat(post["created_at"]) == scored.mention.created_at
    first = data["papers"][0]
    assert (first["score"], first["retweets"], first["favorites"]) == (1155 + 33 + 82, 1003, 185)
    assert first["by_source"]["hackernews"] == {"points": 70, "comments": 12}


def test_paper_fields():
    (paper,) = json.loads(render_json(digest(ranked())))["papers"]
    assert paper["title"] == LIE.title
    assert paper["authors"] == list(LIE.authors)
    assert paper["abstract"] == LIE.abstract
    assert paper["primary_category"] == "cs.LG"
    assert paper["categories"] == ["cs.LG", "stat.ML"]
    assert paper["links"] == {
        "abs": "https://arxiv.org/abs/2012.10885",
        "pdf": "https://arxiv.org/pdf/2012.10885",
        "html": "https://arxiv.org/html/2012.10885",
    }
    assert dt.datetime.fromisoformat(paper["published"]) == LIE.published
    assert paper["version"] == LIE.version


def test_text_is_kept_verbatim_and_non_ascii_unescaped():
    text = render_json(multi_source())
    data = json.loads(text)
    assert data["papers"][0]["top_posts"][1]["text"] == "second <post> & more"  # JSON, not HTML
    assert data["papers"][0]["top_posts"][1]["author_name"] == "Bé"
    assert "Bé" in text
    assert "Pérez" in text  # an author of 2012.11552
    text.encode("utf-8")


def test_same_data_as_the_markdown():
    d = multi_source()
    data = json.loads(render_json(d))
    _, sections = parse_post(render_markdown(d))
    assert len(sections) == len(data["papers"])
    for section, paper in zip(sections, data["papers"], strict=True):
        assert section.rank == paper["rank"]
        assert section.title == " ".join(paper["title"].split())
        assert (section.retweets, section.favorites) == (paper["retweets"], paper["favorites"])
        assert section.categories == tuple(paper["categories"])
        assert section.links == (
            f"- links: [abs]({paper['links']['abs']}) | [pdf]({paper['links']['pdf']})"
        )


def test_empty_digest():
    data = json.loads(render_json(digest()))
    assert data["papers"] == []
    assert data["failed_sources"] == {}
    assert data["categories"] == []
