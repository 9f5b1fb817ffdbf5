"""Batch markers: a new batch commits without reading the log, a retried one
is found and written nothing for, whatever its ids, across containers and
a push killed between its marker and its commit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib import batchmarkers, sync
from chalicelib.api_errors import ApiError
from chalicelib.log import append, find_head, read_commits
from chalicelib.store.faulty import Fault, FaultyStore
from chalicelib.store.keyrules import check_key
from processes import kill_child_at
from push_writer import ORG, body

CHILD = Path(__file__).resolve().parent / "push_child.py"
AT = "2026-11-23T20:00:00Z"
# What parse_push accepts for an id: 1-64 characters, no control characters.
ids = st.text(
    st.characters(blacklist_categories=("Cc",), blacklist_characters="\x7f"),
    min_size=1, max_size=64,
)


def push_of(client_id: str, batch_id: str, event_id: str = "e1") -> bytes:
    return json.dumps({
        "batch_id": batch_id,
        "client_id": client_id,
        "events": [{"id": event_id, "name": "v1.TagCreated",
                    "args": {"id": event_id, "name": "t", "createdAt": AT}, "at": AT}],
    }).encode()


def push(store, raw: bytes, index: sync.LogIndex) -> int:
    return sync.push(store, ORG, raw, notify=lambda org: None, index=index)["version"]


def spec_of(store, tmp_path, moto_server) -> str:
    inner = store.inner
    if hasattr(inner, "bucket"):
        return f"s3://{inner.bucket}@{moto_server}"
    return f"file://{tmp_path / 'store'}"


@pytest.mark.parametrize("backend", ["local", "server"])
def test_a_batch_pushed_again_through_another_container_writes_nothing(request, backend):
    store = request.getfixturevalue(f"{backend}_store")
    first, other = sync.LogIndex(), sync.LogIndex()
    assert push(store, body(0, 0), first) == 1
    assert push(store, body(1, 0), other) == 2
    assert push(store, body(0, 1), first) == 3
    puts = store.counts()["put"]

    # The retry comes to a container that never saw batch 0, and to one that did.
    assert push(store, body(0, 0), other) == 1
    assert push(store, body(0, 0), sync.LogIndex()) == 1
    assert push(store, body(0, 0), first) == 1

    # One put each, the marker's, refused: nothing was written.
    assert store.counts()["put"] - puts == 3
    assert find_head(store, ORG) == 3


def test_a_new_batch_from_a_lone_writer_costs_two_puts_and_reads_nothing(local_store):
    index = sync.LogIndex()
    push(local_store, body(0, 0), index)
    before = local_store.counts()

    for n in range(1, 11):
        assert push(local_store, body(0, n), index) == n + 1

    after = local_store.counts()
    spent = {kind: after[kind] - before[kind] for kind in after}
    # The marker and the commit; no listing, no reading of the log.
    assert spent == {"get": 0, "head": 0, "put": 20, "delete": 0, "list": 0}


def test_a_writer_whose_guess_was_stale_lists_before_its_next_push(local_store):
    index, other = sync.LogIndex(), sync.LogIndex()
    push(local_store, body(0, 0), index)
    for n in range(3):
        push(local_store, body(1, n), other)

    # Its guess (version 2) is taken: it waits, then lists.
    assert push(local_store, body(0, 1), index) == 5
    for n in range(3, 6):
        push(local_store, body(1, n), other)
    before = local_store.counts()

    assert push(local_store, body(0, 2), index) == 9

    after = local_store.counts()
    # Its last guess did not land, so this push lists first: marker, list, commit.
    assert (after["put"] - before["put"], after["list"] - before["list"]) == (2, 1)

    # Others moved on since, so it lists again; this time it finds no one
    # else committed, and the push after that guesses again.
    assert push(local_store, body(0, 3), index) == 10
    assert local_store.counts()["list"] - after["list"] == 1
    quiet = local_store.counts()
    assert push(local_store, body(0, 4), index) == 11
    assert (local_store.counts()["list"], local_store.counts()["put"]) == (quiet["list"], quiet["put"] + 2)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(ids, ids), min_size=2, max_size=6, unique=True))
def test_marker_keys_are_safe_and_tell_batches_apart(pairs):
    keys = [batchmarkers.marker_key(ORG, client, batch) for client, batch in pairs]

    assert len(set(keys)) == len(pairs)
    for key in keys:
        assert check_key(key) == key
        prefix, name = key.rsplit("/", 1)
        assert prefix + "/" == batchmarkers.marker_prefix(ORG)
        assert len(name) == 64 and set(name) <= set("0123456789abcdef")


HOSTILE = ["../../lease.json", "a/b", "/", ".", "..", "%2e%2e%2f", "x" * 64,
           "é\u202e\u200b", "\ud83d\ude00", "a\\b", '"quoted"', "orgs/other/log/1"]


def test_hostile_ids_claim_a_marker_and_are_recognized_when_pushed_again(local_store):
    index = sync.LogIndex()
    versions = {}
    for n, hostile in enumerate(HOSTILE):
        versions[hostile] = push(local_store, push_of(hostile, hostile, f"e{n}"), index)

    for n, hostile in enumerate(HOSTILE):
        assert push(local_store, push_of(hostile, hostile, f"e{n}"), sync.LogIndex()) == versions[hostile]
    assert find_head(local_store, ORG) == len(HOSTILE)
    keys = [info.key for info in local_store.list(batchmarkers.marker_prefix(ORG))]
    assert len(keys) == len(HOSTILE)
    assert all(key.startswith(batchmarkers.marker_prefix(ORG)) for key in keys)


def test_two_clients_with_the_same_batch_id_are_two_batches(local_store):
    index = sync.LogIndex()
    assert push(local_store, push_of("phone", "b1"), index) == 1
    assert push(local_store, push_of("laptop", "b1"), index) == 2
    assert push(local_store, push_of("phone", "b1"), sync.LogIndex()) == 1


@pytest.mark.parametrize("backend", ["local", "server"])
def test_a_push_killed_between_marker_and_commit_commits_once_when_retried(
    request, tmp_path, moto_server, backend
):
    store = request.getfixturevalue(f"{backend}_store")
    kill_child_at([str(CHILD), spec_of(store, tmp_path, moto_server), "0", "0"], "commit_put")
    marker = batchmarkers.marker_key(ORG, "client:writer-0", "w0-b0")
    store.head(marker)  # claimed, never committed
    assert find_head(store, ORG) == 0

    assert push(store, body(0, 0), sync.LogIndex()) == 1
    assert push(store, body(0, 0), sync.LogIndex()) == 1

    assert [commit["batch_id"] for commit in read_commits(store, ORG, 0)] == ["w0-b0"]


def test_a_batch_committed_before_markers_is_committed_again_as_before(local_store):
    # A push from before this change left no marker: its retry is taken
    # for a new batch (docs/decisions.md). Its event ids repeat, which the
    # state and pull absorb.
    append(local_store, ORG, json.loads(body(0, 0))["events"], batch_id="w0-b0",
           author={"kind": "client", "id": "writer-0"})

    assert push(local_store, body(0, 0), sync.LogIndex()) == 2
    # From then on the marker is there, and the log's first commit of the
    # batch is the answer.
    assert push(local_store, body(0, 0), sync.LogIndex()) == 1
    assert find_head(local_store, ORG) == 2


@pytest.mark.parametrize("faults, claimed", [
    ([Fault.TRANSIENT], True),  # nothing landed: the second try claims it
    ([Fault.LOST_RESPONSE], False),  # ours landed unseen: the log decides
    ([Fault.CONFLICT, Fault.TRANSIENT], True),
])
def test_a_failed_claim_is_tried_until_the_marker_is_known_to_be_there(local_store, faults, claimed):
    store = FaultyStore(local_store, plan=lambda kind, key, n: faults[n - 1] if n <= len(faults) else None)

    assert batchmarkers.claim(store, ORG, "client:phone", "b1") is claimed
    local_store.head(batchmarkers.marker_key(ORG, "client:phone", "b1"))


def test_a_claim_that_keeps_failing_is_a_503_and_commits_nothing(local_store):
    store = FaultyStore(local_store, plan=lambda kind, key, n: Fault.TRANSIENT if kind == "put" else None)

    with pytest.raises(ApiError) as caught:
        push(store, body(0, 0), sync.LogIndex())

    assert caught.value.status == 503
    assert find_head(local_store, ORG) == 0


class BeatenOnce:
    """Another writer takes version 1 just before our first commit put."""

    def __init__(self, inner):
        self.inner = inner
        self.beaten = False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, data, **kwargs):
        if "/log/" in key and not self.beaten:
            self.beaten = True
            append(self.inner, ORG, json.loads(body(9, 0))["events"], batch_id="w9-b0",
                   author={"kind": "client", "id": "writer-9"})
        return self.inner.put(key, data, **kwargs)


def test_a_push_that_gave_up_with_nothing_landed_is_retried_here_without_reading(local_store):
    index = sync.LogIndex()
    with pytest.raises(ApiError) as caught:
        sync.push(BeatenOnce(local_store), ORG, body(0, 0), notify=lambda org: None,
                  index=index, max_attempts=1)
    assert caught.value.status == 503
    gets = local_store.counts()["get"]

    # Its marker is there, but this container knows nothing of it landed.
    assert push(local_store, body(0, 0), index) == 2

    assert local_store.counts()["get"] == gets
    assert push(local_store, body(0, 0), sync.LogIndex()) == 2
    assert find_head(local_store, ORG) == 2
