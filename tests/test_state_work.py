from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.links.outcome import LinkJob, TagChoice
from chalicelib.state import (
    attempts_of,
    links_needing_work,
    new_database,
    next_due,
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


def test_a_pending_link_needs_work_at_once_because_its_start_is_dead():
    # Only a lease holder asks, and every pending link in its state was
    # started by an earlier holder, whose result can never land.
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(started("l1", at=at(0)))
    db = state_of(log)
    assert ids(links_needing_work(db, NOW)) == ["l1"]
    assert next_due(db, NOW) == NOW


def test_a_deleted_pending_link_stays_pending_and_needs_no_work():
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(started("l1", at=at(0)))
    log.client(event("v1.LinkDeleted", {"id": "l1", "deletedAt": T0}))
    db = state_of(log)
    assert db.execute("SELECT status FROM link_status").get == "pending"
    assert links_needing_work(db, NOW + timedelta(hours=1)) == []
    assert next_due(db, NOW) is None


def test_a_retryable_failure_needs_work_when_its_retry_time_comes():
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(started("l1", 1, at=at(0)), failed("l1", retryable=True, at=at(0)))
    db = state_of(log)
    assert links_needing_work(db, NOW + timedelta(seconds=59)) == []
    assert ids(links_needing_work(db, NOW + timedelta(minutes=1))) == ["l1"]
    assert next_due(db, NOW) == NOW + timedelta(minutes=1)
    later = NOW + timedelta(minutes=2)
    assert next_due(db, later) == later


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


def test_next_due_is_the_earliest_retry_when_no_link_needs_work_now():
    log = Log()
    log.client(*[created(f"l{n}", f"https://example.com/{n}") for n in range(4)])
    log.processor(
        started("l0", 1, at=at(0)), failed("l0", retryable=True, at=at(10)),
        started("l1", 2, at=at(2)), failed("l1", retryable=True, at=at(2)),
        started("l2", 6, at=at(0)), failed("l2", retryable=True, at=at(0)),
        started("l3", 1, at=at(0)), completed("l3"),
    )
    db = state_of(log)
    assert next_due(db, NOW) == NOW + timedelta(minutes=8)
    assert next_due(db, NOW, max_attempts=2) == NOW + timedelta(minutes=11)


@pytest.mark.parametrize(
    "waiting",
    ["never started", "reprocess requested", "left pending", "retry due"],
)
def test_next_due_is_now_whenever_a_link_needs_work(waiting):
    """The idle check reads only next_due: it must never say "later" or
    "never" while links_needing_work would find a link."""
    log = Log()
    log.client(*[created(f"l{n}", f"https://example.com/{n}") for n in range(3)])
    log.processor(*[e for n in range(3) for e in (started(f"l{n}", at=at(0)), completed(f"l{n}"))])
    if waiting == "never started":
        log.client(created("new", "https://example.com/new"))
    elif waiting == "reprocess requested":
        log.client(event("v1.LinkReprocessRequested", {"linkId": "l1", "requestedAt": T0}))
    elif waiting == "left pending":
        log.client(created("new", "https://example.com/new"))
        log.processor(started("new", at=at(0)))
    else:
        log.client(created("new", "https://example.com/new"))
        log.processor(started("new", at=at(-5)), failed("new", retryable=True, at=at(-5)))
    db = state_of(log)
    assert len(links_needing_work(db, NOW)) == 1
    assert next_due(db, NOW) == NOW


def test_nothing_waiting_means_nothing_due():
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(started("l1"), completed("l1"))
    assert next_due(state_of(log), NOW) is None


def processed_page(log: Log, link_id: str, title: str, text: str, deleted: bool = False) -> None:
    log.client(created(link_id, f"https://example.com/{link_id}"))
    log.processor(
        started(link_id),
        event("v1.LinkMetadataFetched", {"linkId": link_id, "title": title}),
        event("v1.LinkContentExtracted", {"linkId": link_id, "text": text, "wordCount": 9, "readingMinutes": 1}),
        completed(link_id),
    )
    if deleted:
        log.client(event("v1.LinkDeleted", {"id": link_id, "deletedAt": T0}))


@pytest.mark.parametrize("choice, expected", [("existing+new", True), ("existing", False)])
def test_jobs_carry_the_org_s_common_words_when_it_asks_for_new_tags(choice, expected):
    log = Log()
    log.client(event("v1.OrgSettingsChanged", {"tagSuggestions": choice}))
    for n in range(24):
        processed_page(log, f"p{n}", f"Update {n}", f"Using the data of station {n}. " + ("Kayak. " if n < 3 else ""))
    # Deleted pages are not the org's any more.
    for n in range(24, 60):
        processed_page(log, f"gone{n}", "Gone", "Kayak tours and kayak trips.", deleted=True)
    log.client(created("new", "https://example.com/new"))

    jobs = links_needing_work(state_of(log), NOW)
    assert ids(jobs) == ["new"]
    [job] = jobs

    if expected:
        assert {"update", "using", "data", "station"} <= job.common_words
        assert "kayak" not in job.common_words
    else:
        assert job.common_words == frozenset()
