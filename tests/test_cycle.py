"""One processor cycle: what it chooses, what it writes, and what it costs."""

import json
from collections import Counter
import threading
import time
from datetime import timedelta

import pytest

from chalicelib import cycle, lease, log, snapshots, state
from chalicelib.keys import InvalidOrg, lease_key, snapshot_prefix
from chalicelib.links.outcome import LinkOutcome
from chalicelib.state.apply import MAX_ATTEMPTS
from chalicelib.store.base import CountingStore
from clocks import T0, FakeClock, WallClock
from processing_org import (
    FakeProcessor,
    client_commit,
    link_id,
    processor_commits,
    processor_history,
    save_links,
)
from statelog import all_commits, dump, replay

class PutRecorder:
    """Records the key of every put, in order, to see what a cycle wrote."""

    def __init__(self, inner):
        self.inner = inner
        self.keys: list[str] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, body, **kwargs):
        self.keys.append(key)
        return self.inner.put(key, body, **kwargs)


def run(store, *, process=None, holder="proc-a", clock=None, now=None, **kwargs):
    lines = []
    report = cycle.run_cycle(
        store,
        "acme",
        process=process or FakeProcessor(),
        holder=holder,
        clock=clock or FakeClock(),
        now=now or WallClock(),
        emit=lines.append,
        **kwargs,
    )
    assert len(lines) == 1
    return report


class Died(Exception):
    """The cycle's process dying, as a test's checkpoint plays it."""


def die_once_started(step):
    if step == "started":
        raise Died


def test_twenty_links_cost_two_commits_and_one_snapshot(local_store):
    save_links(local_store, "acme", range(20))
    client_commit(local_store, "acme", "v1.TagCreated",
                  {"id": "tag-1", "name": "reading", "createdAt": "2026-11-23T20:00:00Z"})
    recorder = PutRecorder(local_store)
    report = run(CountingStore(recorder))

    assert report.outcome == "done"
    assert (report.version_before, report.version_after) == (2, 4)
    assert sorted(report.links_done) == [link_id(n) for n in range(20)]
    assert recorder.keys == [
        "orgs/acme/lease.json",
        "orgs/acme/log/00000000000000000003.json",
        "orgs/acme/log/00000000000000000004.json",
        f"orgs/acme/snapshots/{state.SCHEMA_HASH}/00000000000000000004.sqlite",
        "orgs/acme/lease.json",
    ]
    assert report.requests["put"] == 5
    assert report.requests["delete"] == 0
    assert [o.key.rsplit("/", 1)[1] for o in local_store.list("orgs/acme/log/")] == [
        f"{v:020d}.json" for v in (1, 2, 3, 4)
    ]
    assert len(local_store.list(snapshot_prefix("acme", state.SCHEMA_HASH))) == 1
    commits = all_commits(local_store, "acme")
    started, results = processor_commits(commits)
    assert [e["args"]["attempt"] for e in started["events"]] == [1] * 20
    assert started["author"] == {"kind": "processor", "id": "proc-a", "epoch": 1}
    assert [e["name"] for e in results["events"][:5]] == [
        "v1.LinkMetadataFetched",
        "v1.LinkContentExtracted",
        "v1.LinkSummarized",
        "v1.TagSuggested",
        "v1.LinkProcessingCompleted",
    ]
    assert len(results["events"]) == 20 * 5
    assert {
        link: (h.attempts_started, h.terminal) for link, h in processor_history(commits).items()
    } == {link_id(n): ([1], ["v1.LinkProcessingCompleted"]) for n in range(20)}


def test_the_snapshot_written_equals_a_full_replay(local_store):
    save_links(local_store, "acme", range(5))
    report = run(local_store)
    restored = snapshots.restore_latest(local_store, "acme")
    assert restored.key == report.snapshot_key
    assert restored.version == 3
    assert dump(restored.db) == dump(replay(local_store, "acme"))


def test_a_second_cycle_has_nothing_to_do_and_writes_nothing(local_store):
    save_links(local_store, "acme", range(3))
    run(local_store)
    recorder = PutRecorder(local_store)
    report = run(recorder)
    assert report.outcome == "nothing_to_do"
    assert report.commits_written == 0
    assert report.snapshot_key is None
    assert recorder.keys == ["orgs/acme/lease.json", "orgs/acme/lease.json"]


def test_client_commits_alone_get_a_snapshot_at_the_head(local_store):
    save_links(local_store, "acme", range(2))
    run(local_store)
    client_commit(local_store, "acme", "v1.LinkCompleted",
                  {"id": link_id(0), "completedAt": "2026-11-23T21:00:00Z"})
    report = run(local_store)
    assert report.outcome == "nothing_to_do"
    assert report.snapshot_key.endswith("/00000000000000000004.sqlite")


def test_a_retryable_failure_is_retried_with_growing_waits_at_most_max_attempts_times(local_store):
    save_links(local_store, "acme", [1], host="example.com/fail-retry")
    now = WallClock()
    processor = FakeProcessor()
    first = run(local_store, process=processor, now=now)
    assert first.links_failed == (link_id(1),)
    due, waited = first.next_due, first.next_due - T0
    assert due is not None and due > T0
    assert run(local_store, process=processor, now=now).outcome == "nothing_to_do"

    for attempt in range(2, MAX_ATTEMPTS + 1):
        now.at = due
        report = run(local_store, process=processor, now=now)
        assert report.links_started == (link_id(1),)
        if attempt < MAX_ATTEMPTS:
            assert report.next_due - due > waited, "the wait grows"
            due, waited = report.next_due, report.next_due - due
    assert report.next_due is None
    now.at = T0 + timedelta(days=30)
    assert run(local_store, process=processor, now=now).outcome == "nothing_to_do"

    history = processor_history(all_commits(local_store, "acme"))
    assert history[link_id(1)].attempts_started == list(range(1, MAX_ATTEMPTS + 1))
    assert processor.calls[link_id(1)] == MAX_ATTEMPTS


def test_a_hard_failure_and_a_crashing_processor_are_data(local_store):
    save_links(local_store, "acme", [1], host="example.com/fail-hard")
    save_links(local_store, "acme", [2], host="example.com/boom")
    report = run(local_store)
    assert report.outcome == "done"
    assert sorted(report.links_failed) == [link_id(1), link_id(2)]
    failures = {
        e["args"]["linkId"]: e["args"]
        for c in all_commits(local_store, "acme")
        for e in c["events"]
        if e["name"] == "v1.LinkProcessingFailed"
    }
    assert failures[link_id(1)]["code"] == "http_404"
    assert failures[link_id(1)]["retryable"] is False
    assert failures[link_id(2)]["code"] == "internal_error"
    assert failures[link_id(2)]["retryable"] is True
    assert failures[link_id(2)]["message"] == "RuntimeError: parser fell over on two lines"


def test_an_outcome_the_log_would_refuse_becomes_the_links_failure(local_store):
    save_links(local_store, "acme", [1])
    report = run(
        local_store,
        process=lambda job: LinkOutcome(link_id=job.link_id, summary="x", word_count=-1,
                                        text="t"),
    )
    assert report.links_failed == (link_id(1),)
    failed = [
        e["args"] for c in all_commits(local_store, "acme") for e in c["events"]
        if e["name"] == "v1.LinkProcessingFailed"
    ]
    assert [(f["code"], f["retryable"]) for f in failed] == [("invalid_result", False)]


def test_a_link_left_pending_by_a_dead_cycle_is_taken_again_by_the_next_holder(local_store):
    save_links(local_store, "acme", [1, 2])
    now = WallClock()
    with pytest.raises(Died):
        run(local_store, now=now, checkpoint=die_once_started)
    report = run(local_store, now=now)
    assert sorted(report.links_done) == [link_id(1), link_id(2)]
    history = processor_history(all_commits(local_store, "acme"))
    assert history[link_id(1)].attempts_started == [1, 2]


def test_links_left_pending_by_a_crashed_holder_wait_only_for_its_lease(local_store):
    """A process that dies holding the lease releases nothing: its heir
    waits out the lease, then takes the links it had started at once."""
    save_links(local_store, "acme", range(3))
    clock = FakeClock()
    now = WallClock()
    with pytest.raises(Died):
        run(local_store, now=now, clock=clock, checkpoint=die_once_started)
    # As if that process had died before releasing: someone holds the lease.
    lease.acquire(local_store, "acme", "crashed", duration=30, clock=clock)
    assert run(local_store, now=now, clock=clock, lease_seconds=30).outcome == "lease_held"
    clock.advance(30)
    report = run(local_store, now=now, clock=clock, lease_seconds=30)
    assert sorted(report.links_done) == [link_id(n) for n in range(3)]
    history = processor_history(all_commits(local_store, "acme"))
    assert {tuple(h.attempts_started) for h in history.values()} == {(1, 2)}


def test_a_link_that_kills_every_cycle_fails_for_good_after_max_attempts(local_store):
    save_links(local_store, "acme", [1])
    now = WallClock()
    for _ in range(MAX_ATTEMPTS):
        with pytest.raises(Died):
            run(local_store, now=now, checkpoint=die_once_started)
    processor = FakeProcessor()
    report = run(local_store, now=now, process=processor)
    assert report.outcome == "done"
    assert report.links_started == ()
    assert report.links_failed == (link_id(1),)
    assert processor.calls == {}
    (failed,) = [
        e["args"] for c in all_commits(local_store, "acme") for e in c["events"]
        if e["name"] == "v1.LinkProcessingFailed"
    ]
    assert (failed["code"], failed["retryable"]) == ("too_many_attempts", False)
    assert failed["message"] == f"processing was started {MAX_ATTEMPTS} times and never finished"
    now.at += timedelta(days=1)
    assert run(local_store, now=now).outcome == "nothing_to_do"


def test_a_processor_answering_nonsense_fails_that_link(local_store):
    save_links(local_store, "acme", [1, 2])
    answers = {link_id(1): None}

    def odd(job):
        return answers.get(job.link_id, LinkOutcome(link_id="someone-else"))

    report = run(local_store, process=odd)
    assert sorted(report.links_failed) == [link_id(1), link_id(2)]
    codes = [
        (e["args"]["code"], e["args"]["message"]) for c in all_commits(local_store, "acme")
        for e in c["events"] if e["name"] == "v1.LinkProcessingFailed"
    ]
    assert sorted(codes) == [
        # The answer is shown up to 200 characters.
        ("internal_error", "link processing answered LinkOutcome(link_id='someone-else', "
                           "metadata=None, text=None, word_count=0, reading_minutes=0, "
                           "summary=None, summary_model='extractive', summary_fallback_from=None, "
                           "summary_fallback_reason=None, sugge"),
        ("internal_error", "link processing answered None"),
    ]


def test_a_cycle_starts_no_more_links_than_its_budget_allows_and_enqueues_the_rest(local_store):
    save_links(local_store, "acme", range(7))
    enqueued = []
    report = run(local_store, budget_seconds=10, link_seconds=5, concurrency=2,
                 enqueue=enqueued.append)
    assert report.outcome == "work_left"
    assert len(report.links_started) == 4
    assert enqueued == ["acme"]
    report = run(local_store, budget_seconds=10, link_seconds=5, concurrency=2,
                 enqueue=enqueued.append)
    assert len(report.links_started) == 3
    assert report.outcome == "done"
    assert enqueued == ["acme"]


def holding(held_link: str, release: threading.Event, processor: FakeProcessor):
    """A link processor that keeps ``held_link`` until ``release`` is set."""

    def process(job):
        if job.link_id == held_link:
            release.wait(10)
        return processor(job)

    return process


def test_links_unfinished_when_the_budget_ends_get_no_result_and_stay_pending(local_store):
    save_links(local_store, "acme", range(3))
    release = threading.Event()

    enqueued = []
    try:
        report = cycle.run_cycle(
            local_store, "acme", process=holding(link_id(1), release, FakeProcessor()),
            holder="proc-a", now=WallClock(), budget_seconds=0.5, link_seconds=0.1, concurrency=3,
            enqueue=enqueued.append, emit=lambda line: None,
        )
    finally:
        release.set()
    assert report.outcome == "work_left"
    assert sorted(report.links_done) == [link_id(0), link_id(2)]
    assert enqueued == ["acme"]
    history = processor_history(all_commits(local_store, "acme"))
    assert history[link_id(1)].attempts_started == [1]
    assert history[link_id(1)].terminal == []


def test_links_not_yet_started_when_the_budget_ends_are_never_started(local_store):
    # A cycle that has returned must not go on fetching in the background:
    # on Lambda the process is frozen, and the results would be thrown away.
    save_links(local_store, "acme", range(3))
    release = threading.Event()
    processor = FakeProcessor()

    report = cycle.run_cycle(
        local_store, "acme", process=holding(link_id(0), release, processor), holder="proc-a",
        now=WallClock(), budget_seconds=0.3, link_seconds=0.1, concurrency=1,
        emit=lambda line: None,
    )
    release.set()
    # Time enough for a pool that was not cancelled to start the next link.
    time.sleep(0.5)
    assert report.outcome == "work_left"
    assert dict(processor.calls) == {link_id(0): 1}


def test_a_held_lease_means_no_work_and_no_writes(local_store):
    save_links(local_store, "acme", range(2))
    lease.acquire(local_store, "acme", "someone-else", duration=60, clock=FakeClock())
    recorder = PutRecorder(local_store)
    report = run(recorder)
    assert report.outcome == "lease_held"
    assert recorder.keys == []
    assert report.requests == {"get": 1, "head": 0, "put": 0, "delete": 0, "list": 0}


def test_a_processor_that_cannot_renew_stops_before_writing_results(local_store):
    save_links(local_store, "acme", range(2))
    clock = FakeClock()

    def lose_lease(step):
        if step == "started":
            # Another processor took the lease over while we were paused.
            clock.advance(100)
            taker = FakeClock(clock.now)
            assert lease.acquire(local_store, "acme", "proc-b", duration=60, clock=taker) is None
            taker.advance(60)
            assert lease.acquire(local_store, "acme", "proc-b", duration=60, clock=taker)

    report = run(local_store, clock=clock, lease_seconds=60, checkpoint=lose_lease)
    assert report.outcome == "stopped"
    assert "LeaseLost" in report.record.error
    assert [len(c["events"]) for c in processor_commits(all_commits(local_store, "acme"))] == [2]
    assert local_store.list(snapshot_prefix("acme", state.SCHEMA_HASH)) == []


def test_a_long_cycle_renews_its_lease_so_no_one_can_take_it(local_store):
    save_links(local_store, "acme", range(3))
    clock = FakeClock()
    rival_clock = FakeClock(clock.now)
    processor = FakeProcessor()
    rival_got = []
    last_seen = []

    def lease_etag():
        return local_store.head("orgs/acme/lease.json").etag

    def slow(job):
        if last_seen:
            # Give the cycle its turn to see the previous link finish (and
            # renew) before this one takes its 40 s; a cycle that does not
            # renew just costs this test two seconds.
            give_up = time.monotonic() + 2
            while lease_etag() == last_seen[-1] and time.monotonic() < give_up:
                time.sleep(0.005)
        rival_got.append(
            lease.acquire(local_store, "acme", "rival", duration=60, clock=rival_clock))
        # Each link takes 40 s of the cycle's (and the rival's) time. The
        # rival looks again before the cycle sees the link end: a lease
        # renewed only once expired would be taken over here.
        clock.advance(40)
        rival_clock.advance(40)
        rival_got.append(
            lease.acquire(local_store, "acme", "rival", duration=60, clock=rival_clock))
        last_seen.append(lease_etag())
        return processor(job)

    recorder = PutRecorder(local_store)
    report = run(recorder, process=slow, clock=clock, lease_seconds=60, concurrency=1,
                 budget_seconds=600)
    assert report.outcome == "done"
    assert rival_got == [None] * 6
    assert recorder.keys.count("orgs/acme/lease.json") > 2


def test_a_commit_of_a_higher_epoch_stops_the_cycle(local_store):
    save_links(local_store, "acme", range(2))

    def newer_processor_commits(step):
        if step == "processed":
            log.append(local_store, "acme", [], batch_id="newer",
                       author={"kind": "processor", "id": "proc-b", "epoch": 2})

    report = run(local_store, checkpoint=newer_processor_commits)
    assert report.outcome == "stopped"
    assert "Fenced" in report.record.error
    assert report.snapshot_key is None
    assert local_store.list(snapshot_prefix("acme", state.SCHEMA_HASH)) == []


def commit_epochs(store) -> list[int]:
    return [c["author"]["epoch"] for c in processor_commits(all_commits(store, "acme"))]


def test_a_lost_lease_object_restarts_above_the_epochs_in_the_log(local_store):
    # Five cycles, each taking over the released lease: commits of epochs 1 to 5.
    for n in range(5):
        save_links(local_store, "acme", [n])
        assert run(local_store).outcome == "done"
    assert commit_epochs(local_store)[-1] == 5
    # The lease object is lost; the next acquire starts again at epoch 1.
    local_store.delete(lease_key("acme"))
    save_links(local_store, "acme", [5, 6])
    before = len(commit_epochs(local_store))

    report = run(local_store)

    assert report.outcome == "done"
    assert report.links_done == (link_id(5), link_id(6))
    assert report.epoch == 6
    assert commit_epochs(local_store)[before:] == [6, 6]
    assert json.loads(local_store.get(lease_key("acme")).body)["epoch"] == 6


def test_a_holder_whose_lease_object_was_lost_is_fenced_by_the_next(local_store):
    # proc-a holds epoch 1 and has started its links when the lease object
    # is lost. proc-b then gets epoch 1 too, from an empty key: it must move
    # above the epoch already in the log, so that proc-a is fenced off.
    save_links(local_store, "acme", range(2))
    second = {}

    def lease_lost_then_proc_b_runs(step):
        if step == "processed":
            local_store.delete(lease_key("acme"))
            save_links(local_store, "acme", [2])
            second["report"] = run(local_store, holder="proc-b")

    first = run(local_store, checkpoint=lease_lost_then_proc_b_runs)

    assert (second["report"].outcome, second["report"].epoch) == ("done", 2)
    # proc-b takes proc-a's pending links at once (their holder lost its
    # lease, so their results can never land) along with the new one.
    assert sorted(second["report"].links_done) == [link_id(n) for n in range(3)]
    assert (first.outcome, first.epoch) == ("stopped", 1)
    assert "Fenced" in first.record.error
    # proc-a's results came after proc-b's epoch and were not applied: the
    # links it started completed in proc-b's second attempt.
    db = replay(local_store, "acme")
    assert state.statuses_of(db, [link_id(n) for n in range(3)]) == {
        link_id(n): "completed" for n in range(3)}
    attempts = dict(db.execute("SELECT link_id, attempts FROM link_status"))
    assert attempts == {link_id(0): 2, link_id(1): 2, link_id(2): 1}


def test_a_restore_slower_than_the_lease_writes_nothing_once_taken_over(local_store):
    save_links(local_store, "acme", range(2))
    clock = FakeClock()
    rival_clock = FakeClock(clock.now)

    def restore_outlasts_the_lease(step):
        if step == "leased":
            assert lease.acquire(local_store, "acme", "rival", duration=60,
                                 clock=rival_clock) is None
            # The restore (a big snapshot, a long delta) takes 61 s.
            clock.advance(61)
            rival_clock.advance(61)
            assert lease.acquire(local_store, "acme", "rival", duration=60, clock=rival_clock)

    report = run(local_store, clock=clock, lease_seconds=60, checkpoint=restore_outlasts_the_lease)

    assert report.outcome == "stopped"
    assert "LeaseLost" in report.record.error
    assert report.commits_written == 0
    assert processor_commits(all_commits(local_store, "acme")) == []


def test_a_link_deleted_mid_cycle_ends_consistent(local_store):
    save_links(local_store, "acme", range(3))

    def delete_link_1(step):
        if step == "processed":
            client_commit(local_store, "acme", "v1.LinkDeleted",
                          {"id": link_id(1), "deletedAt": "2026-11-23T20:00:01Z"})

    report = run(local_store, checkpoint=delete_link_1)
    assert report.outcome == "done"
    restored = snapshots.restore_latest(local_store, "acme")
    assert restored.version == 4
    assert dump(restored.db) == dump(replay(local_store, "acme"))
    assert state.links_needing_work(restored.db, T0 + timedelta(days=1)) == []


def test_a_reprocess_request_mid_cycle_is_not_lost(local_store):
    save_links(local_store, "acme", range(2))
    processor = FakeProcessor()

    def request_reprocess(step):
        if step == "processed":
            client_commit(local_store, "acme", "v1.LinkReprocessRequested",
                          {"linkId": link_id(0), "requestedAt": "2026-11-23T20:00:01Z"})

    first = run(local_store, process=processor, checkpoint=request_reprocess)
    assert (first.outcome, first.links_done) == ("work_left", (link_id(1),))
    again = run(local_store, process=processor)
    assert again.links_done == (link_id(0),)
    assert processor.calls == {link_id(0): 2, link_id(1): 1}
    db = snapshots.restore_latest(local_store, "acme").db
    assert dump(db) == dump(replay(local_store, "acme"))


def test_a_newer_snapshot_written_by_a_stale_processor_keeps_restores_at_the_newest(local_store):
    # While we hold the lease only a processor that lost it can write a
    # snapshot; the cycle does not list to look for one (docs/decisions.md,
    # "Warm cycles"). Its own, older snapshot must not take restores back.
    save_links(local_store, "acme", range(2))

    def newer_snapshot_appears(step):
        if step == "committed":
            client_commit(local_store, "acme", "v1.LinkCompleted",
                          {"id": link_id(0), "completedAt": "2026-11-23T21:00:00Z"})
            snapshots.write_snapshot(local_store, "acme", replay(local_store, "acme"))

    report = run(local_store, checkpoint=newer_snapshot_appears)
    assert report.outcome == "done"
    restored = snapshots.restore_latest(local_store, "acme")
    assert restored.version == 4
    assert dump(restored.db) == dump(replay(local_store, "acme"))
    assert snapshots.newest_version(local_store, "acme") == 4


def test_old_snapshots_are_pruned_to_the_last_three(local_store):
    for n in range(5):
        save_links(local_store, "acme", [n])
        run(local_store)
    keys = [o.key for o in local_store.list(snapshot_prefix("acme", state.SCHEMA_HASH))]
    assert [k.rsplit("/", 1)[1] for k in keys] == [
        "00000000000000000009.sqlite",
        "00000000000000000012.sqlite",
        "00000000000000000015.sqlite",
    ]


def test_the_log_line_names_the_org_the_figures_and_the_metrics(local_store):
    save_links(local_store, "acme", range(2))
    lines = []
    cycle.run_cycle(local_store, "acme", process=FakeProcessor(), holder="proc-a",
                    clock=FakeClock(), now=WallClock(), emit=lines.append)
    (line,) = lines
    doc = json.loads(line)
    assert doc["org"] == "acme"
    assert doc["outcome"] == "done"
    assert (doc["version_before"], doc["version_after"]) == (1, 3)
    assert (doc["links_done"], doc["links_failed"], doc["commits_written"]) == (2, 0, 2)
    assert doc["requests"]["put"] == 5
    assert doc["snapshot_written"] == 3
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "linklog"
    assert doc["LinksDone"] == 2


@pytest.mark.parametrize("org", ["", "a/b", "x" * 65])
def test_a_bad_org_is_refused_before_any_request(local_store, org):
    with pytest.raises(InvalidOrg):
        run_org(local_store, org)
    assert local_store.total() == 0


@pytest.mark.parametrize(
    "setting", [{"concurrency": 0}, {"budget_seconds": 0}, {"lease_seconds": -1},
                {"link_seconds": 0}, {"holder": ""}, {"holder": "p" * 201}]
)
def test_bad_settings_are_refused_before_any_request(local_store, setting):
    with pytest.raises(ValueError):
        run(local_store, **setting)
    assert local_store.total() == 0


def run_org(store, org):
    return cycle.run_cycle(store, org, process=FakeProcessor(), holder="proc-a",
                           emit=lambda line: None)


def test_a_stray_object_among_the_snapshots_does_not_stop_the_cycle(local_store):
    save_links(local_store, "acme", range(2))
    local_store.put(snapshot_prefix("acme", state.SCHEMA_HASH) + "notes.txt", b"hi",
                    if_absent=True)
    report = run(local_store)
    assert report.outcome == "done"
    assert report.snapshot_key.endswith("/00000000000000000003.sqlite")


def save_on_origins(store, origins: int, per_origin: int) -> None:
    """``per_origin`` links on each of ``origins`` sites, one site after another."""
    for site in range(origins):
        save_links(store, "acme", [site * 1000 + n for n in range(per_origin)],
                   host=f"site{site}.test")


def test_a_cycle_runs_sixteen_fetches_at_once_but_no_more_than_four_per_origin(local_store):
    save_on_origins(local_store, origins=5, per_origin=8)
    all_at_once = threading.Barrier(16, timeout=10)
    lock = threading.Lock()
    running = {"all": 0}
    most = {"all": 0}
    calls = []

    def process(job):
        origin = job.url.split("/")[2]
        with lock:
            calls.append(job.link_id)
            first_ones = len(calls) <= 16
            for key in ("all", origin):
                running[key] = running.get(key, 0) + 1
                most[key] = max(most.get(key, 0), running[key])
        try:
            if first_ones:
                # The first sixteen wait for each other: that many must run at once.
                all_at_once.wait()
        except threading.BrokenBarrierError:
            pass
        finally:
            with lock:
                for key in ("all", origin):
                    running[key] -= 1
        return FakeProcessor()(job)

    report = run(local_store, process=process)
    assert report.outcome == "done"
    assert len(report.links_done) == 40
    assert not all_at_once.broken, f"fewer than 16 fetches ran at once: {most}"
    assert most["all"] == 16
    assert max(n for key, n in most.items() if key != "all") == 4


@pytest.mark.parametrize("origins, started", [(1, 24), (8, 96)])
def test_a_cycle_takes_what_its_fetch_slots_can_finish_within_the_budget(
    local_store, origins, started
):
    # 60 s budget, 10 s a link at worst: each slot runs six links one after
    # another; 16 slots in all, 4 per origin.
    save_on_origins(local_store, origins=origins, per_origin=200 // origins)
    report = run(local_store, enqueue=lambda org: None)
    assert report.outcome == "work_left"
    assert len(report.links_started) == started
    hosts = Counter(url_of[link].split("/")[2] for url_of in [urls(local_store)]
                    for link in report.links_started)
    assert max(hosts.values()) == 24


def urls(store) -> dict[str, str]:
    return {e["args"]["id"]: e["args"]["url"] for c in all_commits(store, "acme")
            for e in c["events"] if e["name"] == "v1.LinkCreated"}


def test_a_restore_that_used_the_budget_leaves_fewer_links_and_each_its_full_time(local_store):
    """Each start counts as an attempt: a cycle must not start links it has
    no time left to process."""
    save_links(local_store, "acme", range(7))
    clock = FakeClock()

    def slow_restore(step):
        if step == "leased":
            clock.advance(12)  # past the 10 s budget before choosing

    report = run(local_store, clock=clock, budget_seconds=10, link_seconds=5, concurrency=2,
                 checkpoint=slow_restore)
    assert report.outcome == "work_left"
    assert len(report.links_started) == 2
    assert len(report.links_done) == 2, "started links got no time at all"
