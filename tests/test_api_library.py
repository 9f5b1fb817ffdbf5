"""What a reading app needs from the API: tags with counts, archived and tag
filters with a stable cursor, and search matches a client can mark itself.

Links are saved through the push route and processed by a real cycle with a
deterministic ProcessLink, so the reads see what a client would.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib import reads
from chalicelib.api_errors import ApiError
from chalicelib.cycle import run_cycle
from chalicelib.links.outcome import LinkOutcome, PageMetadata
from tests.api_server import serving

AT = "2026-11-23T20:00:00Z"


def describe(job) -> LinkOutcome:
    # The page's "text" names its own URL, and brackets that are the page's own.
    text = f"Notes on [brackets] and sourdough bread from {job.url}"
    return LinkOutcome(
        link_id=job.link_id,
        metadata=PageMetadata(title=f"Page {job.url.rsplit('/', 1)[1]}"),
        text=text,
        word_count=len(text.split()),
        reading_minutes=1,
        summary=text,
    )


def event(event_id: str, name: str, args: dict) -> dict:
    return {"id": event_id, "name": name, "args": args, "at": AT}


def push(api, batch: str, events: list[dict]) -> None:
    api.push({"batch_id": batch, "client_id": "web", "events": events}).raise_for_status()


def save(number: int) -> dict:
    return event(
        f"save-{number}",
        "v1.LinkCreated",
        {"id": f"l{number}", "url": f"https://example.com/{number}", "createdAt": AT},
    )


@pytest.fixture
def api(local_store):
    with serving(local_store) as running:
        push(
            running,
            "b1",
            [
                event("t1", "v1.TagCreated", {"id": "bread", "name": "Bread", "createdAt": AT}),
                event("t2", "v1.TagCreated", {"id": "boats", "name": "Boats", "createdAt": AT}),
                event("t3", "v1.TagCreated", {"id": "gone", "name": "Gone", "createdAt": AT}),
                *[save(number) for number in range(1, 7)],
                event("g1", "v1.LinkTagged", {"id": "g1", "linkId": "l1", "tagId": "bread", "createdAt": AT}),
                event("g2", "v1.LinkTagged", {"id": "g2", "linkId": "l2", "tagId": "bread", "createdAt": AT}),
                event("g3", "v1.LinkTagged", {"id": "g3", "linkId": "l3", "tagId": "bread", "createdAt": AT}),
                event("g4", "v1.LinkTagged", {"id": "g4", "linkId": "l3", "tagId": "boats", "createdAt": AT}),
                event("d1", "v1.LinkDeleted", {"id": "l3", "deletedAt": AT}),
                event("d2", "v1.TagDeleted", {"id": "gone", "deletedAt": AT}),
                event("c1", "v1.LinkCompleted", {"id": "l2", "completedAt": AT}),
                event("c2", "v1.LinkCompleted", {"id": "l4", "completedAt": AT}),
                event("c3", "v1.LinkCompleted", {"id": "l5", "completedAt": AT}),
                event("u1", "v1.LinkUncompleted", {"id": "l5"}),
            ],
        )
        report = run_cycle(local_store, "acme", process=describe, holder="test", emit=lambda line: None)
        assert report.outcome == "done"
        running.store = local_store
        yield running


def get(api, path: str, **params):
    return api.http.get(f"{api.url}{path}", params=params, headers=api.auth(), timeout=30)


def ids(answer) -> list[str]:
    return [link["id"] for link in answer.json()["links"]]


def test_tags_are_listed_with_the_count_of_links_that_carry_them(api):
    answer = get(api, "/v1/tags").json()

    # The deleted tag is gone; the deleted link l3 counts for neither tag.
    assert [(tag["id"], tag["name"], tag["count"]) for tag in answer["tags"]] == [
        ("boats", "Boats", 0),
        ("bread", "Bread", 2),
    ]
    assert answer["version"] >= 1


def test_tags_come_in_pages_that_follow_the_cursor(api):
    first = get(api, "/v1/tags", limit="1").json()
    assert [tag["id"] for tag in first["tags"]] == ["boats"] and first["next_cursor"]

    second = get(api, "/v1/tags", limit="1", cursor=first["next_cursor"]).json()

    assert [tag["id"] for tag in second["tags"]] == ["bread"] and second["next_cursor"] is None
    assert get(api, "/v1/tags").json()["next_cursor"] is None


@pytest.mark.parametrize("params, field", [
    ({"cursor": "nonsense"}, "cursor"), ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"limit": "x"}, "limit"),
])
def test_a_bad_tag_cursor_or_limit_is_a_422_naming_it(api, params, field):
    answer = get(api, "/v1/tags", **params)
    assert answer.status_code == 422, answer.text
    assert field in answer.text


def test_tags_need_a_token(api):
    assert api.http.get(f"{api.url}/v1/tags", timeout=30).status_code == 401


def test_archived_filter_splits_read_links_from_unread_ones(api):
    assert ids(get(api, "/v1/links", archived="true")) == ["l4", "l2"]
    # l5 was archived and then unarchived.
    assert ids(get(api, "/v1/links", archived="false")) == ["l6", "l5", "l1"]
    assert ids(get(api, "/v1/links")) == ["l6", "l5", "l4", "l2", "l1"]


def test_filters_combine(api):
    assert ids(get(api, "/v1/links", archived="false", tag="bread")) == ["l1"]
    assert ids(get(api, "/v1/links", archived="true", tag="bread", status="completed")) == ["l2"]


def test_the_cursor_is_stable_while_links_are_saved_and_archived(api):
    first = get(api, "/v1/links", archived="false", limit="2").json()
    assert [link["id"] for link in first["links"]] == ["l6", "l5"]
    # Between two pages the user saves a link and archives one already seen.
    push(api, "b2", [save(7), event("c4", "v1.LinkCompleted", {"id": "l6", "completedAt": AT})])

    second = get(api, "/v1/links", archived="false", limit="2", cursor=first["next_cursor"]).json()

    assert [link["id"] for link in second["links"]] == ["l1"]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    "params",
    [
        {"archived": "yes"},
        {"archived": "TRUE"},
        {"archived": ""},
        {"archived": "1"},
        {"archived": "true\x00"},
        {"cursor": "-1"},
        {"cursor": "1 OR 1=1"},
        {"cursor": "9" * 40},
        {"limit": "0"},
        {"limit": "201"},
        {"status": "archived"},
    ],
)
def test_hostile_filter_values_are_refused_by_name(api, params):
    answer = get(api, "/v1/links", **params)

    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["path"] == next(iter(params))


@pytest.mark.parametrize("tag", ["' OR 1=1 --", "bread%", "*", "\u202ebread", "b" * 500])
def test_a_tag_filter_matches_the_id_exactly(api, tag):
    answer = get(api, "/v1/links", tag=tag)

    assert answer.status_code == 200
    assert answer.json()["links"] == []


def test_search_results_carry_the_link_and_highlights_a_client_can_mark(api):
    result = get(api, "/v1/search", q="sourdough").json()["results"][0]

    matched = [text for text, is_match in result["highlights"] if is_match]
    assert [text.lower() for text in matched] == ["sourdough"]
    # The page's own brackets are text, not a match.
    assert "[brackets]" in "".join(text for text, _ in result["highlights"])
    assert result["link"]["status"] == "completed"
    assert result["link"]["id"] == result["id"]
    assert "[sourdough]" in result["snippet"].lower()


@settings(max_examples=60, deadline=None)
@given(value=st.text(max_size=20).filter(lambda text: text not in ("true", "false")))
def test_any_other_archived_value_is_a_422(value):
    with pytest.raises(ApiError) as refused:
        reads.list_links(reads.ReadCache(), None, "acme", {"archived": value})
    assert refused.value.status == 422


def test_listed_links_carry_their_reading_time(api):
    links = get(api, "/v1/links").json()["links"]

    assert {link["reading_minutes"] for link in links} == {1}
