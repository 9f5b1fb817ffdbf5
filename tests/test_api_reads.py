"""The read routes over HTTP: links, one link, search, read-only SQL, stats.

An org's links are saved through the push route and processed by a real
cycle with a deterministic ProcessLink, so the reads see what a client would.
"""

from __future__ import annotations

import pytest

from chalicelib import reads
from chalicelib.api_errors import ApiError
from chalicelib.cycle import run_cycle
from chalicelib.links.outcome import LinkOutcome, PageMetadata, TagSuggestion
from chalicelib.store.faulty import Fault, FaultyStore
from tests.api_server import serving

AT = "2026-11-23T20:00:00Z"

PAGES = {
    "https://example.com/sourdough": ("Sourdough at home", "Flour, water and patience make a loaf of sourdough bread."),
    "https://example.com/kayak": ("Sea kayaking", "Paddling along the coast in a sea kayak at dawn."),
}


def describe(job) -> LinkOutcome:
    title, text = PAGES[job.url]
    suggestions = tuple(TagSuggestion(tag.id, 0.9) for tag in job.tags if tag.name in text)
    return LinkOutcome(
        link_id=job.link_id,
        metadata=PageMetadata(title=title, description=f"About {title.lower()}"),
        text=text,
        word_count=len(text.split()),
        reading_minutes=1,
        summary=text,
        suggestions=suggestions,
    )


def event(event_id: str, name: str, args: dict) -> dict:
    return {"id": event_id, "name": name, "args": args, "at": AT}


@pytest.fixture
def api(local_store):
    with serving(local_store) as running:
        running.push(
            {
                "batch_id": "b1",
                "client_id": "phone",
                "events": [
                    event("t1", "v1.TagCreated", {"id": "bread", "name": "bread", "createdAt": AT}),
                    event("e1", "v1.LinkCreated", {"id": "l1", "url": "https://example.com/sourdough", "createdAt": AT}),
                    event("e2", "v1.LinkCreated", {"id": "l2", "url": "https://example.com/kayak", "createdAt": AT}),
                ],
            }
        ).raise_for_status()
        report = run_cycle(local_store, "acme", process=describe, holder="test", emit=lambda line: None)
        assert report.outcome == "done"
        running.store = local_store
        yield running


def get(api, path: str, org: str = "acme", **params):
    return api.http.get(f"{api.url}{path}", params=params, headers=api.auth(org), timeout=30)


def query(api, body: bytes | str):
    raw = body.encode() if isinstance(body, str) else body
    return api.http.post(
        f"{api.url}/v1/query",
        data=raw,
        headers={"Content-Type": "application/json", **api.auth()},
        timeout=30,
    )


def test_links_lists_saved_links_newest_first_with_status_and_metadata(api):
    page = get(api, "/v1/links").json()

    assert [link["id"] for link in page["links"]] == ["l2", "l1"]
    assert page["links"][1]["metadata"]["title"] == "Sourdough at home"
    assert page["links"][1]["status"] == "completed"
    assert page["next_cursor"] is None


def test_links_pages_with_a_cursor(api):
    first = get(api, "/v1/links", limit="1").json()
    second = get(api, "/v1/links", limit="1", cursor=first["next_cursor"]).json()

    assert [link["id"] for link in first["links"]] == ["l2"]
    assert [link["id"] for link in second["links"]] == ["l1"]
    assert second["next_cursor"] is None


def test_one_link_has_text_summary_and_suggestions(api):
    link = get(api, "/v1/links/l1").json()

    assert link["text"] == PAGES["https://example.com/sourdough"][1]
    assert link["summary"] == PAGES["https://example.com/sourdough"][1]
    assert [s["tag_id"] for s in link["suggestions"]] == ["bread"]


def test_a_warm_container_reads_a_push_made_after_its_last_read(api):
    assert [link["id"] for link in get(api, "/v1/links").json()["links"]] == ["l2", "l1"]
    api.push(
        {
            "batch_id": "b2",
            "client_id": "phone",
            "events": [event("e3", "v1.LinkDeleted", {"id": "l2", "deletedAt": AT})],
        }
    ).raise_for_status()

    assert [link["id"] for link in get(api, "/v1/links").json()["links"]] == ["l1"]


def test_search_finds_text_with_a_snippet(api):
    results = get(api, "/v1/search", q="kayak").json()["results"]

    assert [r["id"] for r in results] == ["l2"]
    assert "[kayak" in results[0]["snippet"].lower()


def test_search_with_odd_characters_is_not_an_error(api):
    answer = get(api, "/v1/search", q='"unbalanced AND (( NEAR*')
    assert answer.status_code == 200


def test_readonly_sql_answers_a_select(api):
    answer = query(api, '{"sql": "SELECT id, url FROM links ORDER BY id"}').json()

    assert answer["columns"] == ["id", "url"]
    assert answer["rows"] == [
        ["l1", "https://example.com/sourdough"],
        ["l2", "https://example.com/kayak"],
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM links",
        "INSERT INTO tags (id, name) VALUES ('x', 'x')",
        "DROP TABLE links",
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "SELECT 1; DELETE FROM links",
    ],
)
def test_readonly_sql_refuses_writes_and_changes_nothing(api, sql):
    answer = query(api, f'{{"sql": "{sql}"}}')

    assert answer.status_code == 422
    assert answer.json()["error"]["code"].startswith("query_")
    assert query(api, '{"sql": "SELECT count(*) FROM links"}').json()["rows"] == [[2]]


def test_readonly_sql_longer_than_the_limit_is_413(api):
    answer = query(api, '{"sql": "SELECT ' + "1" * 10_001 + '"}')
    assert answer.status_code == 413


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"sql": "SELECT 1", "extra": 1}', b'{"sql": 5}'])
def test_readonly_sql_bad_bodies(api, body):
    answer = query(api, body)
    assert answer.status_code in (400, 422)
    assert set(answer.json()["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize(
    "path, params, status",
    [
        ("/v1/links", {"status": "sleeping"}, 422),
        ("/v1/links", {"limit": "many"}, 422),
        ("/v1/links", {"limit": "0"}, 422),
        ("/v1/links", {"cursor": "not-a-cursor"}, 422),
        ("/v1/search", {}, 422),
        ("/v1/search", {"q": "x", "limit": "1000"}, 422),
        ("/v1/links/no-such-link", {}, 404),
    ],
)
def test_bad_read_parameters(api, path, params, status):
    answer = get(api, path, **params)

    assert answer.status_code == status
    assert set(answer.json()["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize("path", ["/v1/links", "/v1/links/l1", "/v1/search?q=x", "/v1/stats"])
def test_reads_need_a_token(api, path):
    answer = api.http.get(f"{api.url}{path}", timeout=30)
    assert answer.status_code == 401


def test_another_org_sees_none_of_these_links(api):
    assert get(api, "/v1/links", org="other").json()["links"] == []
    assert get(api, "/v1/links/l1", org="other").status_code == 404


def test_stats_report_version_and_snapshot(api):
    figures = get(api, "/v1/stats").json()

    assert figures["version"] == 3
    assert figures["links"] == 2
    assert figures["snapshot"]["version"] == 3
    assert figures["snapshot"]["size"] > 0
    assert figures["snapshot"]["age_seconds"] is not None
    chain = figures["snapshot"]["chain"]
    assert (chain["tip_version"], chain["deltas"], chain["complete"]) == (3, 0, True)
    assert chain["base_version"] + chain["deltas"] >= 1 and chain["base_size"] > 0
    assert figures["last_cycle"]["outcome"] == "done"
    assert figures["last_cycle"]["links_done"] == 2
    assert set(figures["last_cycle"]["timings_ms"]) >= {"lease", "process", "total"}


def test_the_web_page_is_served_without_a_token(api):
    answer = api.http.get(f"{api.url}/", timeout=30)

    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert '<script src="/web/app.js"' in answer.text
    script = api.http.get(f"{api.url}/web/app.js", timeout=30).text
    assert "/v1/sync/push" in script and "/v1/links" in script


def test_a_store_that_does_not_answer_is_a_503_like_the_sync_routes_and_not_remembered(api):
    # Every list fails while ``down`` holds: the first read cannot find the
    # head of the log. The next read, with the store back, starts afresh.
    down = True
    store = FaultyStore(api.store, plan=lambda kind, key, n: Fault.TRANSIENT if down and kind == "list" else None)
    cache = reads.ReadCache()

    with pytest.raises(ApiError) as caught:
        reads.list_links(cache, store, "acme", {})

    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (503, "store_unavailable", 1)
    down = False
    assert [link["id"] for link in reads.list_links(cache, store, "acme", {})["links"]] == ["l2", "l1"]
