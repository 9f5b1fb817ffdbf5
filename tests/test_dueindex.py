"""The due index and the sweep that reads only what is due: real stores,
real cycles (one of them killed), real state."""

import json
import threading
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib import dueindex, lease
from chalicelib.cycle import run_cycle
from chalicelib.keys import lease_key
from chalicelib.links.outcome import LinkFailure, LinkOutcome
from chalicelib.store.base import CountingStore, NotFound, Transient
from chalicelib.triggers import WALK_KEY, cycle_runner, index_orgs_from_before, sweep
from clocks import T0, FakeClock
from processing_org import FakeProcessor, save_links
from test_cycle_crash import kill_at
from tests.api_server import serving

NOTHING_DUE = {"get": 1, "head": 0, "put": 0, "delete": 0, "list": 1}


def entries(store) -> list[dueindex.Entry]:
    return [dueindex.parse_entry(found.key) for found in store.list(dueindex.PREFIX)]


def unavailable(job):
    return LinkOutcome(link_id=job.link_id, failure=LinkFailure(
        code="http_503", message="try later", retryable=True))


def cycle(store, org, process, at, **kwargs):
    return run_cycle(store, org, process=process, holder="test", now=lambda: at,
                     emit=lambda line: None, **kwargs)


def pushed(store, org, numbers, at):
    """Links saved as the API saves them: a commit, then its due entry."""
    save_links(store, org, numbers)
    dueindex.PushMarks().after_commit(store, org, at)


@pytest.fixture
def store(local_store):
    """A store whose one-off walk is done: only the index leads the sweep."""
    index_orgs_from_before(local_store, now=T0, most=1)
    return local_store


class Wrapping:
    """A store passing every call on to ``inner``; subclasses change one."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)


def swept(store, at) -> list[str]:
    return sweep(store, now=at, enqueue=lambda org: None)


def test_an_entry_key_sorts_by_time_and_reads_back():
    early = dueindex.entry_key("acme", T0)
    late = dueindex.entry_key("a", T0 + timedelta(microseconds=1))
    assert early < late
    assert dueindex.parse_entry(early) == dueindex.Entry(key=early, org="acme", due=T0)
    assert dueindex.entry_key("acme", T0) != early  # a nonce each


@given(st.text(max_size=120))
@settings(max_examples=300)
def test_any_key_is_an_entry_only_in_the_one_form_written(key):
    entry = dueindex.parse_entry(dueindex.PREFIX + key)
    if entry is not None:
        time_text = key.split("/")[0]
        assert dueindex.entry_key(entry.org, entry.due).split("/")[1] == time_text


def test_idle_orgs_cost_nothing(store):
    for n in range(40):
        pushed(store, f"org-{n}", [n], T0)
        cycle(store, f"org-{n}", FakeProcessor(), T0)
    assert swept(store, T0 + timedelta(minutes=2)) == []  # their push entries: checked, deleted
    counted = CountingStore(store)

    assert sweep(counted, now=T0 + timedelta(days=30), enqueue=pytest.fail) == []
    # The walk's progress (one small get) and the index up to now (one list).
    assert counted.counts() == NOTHING_DUE


def test_a_push_whose_wake_up_was_lost_is_found_after_its_delay(store):
    pushed(store, "acme", [1, 2], T0)
    assert swept(store, T0) == []  # not due yet: the queue message comes first
    assert swept(store, T0 + dueindex.PushMarks.DELAY) == ["acme"]
    # Kept until a cycle has dealt with the org.
    assert swept(store, T0 + dueindex.PushMarks.DELAY) == ["acme"]
    assert cycle(store, "acme", FakeProcessor(), T0).outcome == "done"
    assert swept(store, T0 + dueindex.PushMarks.DELAY) == []
    assert entries(store) == []


def test_a_retry_comes_due(store):
    pushed(store, "acme", [1], T0)
    assert cycle(store, "acme", unavailable, T0).outcome == "done"
    retry_at = lease.released(store, "acme").next_due
    assert T0 < retry_at < T0 + dueindex.PushMarks.DELAY
    assert sorted(entry.due for entry in entries(store)) == [
        retry_at, T0 + dueindex.PushMarks.DELAY]

    assert sweep(store, now=retry_at - timedelta(seconds=1), enqueue=pytest.fail) == []
    counted = CountingStore(store)
    assert sweep(counted, now=retry_at, enqueue=lambda org: None) == ["acme"]
    assert counted.counts()["list"] == 1 + 2  # the index, then the org's readiness
    assert cycle(store, "acme", FakeProcessor(), retry_at).outcome == "done"
    assert swept(store, T0 + timedelta(hours=1)) == []
    assert entries(store) == []


def test_work_left_is_due_at_once(store):
    pushed(store, "acme", range(40), T0)
    report = cycle(store, "acme", FakeProcessor(), T0, concurrency=1, budget_seconds=5,
                   link_seconds=1)
    assert report.outcome == "work_left"  # and its own wake-up is lost
    assert swept(store, T0) == ["acme"]


def test_the_sweep_finds_a_cycle_killed_mid_cycle(store):
    store_dir = store.inner.root
    pushed(store, "acme", range(6), T0)
    kill_at(store_dir, "processed")  # the child holds the lease (30 s), links pending
    due = T0 + dueindex.PushMarks.DELAY
    assert swept(store, due) == ["acme"]
    assert swept(store, due) == ["acme"]  # every sweep, until a cycle deals with it

    clock = FakeClock()
    assert cycle(store, "acme", FakeProcessor(), due, clock=clock).outcome == "lease_held"
    clock.advance(31)
    assert cycle(store, "acme", FakeProcessor(), due, clock=clock).outcome == "done"
    assert swept(store, due) == []
    assert entries(store) == []


class ReleaseNeverLands(Wrapping):
    """A store on which the lease's released marker is never written: the
    cycle does all its work, snapshot included, and then dies holding it."""

    def put(self, key, body, **kwargs):
        if key.endswith("/lease.json") and json.loads(body)["released"]:
            raise Transient(key, "the process died here")
        return self.inner.put(key, body, **kwargs)


def test_the_sweep_finds_a_cycle_that_never_released_its_lease(store):
    pushed(store, "acme", range(3), T0)
    due = T0 + dueindex.PushMarks.DELAY
    dying = cycle(ReleaseNeverLands(store), "acme", FakeProcessor(), T0, lease_seconds=30)
    assert dying.outcome == "done"
    assert not json.loads(store.get(lease_key("acme")).body)["released"]
    # The log is not ahead of the snapshot, yet a held lease tells nothing.
    assert swept(store, due) == ["acme"]
    assert swept(store, due + timedelta(hours=1)) == ["acme"]

    clock = FakeClock()
    cycle(store, "acme", FakeProcessor(), due, clock=clock)
    clock.advance(31)
    assert cycle(store, "acme", FakeProcessor(), due, clock=clock).outcome == "nothing_to_do"
    assert swept(store, due) == []


# Keys under the index's prefix that sort before T0's entries: the sweep reads them.
def test_a_release_whose_entry_cannot_be_written_says_nothing_is_known(store):
    """Without its entry, a released lease naming a later retry would let the
    sweep judge the org idle and drop the entry that led to the cycle."""
    pushed(store, "acme", [1], T0)

    class IndexRefusesReleases(Wrapping):
        def put(self, key, body, **kwargs):
            if key.startswith(dueindex.PREFIX):
                raise Transient(key, "503 Slow Down")
            return self.inner.put(key, body, **kwargs)

    assert cycle(IndexRefusesReleases(store), "acme", unavailable, T0).outcome == "done"
    assert json.loads(store.get(lease_key("acme")).body)["released"] is True
    assert lease.released(store, "acme") is None
    due = T0 + dueindex.PushMarks.DELAY
    assert swept(store, due) == ["acme"] == swept(store, due)


N = "0123456789abcdef0123456789abcdef"
HOSTILE = [
    "due/0000/acme/" + N,
    "due/ 2026-11-23T19:00:00.000000Z/acme/" + N,
    "due/2026-11-23T19:00:00.000000Z",
    "due/2026-11-23T19:00:00.000000Z/acme",
    f"due/2026-11-23T19:00:00.000000Z/acme/{N}/more",
    "due/2026-11-23T19:00:00.000000Z/acme/n",
    "due/2026-11-23T19:00:00.000000Z/acme/\u00e9\u00e9",
    "due/2026-11-23T19:00:00.000000Z/not an org/" + N,
    "due/2026-11-23T19:00:00.000000Z/" + "a" * 65 + "/" + N,
    "due/2026-11-23T19:00:00Z/acme/" + N,
    "due/2026-11- 3T19:00:00.000000Z/acme/" + N,  # strptime reads " 3" as a day
    "due/2026-11-23T19:00:00.0000000/acme/" + N,
]
# Keys that sort after now: not read (yet), so not touched.
NEVER_DUE = ["due/x", "due/~later/acme/" + N, "due/2026-13-45T19:00:00.000000Z/acme/" + N]


def test_damaged_and_foreign_keys_under_the_index_break_nothing(store):
    for key in HOSTILE + NEVER_DUE:
        store.put(key, b"\x00 not an entry")
    store.put(f"due/2026-11-23T19:00:00.000000Z/ghost/{N}", b"")  # an org with no objects
    pushed(store, "acme", [1], T0 - timedelta(hours=1))

    enqueued = []
    assert sweep(store, now=T0, enqueue=enqueued.append) == ["acme"] == enqueued
    left = {found.key for found in store.list(dueindex.PREFIX)}
    assert not left & set(HOSTILE)  # what is no entry is deleted
    assert not any("/ghost/" in key for key in left)  # an idle org's entry too
    assert set(NEVER_DUE) < left
    assert [e.org for e in entries(store) if e is not None] == ["acme"]


def test_an_index_the_sweep_cannot_list_fails_the_sweep_and_changes_nothing(store):
    pushed(store, "acme", [1], T0)

    class IndexDown(Wrapping):
        def list(self, prefix, **kwargs):
            if prefix.startswith(dueindex.PREFIX):
                raise Transient(prefix, "503 Slow Down")
            return self.inner.list(prefix, **kwargs)

    with pytest.raises(Transient):
        sweep(IndexDown(store), now=T0 + timedelta(hours=1), enqueue=pytest.fail)
    assert len(entries(store)) == 1
    assert swept(store, T0 + timedelta(hours=1)) == ["acme"]


def test_more_entries_than_one_list_page(store):
    due = T0 + dueindex.PushMarks.DELAY
    for n in range(1001):
        store.put(dueindex.entry_key(f"org-{n % 3}", T0), b"")
    pushed(store, "acme", [1], T0)
    counted = CountingStore(store)
    assert sweep(counted, now=due, enqueue=lambda org: None) == ["acme"]
    # Two pages of the index; org-0..2 have no objects: idle, their entries deleted.
    assert counted.counts()["delete"] == 1001
    assert [e.org for e in entries(store)] == ["acme"]


def test_a_release_racing_a_sweep_leaves_the_org_due(store):
    """A sweep runs between a release's entry and its released marker: it sees
    a held lease, so it enqueues the org and keeps its entries, and the work
    the cycle left is still found afterwards."""
    pushed(store, "acme", range(40), T0)

    class SweepsInTheMiddle(Wrapping):
        def __init__(self, inner):
            super().__init__(inner)
            self.sweeps = []

        def put(self, key, body, **kwargs):
            etag = self.inner.put(key, body, **kwargs)
            if key.startswith(dueindex.PREFIX) and b'"release"' in body:
                # The lease is still held: the org is enqueued, its entries kept.
                self.sweeps.append(swept(self.inner, T0 + timedelta(hours=1)))
            return etag

    racing = SweepsInTheMiddle(store)
    report = cycle(racing, "acme", FakeProcessor(), T0, concurrency=1, budget_seconds=5,
                   link_seconds=1)
    assert report.outcome == "work_left"
    assert racing.sweeps == [["acme"]]
    assert swept(store, T0) == ["acme"]


def test_a_cycle_releasing_while_a_sweep_deletes_keeps_its_entry(store):
    """The sweep judged the org idle and deletes the entries it listed; a
    cycle that ends in between with a retry due writes a new entry, which
    the deletes must not touch."""
    pushed(store, "acme", [1], T0)
    cycle(store, "acme", FakeProcessor(), T0)
    later = T0 + timedelta(minutes=5)

    class CycleDuringDeletes(Wrapping):
        def __init__(self, inner):
            super().__init__(inner)
            self.ran = False

        def delete(self, key, **kwargs):
            if not self.ran:
                self.ran = True
                pushed(self.inner, "acme", [2], later)
                cycle(self.inner, "acme", unavailable, later)
            return self.inner.delete(key, **kwargs)

    # At T0 + 2 min only the first push's entry is due, and acme is idle.
    assert sweep(CycleDuringDeletes(store), now=T0 + timedelta(minutes=2),
                 enqueue=pytest.fail) == []
    retry_at = lease.released(store, "acme").next_due
    assert sorted(entry.due for entry in entries(store)) == [
        retry_at, later + dueindex.PushMarks.DELAY]
    assert swept(store, retry_at) == ["acme"]


def test_sweeps_and_cycles_at_once_drain_a_backlog_whose_wake_ups_are_lost(store):
    pushed(store, "acme", range(60), T0)
    at = T0 + dueindex.PushMarks.DELAY
    stop = threading.Event()
    errors = []

    def sweeping():
        while not stop.is_set():
            try:
                swept(store, at)
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)
            stop.wait(0.005)

    sweeper = threading.Thread(target=sweeping)
    sweeper.start()
    try:
        run = cycle_runner(store, process=FakeProcessor(), enqueue=None, now=lambda: at,
                           budget_seconds=1)
        for _ in range(200):
            queue = sweep(store, now=at, enqueue=lambda org: None)
            if not queue:
                break
            run(queue[0])
    finally:
        stop.set()
        sweeper.join()
    assert errors == []
    assert swept(store, at) == []
    assert entries(store) == []


def test_pushes_over_http_leave_an_entry_the_sweep_finds(store):
    def created(n):
        return {"id": f"e{n}", "name": "v1.LinkCreated", "at": "2026-11-23T20:00:00Z",
                "args": {"id": f"l{n}", "url": "https://example.com/a",
                         "createdAt": "2026-11-23T20:00:00Z"}}

    with serving(store) as api:
        assert api.push({"client_id": "phone", "events": []}).status_code == 422
        assert entries(store) == []  # a refused push writes nothing
        for n in range(3):
            body = {"batch_id": f"b{n}", "client_id": "phone", "events": [created(n)]}
            assert api.push(body).status_code == 200
        assert api.queue.pending() == ["acme"]  # the first trigger; lost from here on
    [entry] = entries(store)  # three pushes within a minute: one entry

    assert sweep(store, now=entry.due - timedelta(seconds=1), enqueue=pytest.fail) == []
    assert swept(store, entry.due) == ["acme"]


def test_a_container_writes_one_push_entry_a_minute(store):
    counted = CountingStore(store)
    marks = dueindex.PushMarks()
    for seconds in range(0, 180, 5):
        marks.after_commit(counted, "acme", T0 + timedelta(seconds=seconds))
    assert counted.counts()["put"] == 3
    # Each push is covered by an entry due after it.
    times = sorted(entry.due for entry in entries(store))
    assert times[0] > T0 and times[-1] >= T0 + timedelta(seconds=175)


# The one-off walk over the orgs from before the index.

def test_the_walk_indexes_old_orgs_over_several_sweeps(local_store):
    save_links(local_store, "busy", [1])
    for org in ("quiet", "retrying"):
        save_links(local_store, org, [1])
        cycle(local_store, org, FakeProcessor() if org == "quiet" else unavailable, T0)
    for leftover in list(local_store.list(dueindex.PREFIX)):
        local_store.delete(leftover.key)  # as if these releases came before the index

    walked = [sweep(local_store, now=T0, enqueue=lambda org: None, walk_orgs=1)
              for _ in range(4)]
    assert walked == [["busy"], ["busy"], ["busy"], ["busy"]]
    assert json.loads(local_store.get(WALK_KEY).body) == {"after": "retrying", "done": True}
    [retry] = [entry for entry in entries(local_store) if entry.org == "retrying"]
    assert retry.due == lease.released(local_store, "retrying").next_due
    counted = CountingStore(local_store)
    assert sweep(counted, now=T0, enqueue=lambda org: None) == ["busy"]
    assert counted.counts()["put"] == 0  # the walk is over


def test_a_walk_the_store_fails_still_lets_the_index_be_read(store):
    pushed(store, "acme", [1], T0)
    store.delete(WALK_KEY)

    class WalkCannotList(Wrapping):
        def list(self, prefix, **kwargs):
            if prefix == "orgs/":
                raise Transient(prefix, "503 Slow Down")
            return self.inner.list(prefix, **kwargs)

    due = T0 + dueindex.PushMarks.DELAY
    assert sweep(WalkCannotList(store), now=due, enqueue=lambda org: None) == ["acme"]
    with pytest.raises(NotFound):
        store.get(WALK_KEY)  # not done: the next sweep walks


@pytest.mark.parametrize("damaged", [b"not json", b"[]", b'{"after": "../x", "done": false}'])
def test_a_damaged_walk_progress_starts_the_walk_again(local_store, damaged):
    save_links(local_store, "acme", [1])
    local_store.put(WALK_KEY, damaged)
    assert sweep(local_store, now=T0, enqueue=lambda org: None) == ["acme"]
    assert json.loads(local_store.get(WALK_KEY).body) == {"after": "acme", "done": True}
