"""One processor cycle: what it chooses, what it writes, and what it costs."""

import json
import threading
import time
from datetime import timedelta

import pytest

from chalicelib import cycle, lease, log, snapshots, state
from chalicelib.keys import InvalidOrg, snapshot_prefix
from chalicelib.links.outcome import LinkOutcome
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


def test_a_retryable_failure_is_retried_with_backoff_at_most_three_times(local_store):
    save_links(local_store, "acme", [1], host="example.com/fail-retry")
    now = WallClock()
    processor = FakeProcessor()
    first = run(local_store, process=processor, now=now)
    assert first.links_failed == (link_id(1),)
    due = first.next_retry_due
    assert due is not None and due > T0

    assert run(local_store, process=processor, now=now).outcome == "nothing_to_do"
    now.at = due
    second = run(local_store, process=processor, now=now)
    assert second.links_started == (link_id(1),)
    assert second.next_retry_due - due > due - T0, "the wait grows"
    now.at = second.next_retry_due
    third = run(local_store, process=processor, now=now)
    assert third.links_started == (link_id(1),)
    assert third.next_retry_due is None
    now.at = T0 + timedelta(days=30)
    assert run(local_store, process=processor, now=now).outcome == "nothing_to_do"

    history = processor_history(all_commits(local_store, "acme"))
    assert history[link_id(1)].attempts_started == [1, 2, 3]
    assert processor.calls[link_id(1)] == 3


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


def test_a_link_left_pending_by_a_dead_cycle_is_taken_again_after_five_minutes(local_store):
    save_links(local_store, "acme", [1])
    now = WallClock()
    with pytest.raises(Died):
        run(local_store, now=now, checkpoint=die_once_started)
    assert run(local_store, now=now).outcome == "nothing_to_do"
    now.at = T0 + timedelta(minutes=4, seconds=59)
    assert run(local_store, now=now).outcome == "nothing_to_do"
    now.at = T0 + timedelta(minutes=5, seconds=1)
    report = run(local_store, now=now)
    assert report.links_done == (link_id(1),)
    history = processor_history(all_commits(local_store, "acme"))
    assert history[link_id(1)].attempts_started == [1, 2]


def test_a_link_that_kills_every_cycle_fails_for_good_after_three_attempts(local_store):
    save_links(local_store, "acme", [1])
    now = WallClock()
    for _ in range(3):
        with pytest.raises(Died):
            run(local_store, now=now, checkpoint=die_once_started)
        now.at += timedelta(minutes=6)
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
    assert failed["message"] == "processing was started 3 times and never finished"
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
        ("internal_error", "link processing answered LinkOutcome(link_id='someone-else', "
                           "metadata=None, text=None, word_count=0, reading_minutes=0, "
                           "summary=None, suggestions=(), new_tags=(), failure=None)"),
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


def test_links_unfinished_when_the_budget_ends_get_no_result_and_stay_pending(local_store):
    save_links(local_store, "acme", range(3))
    release = threading.Event()
    processor = FakeProcessor()

    def slow_for_link_1(job):
        if job.link_id == link_id(1):
            release.wait(10)
        return processor(job)

    enqueued = []
    try:
        report = cycle.run_cycle(
            local_store, "acme", process=slow_for_link_1, holder="proc-a",
            now=WallClock(), budget_seconds=0.5, link_seconds=0.1, concurrency=3,
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
        # Each link takes 40 s of the cycle's (and the rival's) time.
        clock.advance(40)
        rival_clock.advance(40)
        last_seen.append(lease_etag())
        return processor(job)

    recorder = PutRecorder(local_store)
    report = run(recorder, process=slow, clock=clock, lease_seconds=60, concurrency=1,
                 budget_seconds=600)
    assert report.outcome == "done"
    assert rival_got == [None, None, None]
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


def test_a_snapshot_is_never_written_below_the_newest_one(local_store):
    save_links(local_store, "acme", range(2))

    def newer_snapshot_appears(step):
        if step == "committed":
            client_commit(local_store, "acme", "v1.LinkCompleted",
                          {"id": link_id(0), "completedAt": "2026-11-23T21:00:00Z"})
            snapshots.write_snapshot(local_store, "acme", replay(local_store, "acme"))

    report = run(local_store, checkpoint=newer_snapshot_appears)
    assert report.outcome == "done"
    assert report.snapshot_key is None
    keys = [o.key for o in local_store.list(snapshot_prefix("acme", state.SCHEMA_HASH))]
    assert keys == [f"orgs/acme/snapshots/{state.SCHEMA_HASH}/00000000000000000004.sqlite"]


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
