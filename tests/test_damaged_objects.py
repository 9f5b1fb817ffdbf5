"""Damaged stored objects stay at the boundary, on every backend.

A byte flipped, inserted or cut off anywhere in a snapshot, a log commit or
the lease (on the local store: anywhere in its file, the object header
included) never becomes an exception that takes down reads or cycles: a
damaged snapshot is skipped, a damaged commit reads as its stand-in
without events, a garbled lease is taken over once it has stood for a
lease's duration. Afterwards the org's reads answer and a link saved then
is processed.
"""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import log, orgstate, reads, snapshots, sync
from chalicelib.api_errors import ApiError
from chalicelib.cycle import LEASE_SECONDS, run_cycle
from chalicelib.keys import lease_key, log_key
from chalicelib.store import LocalStore
from chalicelib.store.faulty import FaultyStore
from chalicelib.store.local import HEADER_SIZE, etag_of
from tests.clocks import FakeClock
from tests.processing_org import FakeProcessor, link_id, save_links

BACKENDS = ["local", "moto", "server", "faulty"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """A store of each kind; "faulty" fails a tenth of the local store's requests."""
    if request.param == "faulty":
        return FaultyStore(request.getfixturevalue("local_store"), fail_rate=0.1, seed=7)
    return request.getfixturevalue(f"{request.param}_store")


def local_of(store) -> LocalStore | None:
    """The LocalStore under the wrappers, if the store is one."""
    while not isinstance(store, LocalStore) and hasattr(store, "inner"):
        store = store.inner
    return store if isinstance(store, LocalStore) else None


def damage(store, key: str, mutate) -> None:
    """Apply ``mutate`` to the object's stored bytes: the whole file on the
    local store (its header too), the body elsewhere."""
    local = local_of(store)
    if local is not None:
        path = local._path(key)
        with open(path, "rb") as f:
            raw = f.read()
        with open(path, "wb") as f:
            f.write(mutate(raw))
        return
    inner = store
    while hasattr(inner, "inner"):
        inner = inner.inner
    inner.put(key, mutate(inner.get(key).body))


def flip(position: int, mask: int):
    def mutate(raw: bytes) -> bytes:
        if not raw:
            return bytes([mask])
        at = position % len(raw)
        return raw[:at] + bytes([raw[at] ^ mask]) + raw[at + 1 :]

    return mutate


def truncate(keep: int):
    return lambda raw: raw[: keep % (len(raw) + 1)]


def insert(position: int, junk: bytes):
    return lambda raw: raw[: position % (len(raw) + 1)] + junk + raw[position % (len(raw) + 1) :]


def replace(junk: bytes):
    return lambda raw: junk


# Positions below 100 land in the local header or the snapshot's header
# line, where one byte decides how the rest is read.
POSITION = st.one_of(st.integers(0, 100), st.integers(0, 10**7))
MUTATION = st.one_of(
    st.builds(flip, POSITION, st.integers(1, 255)),
    st.builds(truncate, POSITION),
    st.builds(insert, POSITION, st.binary(min_size=1, max_size=8)),
    st.builds(replace, st.binary(max_size=64)),
    st.just(replace(b"[" * 5000 + b"]" * 5000)),
)
TARGETS = ["newest snapshot", "oldest snapshot", "log commit", "lease"]


def an_org_with_history(store) -> tuple[str, FakeProcessor]:
    """A new org with two cycles behind it: six commits, two snapshots, a released lease."""
    org = f"org-{uuid.uuid4().hex[:12]}"
    process = FakeProcessor()
    clean = _without_faults(store)
    for numbers in (range(0, 3), range(3, 5)):
        save_links(clean, org, numbers)
        assert cycle(clean, org, process, FakeClock()) == "done"
    return org, process


def _without_faults(store):
    return store.inner if isinstance(store, FaultyStore) else store


def cycle(store, org: str, process, clock) -> str:
    return run_cycle(store, org, process=process, holder="test", clock=clock, emit=lambda line: None).outcome


def target_key(store, org: str, target: str, which: int) -> str:
    if target == "lease":
        return lease_key(org)
    if target == "log commit":
        return log_key(org, 1 + which % log.find_head(_without_faults(store), org))
    listed = snapshots.list_snapshots(_without_faults(store), org)
    return listed[-1 if target == "newest snapshot" else 0].key


def read_everything(store, org: str) -> None:
    """Every read route's function over a cold cache, and a pull: each
    answers, or (only while the store fails requests) says 503."""
    cache = reads.ReadCache()
    calls = [
        lambda: reads.list_links(cache, store, org, {}),
        lambda: reads.get_link(cache, store, org, link_id(4)),
        lambda: reads.search(cache, store, org, {"q": "text"}),
        lambda: reads.run_query(cache, store, org, b'{"sql": "SELECT count(*) FROM links"}'),
        lambda: reads.stats(cache, store, org),
        lambda: sync.pull(store, org, 0, index=sync.LogIndex()),
    ]
    for call in calls:
        try:
            call()
        except ApiError as error:
            # A link lost with a damaged commit is a 404, a failed request a 503.
            assert (error.status, isinstance(store, FaultyStore)) in {(503, True), (404, False), (404, True)}, error


def assert_the_org_still_works(store, org: str, process: FakeProcessor, clock: FakeClock) -> None:
    """With the store answering every request: reads answer, and a link
    saved now is processed (after the lease's duration, if the lease was
    garbled and so counts as held by someone unknown)."""
    store = _without_faults(store)
    state = orgstate.open_state(store, org)
    assert state.version == log.find_head(store, org)
    save_links(store, org, [9])
    outcome = cycle(store, org, process, clock)
    if outcome == "lease_held":
        clock.advance(LEASE_SECONDS + 1)
        outcome = cycle(store, org, process, clock)
    assert outcome == "done"
    link = reads.get_link(reads.ReadCache(), store, org, link_id(9))
    assert link["status"] == "completed"
    read_everything(store, org)


def damage_then_use(store, target: str, which: int, mutate) -> None:
    org, process = an_org_with_history(store)
    damage(store, target_key(store, org, target, which), mutate)

    read_everything(store, org)
    clock = FakeClock()
    # Through the faults too: a cycle ends with an outcome, whatever it met.
    run_cycle(store, org, process=process, holder="test", clock=clock, emit=lambda line: None)
    assert_the_org_still_works(store, org, process, clock)


DAMAGE = {"target": st.sampled_from(TARGETS), "which": st.integers(0, 5), "mutate": MUTATION}
FIXTURE_PER_TEST = [HealthCheck.function_scoped_fixture]


@pytest.mark.parametrize("backend", ["local", "faulty"], indirect=True)
@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURE_PER_TEST)
@given(**DAMAGE)
def test_a_damaged_object_never_takes_down_reads_or_cycles(backend, target, which, mutate):
    damage_then_use(backend, target, which, mutate)


# Over S3 the store has no header of its own and damage is the body's, as
# above; a few examples show the S3 side reads it alike (an example costs
# seconds there).
@pytest.mark.parametrize("backend", ["moto", "server"], indirect=True)
@settings(max_examples=3, deadline=None, suppress_health_check=FIXTURE_PER_TEST)
@given(**DAMAGE)
def test_a_damaged_object_never_takes_down_reads_or_cycles_over_s3(backend, target, which, mutate):
    damage_then_use(backend, target, which, mutate)


def test_a_non_ascii_byte_in_the_newest_snapshots_local_header_is_read_past(local_store):
    # The case of the report: it made every read and cycle of the org fail.
    org, process = an_org_with_history(local_store)
    newest = snapshots.list_snapshots(local_store, org)[-1]
    damage(local_store, newest.key, lambda raw: raw[:10] + b"\xe9" + raw[11:])

    restored = snapshots.restore_latest(local_store, org)
    # The header is only a cache of the body's MD5: the body is intact.
    assert (restored.key, restored.skipped) == (newest.key, [])
    assert_the_org_still_works(local_store, org, process, FakeClock())


@pytest.mark.parametrize("mutate", [flip(HEADER_SIZE + 30, 0x10), truncate(HEADER_SIZE + 60)])
def test_a_damaged_newest_snapshot_falls_back_to_the_previous_one(backend, mutate):
    org, process = an_org_with_history(backend)
    older, newest = snapshots.list_snapshots(_without_faults(backend), org)[-2:]
    damage(backend, newest.key, mutate)

    restored = snapshots.restore_latest(_without_faults(backend), org)

    assert restored.key == older.key
    assert [key for key, _ in restored.skipped] == [newest.key]
    assert_the_org_still_works(backend, org, process, FakeClock())


def test_a_damaged_client_commit_costs_its_links_and_pull_shows_the_damage(backend):
    org, process = an_org_with_history(backend)
    damage(backend, log_key(org, 4), lambda raw: raw[:-5])
    store = _without_faults(backend)
    # The newest snapshot already holds commit 4; without snapshots the
    # state is rebuilt from the log, damage and all.
    snapshots.delete_snapshots(store, snapshots.list_snapshots(store, org))

    links = reads.list_links(reads.ReadCache(), store, org, {"limit": "50"})["links"]
    commits = sync.pull(store, org, 0, index=sync.LogIndex())["commits"]

    assert sorted(link["id"] for link in links) == [link_id(n) for n in range(3)]
    assert [commit["version"] for commit in commits if "damaged" in commit] == [4]
    assert commits[3]["events"] == []
    assert_the_org_still_works(backend, org, process, FakeClock())


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"\xff\xfe",
        b"[" * 5000 + b"]" * 5000,
        json.dumps({"holder": "x", "epoch": 10**30, "released": True, "next_due": None}).encode(),
        json.dumps({"holder": "x", "epoch": -1, "released": True}).encode(),
    ],
)
def test_a_garbled_lease_is_taken_over_after_a_lease_duration(backend, body):
    org, process = an_org_with_history(backend)
    store = _without_faults(backend)
    store.put(lease_key(org), body)

    clock = FakeClock()
    save_links(store, org, [9])
    assert cycle(store, org, process, clock) == "lease_held"
    clock.advance(LEASE_SECONDS + 1)
    assert cycle(store, org, process, clock) == "done"
    lease = json.loads(store.get(lease_key(org)).body)
    # The new epoch is above every epoch in the log, not the garbled one.
    assert 3 <= lease["epoch"] < 2**63
    assert reads.get_link(reads.ReadCache(), store, org, link_id(9))["status"] == "completed"


def test_a_local_object_with_a_damaged_header_answers_alike_on_every_request(local_store):
    local_store.put("k", b"the body")
    damage(local_store, "k", lambda raw: raw[:7] + b"\xff" + raw[8:])

    got = local_store.get("k")
    assert (got.body, got.etag) == (b"the body", etag_of(b"the body"))
    assert local_store.head("k").etag == got.etag
    assert [info.etag for info in local_store.list("")] == [got.etag]
