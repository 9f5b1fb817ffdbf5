from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.links.outcome import LinkJob, TagChoice
from chalicelib.state import (
    attempts_of,
    links_needing_work,
    new_database,
    next_retry_due,
    processor_epoch,
    statuses_of,
)
from statelog import Log, T0, completed, created, event, failed, started, state_at

NOW = datetime(2026, 11, 23, 20, 0, tzinfo=timezone.utc)


def at(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def state_of(log: Log):
    return state_at(log.commits)


def ids(jobs):
    return [job.link_id for job in jobs]


def test_new_links_need_work_oldest_first_with_the_live_tags():
    log = Log()
    log.client(event("v1.TagCreated", {"id": "t1", "name": "zebra", "createdAt": T0, "sortOrder": 1}),
               event("v1.TagCreated", {"id": "t2", "name": "apple", "createdAt": T0, "sortOrder": 2}),
               event("v1.TagCreated", {"id": "t3", "name": "gone", "createdAt": T0}),
               event("v1.TagDeleted", {"id": "t3", "deletedAt": T0}))
    log.client(created("l2", "https://example.com/b", created_at="2026-11-23T21:00:00Z"))
    log.client(created("l1", "https://example.com/a?utm_source=x", created_at="2026-11-23T19:00:00Z"))
    tags = (TagChoice("t1", "zebra"), TagChoice("t2", "apple"))
    assert links_needing_work(state_of(log), NOW) == [
        LinkJob("l2", "https://example.com/b", tags),
        LinkJob("l1", "https://example.com/a?utm_source=x", tags),
    ]


def test_deleted_completed_cancelled_and_permanently_failed_links_need_no_work():
    log = Log()
    log.client(*[created(f"l{n}", f"https://example.com/{n}") for n in range(1, 6)])
    log.client(event("v1.LinkDeleted", {"id": "l1", "deletedAt": T0}))
    log.processor(started("l2"), completed("l2"),
                  started("l3"), event("v1.LinkProcessingCancelled", {"linkId": "l3", "reason": "r"}),
                  started("l4"), failed("l4", retryable=False, at=T0))
    assert ids(links_needing_work(state_of(log), NOW + timedelta(days=1))) == ["l5"]


def test_a_pending_link_needs_work_once_it_is_stuck():
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(started("l1", at=at(0)))
    db = state_of(log)
    assert links_needing_work(db, NOW + timedelta(minutes=4, seconds=59)) == []
    assert ids(links_needing_work(db, NOW + timedelta(minutes=5))) == ["l1"]
    assert links_needing_work(db, NOW + timedelta(minutes=9), stuck_after=timedelta(minutes=10)) == []


def test_a_deleted_pending_link_stays_pending_and_needs_no_work():
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(started("l1", at=at(0)))
    log.client(event("v1.LinkDeleted", {"id": "l1", "deletedAt": T0}))
    db = state_of(log)
    assert db.execute("SELECT status FROM link_status").get == "pending"
    assert links_needing_work(db, NOW + timedelta(hours=1)) == []
    assert next_retry_due(db) is None


def test_a_retryable_failure_needs_work_when_its_retry_time_comes():
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(started("l1", 1, at=at(0)), failed("l1", retryable=True, at=at(0)))
    db = state_of(log)
    assert links_needing_work(db, NOW + timedelta(seconds=59)) == []
    assert ids(links_needing_work(db, NOW + timedelta(minutes=1))) == ["l1"]
    assert next_retry_due(db) == NOW + timedelta(minutes=1)


def test_no_more_than_max_attempts():
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(started("l1", 2, at=at(0)), failed("l1", retryable=True, at=at(0)))
    db = state_of(log)
    assert ids(links_needing_work(db, NOW + timedelta(minutes=6))) == ["l1"]
    assert links_needing_work(db, NOW + timedelta(minutes=6), max_attempts=2) == []


def test_a_reprocess_request_makes_a_link_need_work_again():
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(started("l1"), completed("l1"))
    log.client(event("v1.LinkReprocessRequested", {"linkId": "l1", "requestedAt": T0}))
    assert ids(links_needing_work(state_of(log), NOW)) == ["l1"]


def test_limit_takes_the_oldest():
    log = Log()
    log.client(*[created(f"l{n}", f"https://example.com/{n}") for n in range(5)])
    db = state_of(log)
    assert ids(links_needing_work(db, NOW, limit=2)) == ["l0", "l1"]
    assert links_needing_work(db, NOW, limit=0) == []


def test_a_negative_limit_is_refused():
    with pytest.raises(ValueError):
        links_needing_work(new_database(), NOW, limit=-1)


def test_a_naive_now_is_refused():
    with pytest.raises(ValueError):
        links_needing_work(new_database(), datetime(2026, 11, 23, 20, 0))


def test_next_retry_due_is_the_earliest_retry_or_stuck_deadline():
    log = Log()
    log.client(*[created(f"l{n}", f"https://example.com/{n}") for n in range(4)])
    log.processor(
        started("l0", 1, at=at(0)), failed("l0", retryable=True, at=at(10)),
        started("l1", 1, at=at(2)),
        started("l2", 6, at=at(0)), failed("l2", retryable=True, at=at(0)),
        started("l3", 1, at=at(0)), completed("l3"),
    )
    db = state_of(log)
    assert next_retry_due(db) == NOW + timedelta(minutes=7)
    assert next_retry_due(db, stuck_after=timedelta(minutes=20)) == NOW + timedelta(minutes=11)


def test_nothing_waiting_means_no_retry_due():
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    assert next_retry_due(state_of(log)) is None


def test_attempts_and_statuses_of_chosen_links():
    log = Log()
    log.client(*[created(f"l{n}", f"https://example.com/{n}") for n in range(4)])
    log.processor(started("l0", 2), completed("l0"), started("l1", 1),
                  started("l2", 3), failed("l2", retryable=True, at=T0))
    db = state_of(log)
    chosen = ["l0", "l1", "l2", "l3", "nowhere"]
    assert attempts_of(db, chosen) == {"l0": 2, "l1": 1, "l2": 3}
    assert statuses_of(db, chosen) == {"l0": "completed", "l1": "pending", "l2": "failed"}
    assert attempts_of(db, []) == {} and statuses_of(db, iter(["l1"])) == {"l1": "pending"}


def test_processor_epoch_is_the_highest_applied():
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    assert processor_epoch(state_of(log)) == 0
    log.processor(started("l1"), epoch=4)
    log.processor(completed("l1"), epoch=2)
    assert processor_epoch(state_of(log)) == 4
