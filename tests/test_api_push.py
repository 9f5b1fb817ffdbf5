"""POST /v1/sync/push over HTTP: commits, retries by batch id, and every refusal."""

from __future__ import annotations

import json
import time

import jwt
import pytest

from chalicelib import log, sync
from chalicelib.api_errors import ApiError
from chalicelib.log import find_head, read_commits
from chalicelib.store.faulty import Fault, FaultyStore
from tests.api_server import SECRET, serving

AT = "2026-11-23T20:00:00Z"


def link_created(n: int, url: str = "https://example.com/a") -> dict:
    return {"id": f"e{n}", "name": "v1.LinkCreated",
            "args": {"id": f"l{n}", "url": url, "createdAt": AT}, "at": AT}


def batch(batch_id: str, *events) -> dict:
    return {"batch_id": batch_id, "client_id": "phone", "events": list(events)}


@pytest.fixture
def api(local_store):
    with serving(local_store) as running:
        yield running


def test_a_push_commits_and_wakes_the_processor(api, local_store):
    response = api.push(batch("b1", link_created(1)))

    assert response.status_code == 200
    assert response.json() == {"version": 1}
    assert api.queue.pending() == ["acme"]
    (commit,) = read_commits(local_store, "acme", 0)
    assert commit["author"] == {"kind": "client", "id": "phone"}
    assert commit["events"] == [link_created(1)]


def test_the_same_batch_again_returns_the_first_version_and_adds_nothing(api, local_store):
    api.push(batch("b1", link_created(1)))
    api.push(batch("b2", link_created(2)))

    again = api.push(batch("b1", link_created(1)))

    assert again.status_code == 200
    assert again.json() == {"version": 1}
    assert find_head(local_store, "acme") == 2


def test_the_same_batch_id_from_another_client_is_another_batch(api, local_store):
    api.push(batch("b1", link_created(1)))

    other = api.push({**batch("b1", link_created(2)), "client_id": "laptop"})

    assert other.json() == {"version": 2}


def test_the_org_comes_from_the_token(api, local_store):
    api.push(batch("b1", link_created(1)), org="zeta")

    assert find_head(local_store, "zeta") == 1
    assert find_head(local_store, "acme") == 0


def hs256(**claims) -> str:
    return jwt.encode(claims, SECRET, algorithm="HS256")


LATER = int(time.time()) + 3600
GOOD = json.dumps(batch("b9", link_created(9))).encode()


@pytest.mark.parametrize(
    "raw, headers, status, code",
    [
        (b'{"batch_id": ', {}, 400, "malformed_json"),
        (json.dumps(batch(7, link_created(1))).encode(), {}, 422, "invalid"),
        (json.dumps(batch("b", {"id": "e", "name": "v1.Unknown", "args": {}, "at": AT})).encode(),
         {}, 422, "invalid"),
        (json.dumps(batch("b", {"id": "e", "name": "v1.LinkProcessingCompleted",
                                "args": {"linkId": "l", "completedAt": AT}, "at": AT})).encode(),
         {}, 422, "invalid"),
        (json.dumps(batch("b", link_created(1, url="javascript:alert(1)"))).encode(),
         {}, 422, "invalid"),
        (GOOD + b" " * (1024 * 1024 + 1 - len(GOOD)), {}, 413, "body_too_large"),
        (json.dumps(batch("b", *[link_created(n) for n in range(501)])).encode(),
         {}, 413, "too_many_events"),
        (GOOD, {"Authorization": ""}, 401, "unauthorized"),
        (GOOD, {"Authorization": f"Bearer {hs256(sub='u', org='acme', exp=int(time.time()) - 300)}"},
         401, "unauthorized"),
        (GOOD, {"Authorization": "Bearer " + jwt.encode(
            {"sub": "u", "org": "acme", "exp": LATER}, "some-other-secret-long-enough-for-hs256",
            algorithm="HS256")}, 401, "unauthorized"),
        (GOOD, {"Authorization": "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
                + jwt.utils.base64url_encode(json.dumps(
                    {"sub": "u", "org": "acme", "exp": LATER}).encode()).decode() + "."},
         401, "unauthorized"),
        (GOOD, {"Authorization": f"Bearer {hs256(sub='u', exp=LATER)}"}, 401, "unauthorized"),
    ],
    ids=[
        "malformed-json", "wrong-type", "unknown-event", "processor-event", "javascript-url",
        "body-1MB+1", "501-events", "no-token", "expired-token", "wrong-signature",
        "alg-none", "no-org",
    ],
)
def test_bad_input_is_refused_with_the_error_shape_and_writes_nothing(
    api, local_store, raw, headers, status, code
):
    api.push(batch("b0", link_created(0)))
    head_before = find_head(local_store, "acme")
    puts_before = local_store.counts()["put"]

    response = api.push(raw, headers=headers)

    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert find_head(local_store, "acme") == head_before == 1
    assert local_store.counts()["put"] == puts_before


def test_a_422_names_the_failing_fields(api):
    response = api.push(batch("b", link_created(1, url="javascript:alert(1)")))

    assert response.json()["error"]["details"] == [
        {"path": "events.0.args.url",
         "message": "Value error, only http and https URLs are accepted", "type": "value_error"}
    ]


def test_a_busy_log_answers_503_with_retry_after(api, local_store, monkeypatch):
    def busy(*args, **kwargs):
        raise log.LogBusy(1)

    monkeypatch.setattr("chalicelib.sync.append", busy)

    response = api.push(batch("b1", link_created(1)))

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "log_busy"
    assert find_head(local_store, "acme") == 0


def test_health_needs_no_token(api):
    response = api.http.get(f"{api.url}/health", timeout=10)

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_retried_pushes_through_a_failing_store_commit_each_batch_once(local_store):
    store = FaultyStore(local_store, fail_rate=0.3, seed=11)
    index = sync.LogIndex()
    answered = {}
    for n in range(30):
        raw = json.dumps(batch(f"b{n}", link_created(n))).encode()
        while True:
            try:
                answered[f"b{n}"] = sync.push(store, "acme", raw, notify=lambda org: None,
                                              index=index, sleep=lambda s: None)["version"]
                break
            except ApiError as error:
                assert error.status == 503
                assert error.retry_after == 1

    assert len(store.injected) > 30
    commits = read_commits(local_store, "acme", 0)
    assert {c["batch_id"]: c["version"] for c in commits} == answered
    assert len(commits) == 30


def test_a_push_that_landed_unseen_is_recognized_when_retried(local_store):
    def plan(kind, key, n):
        # The commit's put lands but its answer is lost, and reading it back
        # fails too, so the first push cannot know it committed. (Put 1 is
        # the batch's marker.)
        if kind == "put" and n == 2:
            return Fault.LOST_RESPONSE
        if kind == "get" and n <= 2:
            return Fault.TRANSIENT
        return None

    store = FaultyStore(local_store, plan=plan)
    index = sync.LogIndex()
    raw = json.dumps(batch("b1", link_created(1))).encode()

    with pytest.raises(ApiError) as caught:
        sync.push(store, "acme", raw, notify=lambda org: None, index=index,
                  max_attempts=2, sleep=lambda s: None)
    assert caught.value.status == 503
    assert find_head(local_store, "acme") == 1

    again = sync.push(store, "acme", raw, notify=lambda org: None, index=index)

    assert again == {"version": 1}
    assert find_head(local_store, "acme") == 1


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "application/x-www-form-urlencoded"]
)
def test_a_json_body_is_read_whatever_text_content_type_it_is_labelled(api, content_type):
    response = api.push(batch("b1", link_created(1)), headers={"Content-Type": content_type})

    assert (response.status_code, response.json()) == (200, {"version": 1})
