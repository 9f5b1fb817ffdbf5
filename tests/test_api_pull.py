"""GET /v1/sync/pull over HTTP: pages of commits, each event id handed out once."""

from __future__ import annotations

import json

import pytest

from chalicelib import sync
from chalicelib.log import append
from chalicelib.queue import LocalQueue
from tests.api_server import serving

AT = "2026-11-23T20:00:00Z"


def restored(event_id: str) -> dict:
    return {"id": event_id, "name": "v1.LinkRestored", "args": {"id": "l1"}, "at": AT}


def batch(batch_id: str, *event_ids: str) -> dict:
    return {"batch_id": batch_id, "client_id": "phone", "events": [restored(e) for e in event_ids]}


def shape(page: dict) -> list[tuple[int, list[str]]]:
    return [(c["version"], [e["id"] for e in c["events"]]) for c in page["commits"]]


@pytest.fixture
def api(local_store):
    with serving(local_store) as running:
        yield running


def test_an_empty_log_pulls_nothing(api):
    assert api.pull(since=0).json() == {"commits": [], "head": 0, "has_more": False}


def test_pages_hold_whole_commits_up_to_the_limit(api):
    for n in range(5):
        api.push(batch(f"b{n}", f"e{n}a", f"e{n}b", f"e{n}c"))

    first = api.pull(since=0, limit=7).json()
    assert shape(first) == [(1, ["e0a", "e0b", "e0c"]), (2, ["e1a", "e1b", "e1c"])]
    assert (first["head"], first["has_more"]) == (5, True)

    rest = api.pull(since=2).json()
    assert [c["version"] for c in rest["commits"]] == [3, 4, 5]
    assert (rest["head"], rest["has_more"]) == (5, False)
    assert rest["commits"][0]["author"] == {"kind": "client", "id": "phone"}
    assert rest["commits"][0]["batch_id"] == "b2"


def test_a_first_commit_larger_than_the_limit_comes_alone(api):
    api.push(batch("big", "a", "b", "c", "d"))
    api.push(batch("small", "e"))

    page = api.pull(since=0, limit=2).json()

    assert shape(page) == [(1, ["a", "b", "c", "d"])]
    assert page["has_more"] is True


def test_an_event_id_is_handed_out_once(api):
    api.push(batch("b1", "e1", "e2"))
    api.push(batch("b2", "e2", "e3"))

    assert shape(api.pull(since=0).json()) == [(1, ["e1", "e2"]), (2, ["e3"])]
    assert shape(api.pull(since=1).json()) == [(2, ["e3"])]


def test_commits_written_by_others_are_pulled(api, local_store):
    api.push(batch("b1", "e1"))
    append(local_store, "acme", [restored("p1")], batch_id="elsewhere",
           author={"kind": "client", "id": "another-process"})

    page = api.pull(since=1).json()

    assert shape(page) == [(2, ["p1"])]
    assert page["head"] == 2


def test_a_full_page_that_reaches_the_known_head_still_finds_newer_commits(api, local_store):
    # The server knows head 2 from its own pushes; the processor then commits
    # more. A page filled exactly at head 2 must not say there is no more.
    api.push(batch("b1", "e1", "e2"))
    api.push(batch("b2", "e3", "e4"))
    append(local_store, "acme", [restored("p1")], batch_id="processor",
           author={"kind": "processor", "id": "elsewhere"})

    page = api.pull(since=0, limit=4).json()

    assert shape(page) == [(1, ["e1", "e2"]), (2, ["e3", "e4"])]
    assert (page["head"], page["has_more"]) == (3, True)
    assert shape(api.pull(since=2).json()) == [(3, ["p1"])]


def test_a_since_beyond_the_head_pulls_nothing(api):
    api.push(batch("b1", "e1"))

    assert api.pull(since=9).json() == {"commits": [], "head": 1, "has_more": False}


@pytest.mark.parametrize(
    "params, path",
    [({"since": "-1"}, "since"), ({"since": "abc"}, "since"), ({"since": "1.5"}, "since"),
     ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"limit": "many"}, "limit")],
)
def test_bad_query_values_are_a_422(api, params, path):
    response = api.pull(**params)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["details"][0]["path"] == path


def test_pull_needs_a_token(api):
    response = api.http.get(f"{api.url}/v1/sync/pull", timeout=10)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_a_cold_index_reads_only_its_window(local_store):
    def push(n: int, index: sync.LogIndex) -> dict:
        return sync.push(local_store, "acme", json.dumps(batch(f"b{n}", f"e{n}")).encode(),
                         notify=LocalQueue().send, index=index)

    first = sync.LogIndex()
    for n in range(1, 7):
        push(n, first)
    index = sync.LogIndex(cold_start_commits=2)
    gets_before = local_store.counts()["get"]

    # Pushed again through another (cold) container: its marker is there.
    assert push(6, index) == {"version": 6}

    # Versions 5 and 6 were read; b6 (version 6) was recognized, nothing new written.
    assert local_store.counts()["get"] - gets_before == 2
    assert sync.pull(local_store, "acme", 6, index=index)["head"] == 6
