from datetime import datetime, timedelta

import pytest

from chalicelib.state import CommitOutOfOrder, apply_commits, new_database, version
from chalicelib.state.apply import MAX_ATTEMPTS
from chalicelib.state.times import format_time
from chalicelib.state.queries import get_link, search
from statelog import Log, T0, completed, created, dump, event, failed, started


@pytest.fixture
def db():
    return new_database()


def apply(db, log: Log, since: int = 0):
    return apply_commits(db, log.commits[since:])


T0_TIME = datetime.fromisoformat(T0)


def status_of(db, link_id):
    return db.execute(
        """SELECT status, attempts, started_at, finished_at, next_retry_at,
                  error_code, error_message, retryable, reason
           FROM link_status WHERE link_id = ?""",
        (link_id,),
    ).fetchone()


def test_a_saved_link_is_stored_with_its_normalized_url(db):
    log = Log()
    log.client(created("l1", "https://Example.com/read?utm_source=rss&id=7#top", source="ios"))
    stats = apply(db, log)
    assert db.execute("SELECT * FROM links").fetchall() == [
        (1, "l1", "https://Example.com/read?utm_source=rss&id=7#top", "https://example.com/read?id=7",
         "example.com", "ios", "2026-11-23T20:00:00.000000Z", None, None, 1)
    ]
    assert (stats.version_before, stats.version_after, stats.commits, stats.events_applied) == (0, 1, 1, 1)
    assert version(db) == 1


def test_a_client_given_domain_is_kept(db):
    log = Log()
    log.client(created("l1", "https://www.example.com/", domain="example.com"))
    apply(db, log)
    assert db.execute("SELECT domain FROM links").get == "example.com"


def test_the_same_page_saved_twice_is_one_link_and_both_ids_reach_it(db):
    log = Log()
    log.client(created("l1", "https://example.com/a?utm_medium=x"))
    log.client(created("l2", "HTTPS://EXAMPLE.COM/a#comments"))
    log.client(event("v1.TagCreated", {"id": "t1", "name": "later", "createdAt": T0}))
    log.client(event("v1.LinkTagged", {"id": "lt1", "linkId": "l2", "tagId": "t1", "createdAt": T0}))
    log.processor(started("l2"), completed("l2"))
    log.client(event("v1.LinkDeleted", {"id": "l2", "deletedAt": "2026-11-24T08:00:00Z"}))
    stats = apply(db, log)
    assert stats.skipped_events == 0
    assert db.execute("SELECT id FROM links").fetchall() == [("l1",)]
    assert db.execute("SELECT alias_id, link_id FROM link_aliases").fetchall() == [("l2", "l1")]
    assert db.execute("SELECT link_id, tag_id FROM link_tags").fetchall() == [("l1", "t1")]
    assert status_of(db, "l1")[0] == "completed"
    assert db.execute("SELECT deleted_at FROM links").get == "2026-11-24T08:00:00.000000Z"
    assert get_link(db, "l2")["id"] == "l1"
    assert get_link(db, "l1")["aliases"] == ["l2"]


def test_saving_a_deleted_page_again_brings_it_back(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.client(event("v1.LinkDeleted", {"id": "l1", "deletedAt": T0}))
    log.client(created("l2", "https://example.com/a"))
    apply(db, log)
    assert db.execute("SELECT id, deleted_at FROM links").fetchall() == [("l1", None)]


def test_an_id_already_used_is_not_created_again(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.client(created("l1", "https://example.com/other"))
    log.client(created("l2", "https://example.com/b"))
    log.client(created("l2", "https://example.com/a"))
    stats = apply(db, log)
    assert db.execute("SELECT id, url FROM links ORDER BY seq").fetchall() == [
        ("l1", "https://example.com/a"), ("l2", "https://example.com/b")]
    assert db.execute("SELECT count(*) FROM link_aliases").get == 0
    assert stats.skipped_events == 2
    assert stats.skip_reasons == {"v1.LinkCreated: link id already exists": 2}


def test_a_url_that_cannot_be_normalized_is_kept_for_processing_to_fail(db):
    log = Log()
    log.client(created("l1", "ftp://example.com/file"))
    log.client(created("l2", "ftp://example.com/file"))
    apply(db, log)
    assert db.execute("SELECT id, normalized_url, domain FROM links").fetchall() == [
        ("l1", None, None), ("l2", None, None)]


def test_deleting_restoring_and_marking_read(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.client(event("v1.LinkDeleted", {"id": "l1", "deletedAt": "2026-11-23T21:00:00+01:00"}))
    log.client(event("v1.LinkCompleted", {"id": "l1", "completedAt": "2026-11-23T22:00:00Z"}))
    apply(db, log)
    assert db.execute("SELECT deleted_at, completed_at FROM links").fetchone() == (
        "2026-11-23T20:00:00.000000Z", "2026-11-23T22:00:00.000000Z")
    log.client(event("v1.LinkRestored", {"id": "l1"}))
    log.client(event("v1.LinkUncompleted", {"id": "l1"}))
    apply(db, log, since=3)
    assert db.execute("SELECT deleted_at, completed_at FROM links").fetchone() == (None, None)


def test_marking_read_without_a_time_uses_the_event_time(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.client(event("v1.LinkCompleted", {"id": "l1"}, at="2026-11-23T23:30:00Z"))
    apply(db, log)
    assert db.execute("SELECT completed_at FROM links").get == "2026-11-23T23:30:00.000000Z"


def test_processing_started_then_completed(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(started("l1", attempt=1, at="2026-11-23T20:01:00Z"))
    apply(db, log)
    assert status_of(db, "l1") == (
        "pending", 1, "2026-11-23T20:01:00.000000Z", None, None, None, None, None, None)
    log.processor(completed("l1", at="2026-11-23T20:01:05Z"))
    apply(db, log, since=2)
    assert status_of(db, "l1") == (
        "completed", 1, "2026-11-23T20:01:00.000000Z", "2026-11-23T20:01:05.000000Z",
        None, None, None, None, None)


def test_retryable_failures_back_off_over_a_day_and_the_sixth_is_terminal(db):
    """The documented schedule: due again 1 min, 6 min, 36 min, 3 h 36 min
    and 21 h 36 min after attempts 1 to 5; the sixth failure is final."""
    waits = [timedelta(minutes=1), timedelta(minutes=6), timedelta(minutes=36),
             timedelta(hours=3, minutes=36), timedelta(hours=21, minutes=36)]
    assert MAX_ATTEMPTS == len(waits) + 1
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    apply(db, log)
    failed_at = T0_TIME
    for attempt in range(1, MAX_ATTEMPTS + 1):
        log.processor(started("l1", attempt),
                      failed("l1", retryable=True, at=format_time(failed_at), code="dns_failure"))
        apply(db, log, since=attempt)
        status, attempts, _, _, next_retry_at, *_ = status_of(db, "l1")
        assert (status, attempts) == ("failed", attempt)
        if attempt < MAX_ATTEMPTS:
            assert next_retry_at == format_time(failed_at + waits[attempt - 1])
            failed_at += waits[attempt - 1]
        else:
            assert next_retry_at is None
    assert failed_at - T0_TIME > timedelta(days=1), "the last attempt is tomorrow"


def test_saving_a_failed_page_again_asks_for_it_anew(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"), created("l2", "https://example.com/b"))
    log.processor(started("l1", 6), failed("l1", retryable=True, at=T0, code="dns_failure"),
                  started("l2", 1), failed("l2", retryable=False, at=T0, code="http_404"))
    apply(db, log)
    assert [status_of(db, link)[0] for link in ("l1", "l2")] == ["failed", "failed"]

    log.client(created("again-1", "https://EXAMPLE.com/a#top"), created("again-2", "https://example.com/b"))
    stats = apply(db, log, since=2)

    assert stats.skipped_events == 0
    assert status_of(db, "l1") is None and status_of(db, "l2") is None, "both need work again"
    assert get_link(db, "again-1")["id"] == "l1"
    assert get_link(db, "l1")["status"] == "new" and get_link(db, "l1")["error"] is None
    # The new run starts counting at one, and its outcome is the one shown.
    log.processor(started("l1", 1), completed("l1"))
    apply(db, log, since=3)
    assert status_of(db, "l1")[:2] == ("completed", 1)


def test_saving_a_cancelled_page_again_asks_for_it_anew(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(started("l1"), event("v1.LinkProcessingCancelled", {"linkId": "l1", "reason": "deleted"}))
    log.client(event("v1.LinkDeleted", {"id": "l1", "deletedAt": T0}))
    log.client(created("again", "https://example.com/a"))
    apply(db, log)
    assert db.execute("SELECT deleted_at FROM links WHERE id = 'l1'").get is None
    assert status_of(db, "l1") is None


@pytest.mark.parametrize("outcome", ["completed", "pending", "new"])
def test_saving_again_a_page_that_is_done_or_under_way_changes_no_status(db, outcome):
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    if outcome != "new":
        log.processor(started("l1"), *([completed("l1")] if outcome == "completed" else []))
    apply(db, log)
    before = status_of(db, "l1")

    log.client(created("again", "https://example.com/a"))
    apply(db, log, since=len(log.commits) - 1)

    assert status_of(db, "l1") == before
    assert get_link(db, "again")["id"] == "l1"


def test_a_longer_retry_after_wins_over_the_backoff(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(started("l1"), failed("l1", retryable=True, at=T0, code="http_429", retryAfter=600))
    apply(db, log)
    assert status_of(db, "l1")[4:6] == ("2026-11-23T20:10:00.000000Z", "http_429")


def test_a_permanent_failure_has_no_retry(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(started("l1"), failed("l1", retryable=False, at=T0, code="http_404"))
    apply(db, log)
    assert status_of(db, "l1")[:2] + status_of(db, "l1")[4:8] == (
        "failed", 1, None, "http_404", "it failed", 0)


def test_cancelled_keeps_the_reason(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(started("l1"),
                  event("v1.LinkProcessingCancelled", {"linkId": "l1", "reason": "link deleted"}))
    apply(db, log)
    assert status_of(db, "l1")[:2] == ("cancelled", 1)
    assert status_of(db, "l1")[8] == "link deleted"


def test_an_outcome_for_a_link_that_is_not_pending_is_stale_and_skipped(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"), created("l2", "https://example.com/b"))
    log.processor(started("l1"))
    log.client(event("v1.LinkReprocessRequested", {"linkId": "l1", "requestedAt": T0}))
    log.processor(completed("l1"), failed("l2", retryable=True, at=T0),
                  event("v1.LinkProcessingCancelled", {"linkId": "l2", "reason": "r"}))
    stats = apply(db, log)
    assert stats.skip_reasons == {
        "v1.LinkProcessingCompleted: link is not pending": 1,
        "v1.LinkProcessingFailed: link is not pending": 1,
        "v1.LinkProcessingCancelled: link is not pending": 1,
    }
    assert db.execute("SELECT count(*) FROM link_status").get == 0


def test_reprocess_request_clears_the_status(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(started("l1", 3), failed("l1", retryable=False, at=T0))
    log.client(event("v1.LinkReprocessRequested", {"linkId": "l1", "requestedAt": T0}))
    apply(db, log)
    assert status_of(db, "l1") is None


def test_results_are_stored_and_searchable(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(
        started("l1"),
        event("v1.LinkMetadataFetched", {"linkId": "l1", "title": "Sourdough basics",
                                         "description": "Bread at home", "siteName": "Bakery",
                                         "lang": "en"}),
        event("v1.LinkContentExtracted", {"linkId": "l1", "text": "Flour, water and patience.",
                                          "wordCount": 4, "readingMinutes": 1}),
        event("v1.LinkSummarized", {"linkId": "l1", "summary": "How to bake.", "model": "extractive"}),
        completed("l1"),
    )
    apply(db, log)
    link = get_link(db, "l1")
    assert link["metadata"] == {
        "title": "Sourdough basics", "description": "Bread at home", "image": None,
        "site_name": "Bakery", "favicon": None, "canonical_url": None, "author": None,
        "published_at": None, "lang": "en"}
    assert (link["text"], link["word_count"], link["reading_minutes"]) == (
        "Flour, water and patience.", 4, 1)
    assert (link["summary"], link["summary_model"]) == ("How to bake.", "extractive")
    assert [hit["id"] for hit in search(db, "patience")] == ["l1"]
    assert [hit["id"] for hit in search(db, "sourdough")] == ["l1"]


def test_new_results_replace_the_old_ones_in_the_search_index(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(
        event("v1.LinkMetadataFetched", {"linkId": "l1", "title": "Old title"}),
        event("v1.LinkContentExtracted", {"linkId": "l1", "text": "obsolete words",
                                          "wordCount": 2, "readingMinutes": 1}),
    )
    log.processor(
        event("v1.LinkContentExtracted", {"linkId": "l1", "text": "fresh words",
                                          "wordCount": 2, "readingMinutes": 1}),
        event("v1.LinkMetadataFetched", {"linkId": "l1", "title": "New title"}),
    )
    apply(db, log)
    assert search(db, "obsolete") == []
    assert search(db, "old") == []
    assert [hit["id"] for hit in search(db, "fresh new")] == ["l1"]
    db.execute("INSERT INTO link_search (link_search) VALUES ('integrity-check')")


def test_tags_are_created_renamed_deleted_and_attached(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.client(
        event("v1.TagCreated", {"id": "t1", "name": "reading", "createdAt": T0, "sortOrder": 2}),
        event("v1.TagCreated", {"id": "t2", "name": "cooking", "createdAt": T0}),
        event("v1.TagRenamed", {"id": "t1", "name": "to read"}),
        event("v1.LinkTagged", {"id": "lt1", "linkId": "l1", "tagId": "t1", "createdAt": T0}),
        event("v1.LinkTagged", {"id": "lt2", "linkId": "l1", "tagId": "t2", "createdAt": T0}),
        event("v2.LinkUntagged", {"linkId": "l1", "tagId": "t2"}),
        event("v1.TagDeleted", {"id": "t2", "deletedAt": "2026-11-24T00:00:00Z"}),
    )
    stats = apply(db, log)
    assert stats.events_applied == 8
    assert db.execute("SELECT id, name, sort_order, deleted_at FROM tags ORDER BY id").fetchall() == [
        ("t1", "to read", 2.0, None), ("t2", "cooking", None, "2026-11-24T00:00:00.000000Z")]
    assert db.execute("SELECT link_id, tag_id FROM link_tags").fetchall() == [("l1", "t1")]


def test_events_naming_unknown_links_or_tags_are_skipped_and_counted(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"),
               event("v1.TagCreated", {"id": "t1", "name": "x", "createdAt": T0}))
    apply(db, log)
    before = dump(db)
    log.client(
        event("v1.LinkTagged", {"id": "lt1", "linkId": "nope", "tagId": "t1", "createdAt": T0}),
        event("v1.LinkTagged", {"id": "lt2", "linkId": "l1", "tagId": "nope", "createdAt": T0}),
        event("v1.LinkDeleted", {"id": "nope", "deletedAt": T0}),
        event("v1.TagRenamed", {"id": "nope", "name": "y"}),
        event("v1.TagSuggestionAccepted", {"id": "nope"}),
    )
    log.processor(started("nope"))
    stats = apply(db, log, since=1)
    assert stats.skipped_events == 6
    assert stats.skip_reasons == {
        "v1.LinkTagged: unknown link": 1,
        "v1.LinkTagged: unknown tag": 1,
        "v1.LinkDeleted: unknown link": 1,
        "v1.TagRenamed: unknown tag": 1,
        "v1.TagSuggestionAccepted: unknown suggestion": 1,
        "v1.LinkProcessingStarted: unknown link": 1,
    }
    assert db.execute("SELECT skipped_events FROM meta").get == 6
    assert db.execute("SELECT count(*) FROM link_tags").get == 0
    assert db.execute("SELECT count(*) FROM link_status").get == 0
    assert before["tags"] == dump(db)["tags"]


def test_suggestions_accepted_tag_the_link_and_answers_survive_a_new_suggestion(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"),
               event("v1.TagCreated", {"id": "t1", "name": "bread", "createdAt": T0}),
               event("v1.TagCreated", {"id": "t2", "name": "travel", "createdAt": T0}))
    log.processor(
        event("v1.TagSuggested", {"id": "s1", "linkId": "l1", "tagId": "t1", "score": 0.8}),
        event("v1.TagSuggested", {"id": "s2", "linkId": "l1", "tagId": "t2", "score": 0.3}),
    )
    log.client(event("v1.TagSuggestionAccepted", {"id": "s1"}),
               event("v1.TagSuggestionDismissed", {"id": "s2"}))
    log.processor(
        event("v1.TagSuggested", {"id": "s3", "linkId": "l1", "tagId": "t1", "score": 0.9}),
        event("v1.TagSuggested", {"id": "s4", "linkId": "l1", "tagId": "t2", "score": 0.4}),
    )
    log.client(event("v1.TagSuggestionAccepted", {"id": "s2"}))
    apply(db, log)
    assert db.execute(
        "SELECT link_id, tag_id, id, score, status FROM tag_suggestions ORDER BY tag_id"
    ).fetchall() == [("l1", "t1", "s3", 0.9, "accepted"), ("l1", "t2", "s4", 0.4, "accepted")]
    assert db.execute("SELECT link_id, tag_id FROM link_tags ORDER BY tag_id").fetchall() == [
        ("l1", "t1"), ("l1", "t2")]


def test_an_event_seen_twice_changes_state_once(db):
    log = Log()
    delete = event("v1.LinkDeleted", {"id": "l1", "deletedAt": T0}, event_id="del-1")
    log.client(created("l1", "https://example.com/a", event_id="create-1"))
    log.client(delete)
    log.client(event("v1.LinkRestored", {"id": "l1"}))
    log.client(delete, created("l1", "https://example.com/a", event_id="create-1"))
    stats = apply(db, log)
    assert stats.duplicate_events == 2
    assert stats.events_applied == 3
    assert db.execute("SELECT id, deleted_at FROM links").fetchall() == [("l1", None)]
    assert db.execute("SELECT * FROM applied_events ORDER BY version, id").fetchall() == [
        ("create-1", 1), ("del-1", 2), (log.commits[2]["events"][0]["id"], 3)]
    assert db.execute("SELECT duplicate_events FROM meta").get == 2


def test_batch_ids_are_recorded_with_the_version_they_first_landed_at(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"), batch_id="push-1")
    log.client(created("l2", "https://example.com/b"), batch_id="push-2")
    log.client(batch_id="push-1")
    apply(db, log)
    assert db.execute("SELECT * FROM batches ORDER BY batch_id").fetchall() == [
        ("push-1", 1), ("push-2", 2)]


def test_unknown_event_names_are_skipped_and_counted(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    apply(db, log)
    before = state_tables(db)
    log.client(event("v9.LinkTeleported", {"id": "l1"}), event("v1.linkcreated", {"id": "l9"}))
    stats = apply(db, log, since=1)
    assert stats.unknown_events == 2
    assert db.execute("SELECT unknown_events, version FROM meta").fetchone() == (2, 2)
    assert state_tables(db) == before


MALFORMED = [
    ("not an object", "event is not an object"),
    ({"name": "v1.LinkDeleted", "args": {"id": "l1"}}, "event has no valid id"),
    ({"id": "", "name": "v1.LinkDeleted", "args": {"id": "l1"}}, "event has no valid id"),
    ({"id": "x" * 65, "name": "v1.LinkDeleted", "args": {"id": "l1"}}, "event has no valid id"),
    ({"id": 7, "name": "v1.LinkDeleted", "args": {"id": "l1"}}, "event has no valid id"),
    ({"id": "m1", "name": "v1.LinkDeleted", "args": ["l1"]}, "v1.LinkDeleted: args are not an object"),
    ({"id": "m2", "name": "v1.LinkDeleted", "args": {"id": "l1", "deletedAt": "yesterday"}},
     "v1.LinkDeleted: deletedAt must be an ISO 8601 time"),
    ({"id": "m3", "name": "v1.LinkCreated", "args": {"id": "l2", "createdAt": T0}},
     "v1.LinkCreated: url must be a non-empty string"),
    ({"id": "m4", "name": "v1.LinkCreated", "args": {"id": "l2", "url": "https://example.com/b"}},
     "v1.LinkCreated: createdAt must be an ISO 8601 time"),
    ({"id": "m5", "name": "v1.LinkCreated", "args": {"id": None, "url": "https://example.com/b", "createdAt": T0}},
     "v1.LinkCreated: id must be a non-empty string"),
    ({"id": "m6", "name": "v1.LinkCreated", "args": {"id": "l2", "url": "https://example.com/b", "createdAt": T0, "source": 3}},
     "v1.LinkCreated: source must be a string"),
    ({"id": "m7", "name": "v1.TagCreated", "args": {"id": "t2", "name": "x", "createdAt": T0, "sortOrder": "first"}},
     "v1.TagCreated: sortOrder must be a finite number (an integer within signed 64 bits)"),
    ({"id": "m9", "name": "v1.TagCreated", "args": {"id": "t2", "name": "x", "createdAt": T0, "sortOrder": 2**63}},
     "v1.TagCreated: sortOrder must be a finite number (an integer within signed 64 bits)"),
    ({"id": "m10", "name": "v1.TagCreated", "args": {"id": "t2", "name": "x", "createdAt": T0, "sortOrder": -(2**63) - 1}},
     "v1.TagCreated: sortOrder must be a finite number (an integer within signed 64 bits)"),
    ({"id": "m11", "name": "v1.TagCreated", "args": {"id": "t2", "name": "x", "createdAt": T0, "sortOrder": float("inf")}},
     "v1.TagCreated: sortOrder must be a finite number (an integer within signed 64 bits)"),
    ({"id": "m12", "name": "v1.TagCreated", "args": {"id": "t2", "name": "a\ud800", "createdAt": T0}},
     "v1.TagCreated: name holds a lone surrogate, which UTF-8 cannot store"),
    ({"id": "m13", "name": "v1.LinkCreated", "args": {"id": "l2", "url": "https://example.com/b", "createdAt": T0, "source": "\udfff"}},
     "v1.LinkCreated: source holds a lone surrogate, which UTF-8 cannot store"),
    ({"id": "m14", "name": "v1.LinkDeleted", "args": {"id": "l1", "deletedAt": "0001-01-01T00:00:00+01:00"}},
     "v1.LinkDeleted: deletedAt must be an ISO 8601 time"),
    ({"id": "\ud800", "name": "v1.LinkDeleted", "args": {"id": "l1", "deletedAt": T0}},
     "event has no valid id"),
    ({"id": "m8", "name": "v1.LinkTagged", "args": {"linkId": "l1", "tagId": "t1", "createdAt": 5}},
     "v1.LinkTagged: createdAt must be an ISO 8601 time"),
]

MALFORMED_PROCESSOR = [
    ({"id": "p1", "name": "v1.LinkProcessingStarted", "args": {"linkId": "l1", "attempt": 0, "startedAt": T0}},
     "v1.LinkProcessingStarted: attempt must be an integer from 1 to 2**63-1"),
    ({"id": "p2", "name": "v1.LinkProcessingStarted", "args": {"linkId": "l1", "attempt": True, "startedAt": T0}},
     "v1.LinkProcessingStarted: attempt must be an integer from 1 to 2**63-1"),
    ({"id": "p3", "name": "v1.LinkProcessingFailed", "args": {"linkId": "l1", "code": "x", "retryable": "yes", "failedAt": T0}},
     "v1.LinkProcessingFailed: retryable must be true or false"),
    ({"id": "p4", "name": "v1.LinkProcessingFailed", "args": {"linkId": "l1", "code": "x", "retryable": True, "retryAfter": -1, "failedAt": T0}},
     "v1.LinkProcessingFailed: retryAfter must be a non-negative number"),
    ({"id": "p5", "name": "v1.LinkProcessingFailed", "args": {"linkId": "l1", "retryable": True, "failedAt": T0}},
     "v1.LinkProcessingFailed: code must be a non-empty string"),
    ({"id": "p6", "name": "v1.LinkContentExtracted", "args": {"linkId": "l1", "text": 42, "wordCount": 1, "readingMinutes": 1}},
     "v1.LinkContentExtracted: text must be a string"),
    ({"id": "p7", "name": "v1.LinkContentExtracted", "args": {"linkId": "l1", "text": "a", "wordCount": -1, "readingMinutes": 1}},
     "v1.LinkContentExtracted: wordCount must be an integer from 0 to 2**63-1"),
    ({"id": "p12", "name": "v1.LinkContentExtracted", "args": {"linkId": "l1", "text": "a", "wordCount": 2**63, "readingMinutes": 1}},
     "v1.LinkContentExtracted: wordCount must be an integer from 0 to 2**63-1"),
    ({"id": "p13", "name": "v1.LinkProcessingStarted", "args": {"linkId": "l1", "attempt": 2, "startedAt": "9999-12-31T23:59:59Z"}},
     "v1.LinkProcessingStarted: startedAt is too late to add a retry delay to"),
    ({"id": "p14", "name": "v1.LinkProcessingFailed", "args": {"linkId": "l1", "code": "x", "message": "", "retryable": True, "failedAt": "9999-12-31T23:00:00Z"}},
     "v1.LinkProcessingFailed: failedAt is too late to add a retry delay to"),
    ({"id": "p8", "name": "v1.LinkMetadataFetched", "args": {"linkId": "l1", "title": ["a"]}},
     "v1.LinkMetadataFetched: title must be a string"),
    ({"id": "p9", "name": "v1.TagSuggested", "args": {"id": "s1", "linkId": "l1", "tagId": "t1", "score": 2}},
     "v1.TagSuggested: score must be a number from 0 to 1"),
    ({"id": "p10", "name": "v1.LinkSummarized", "args": {"linkId": "l1"}},
     "v1.LinkSummarized: summary must be a string"),
    ({"id": "p11", "name": "v1.LinkProcessingStarted", "args": {"linkId": ["l1"], "attempt": 1, "startedAt": T0}},
     "v1.LinkProcessingStarted: linkId must be a non-empty string"),
]


def org_with_one_link() -> Log:
    log = Log()
    log.client(created("l1", "https://example.com/a"),
               event("v1.TagCreated", {"id": "t1", "name": "x", "createdAt": T0}))
    return log


def state_tables(db) -> dict:
    return {table: rows for table, rows in dump(db).items()
            if table not in ("meta", "applied_events", "batches")}


@pytest.mark.parametrize("bad, reason", MALFORMED)
def test_a_malformed_client_event_is_skipped_and_changes_nothing(db, bad, reason):
    log = org_with_one_link()
    apply(db, log)
    before = state_tables(db)
    log.client(bad)
    stats = apply(db, log, since=1)
    assert stats.skip_reasons == {reason: 1}
    assert state_tables(db) == before
    assert version(db) == 2


@pytest.mark.parametrize("bad, reason", MALFORMED_PROCESSOR)
def test_a_malformed_processor_event_is_skipped_and_changes_nothing(db, bad, reason):
    log = org_with_one_link()
    log.processor(started("l1"))
    apply(db, log)
    before = state_tables(db)
    log.processor(bad)
    stats = apply(db, log, since=2)
    assert stats.skip_reasons == {reason: 1}
    assert state_tables(db) == before


def test_a_commit_whose_events_are_not_a_list_is_counted_and_passed(db):
    log = org_with_one_link()
    log.client()["events"] = {"id": "e"}
    stats = apply(db, log)
    assert stats.skip_reasons == {"commit events are not a list": 1}
    assert version(db) == 2


def test_processor_events_in_a_client_commit_are_refused(db):
    log = org_with_one_link()
    log.client(started("l1"), completed("l1"))
    stats = apply(db, log)
    assert stats.skipped_events == 2
    assert status_of(db, "l1") is None


def test_a_processor_commit_from_an_older_epoch_is_skipped_whole(db):
    log = org_with_one_link()
    log.processor(started("l1", at="2026-11-23T20:01:00Z"), epoch=2)
    log.processor(completed("l1"), created("l9", "https://example.com/z"), epoch=1)
    log.processor(event("v1.LinkProcessingFailed", {"linkId": "l1", "code": "x", "message": "m",
                                                    "retryable": False, "failedAt": T0}))
    del log.commits[-1]["author"]["epoch"]
    stats = apply(db, log)
    assert stats.fenced_commits == 2
    assert status_of(db, "l1")[0] == "pending"
    assert db.execute("SELECT count(*) FROM links").get == 1
    assert db.execute("SELECT processor_epoch, fenced_commits, version FROM meta").fetchone() == (2, 2, 4)
    fenced_ids = [e["id"] for e in log.commits[2]["events"]]
    assert db.execute(
        f"SELECT count(*) FROM applied_events WHERE id IN ({','.join('?' * len(fenced_ids))})", fenced_ids
    ).get == 0


def test_a_processor_commit_of_the_same_or_a_newer_epoch_applies(db):
    log = org_with_one_link()
    log.processor(started("l1"), epoch=2)
    log.processor(completed("l1"), epoch=2)
    log.processor(started("l1", attempt=2), epoch=5)
    stats = apply(db, log)
    assert stats.fenced_commits == 0
    assert status_of(db, "l1")[:2] == ("pending", 2)
    assert db.execute("SELECT processor_epoch FROM meta").get == 5


@pytest.mark.parametrize("versions", [[2, 4], [1], [3], [2, 2], [0]])
def test_a_gap_or_a_repeat_raises_and_changes_nothing(db, versions):
    log = org_with_one_link()
    apply(db, log)
    before = dump(db)
    commits = [{"version": v, "author": {"kind": "client"}, "batch_id": f"b{v}",
                "events": [created(f"new-{v}", f"https://example.com/{v}")]} for v in versions]
    with pytest.raises(CommitOutOfOrder):
        apply_commits(db, commits)
    assert dump(db) == before
    assert not db.in_transaction


@pytest.mark.parametrize("commit", ["v2", None, {"events": []}, {"version": "2", "events": []},
                                    {"version": 2.0, "events": []}, {"version": True, "events": []}])
def test_a_commit_without_a_proper_version_raises(db, commit):
    with pytest.raises(CommitOutOfOrder):
        apply_commits(db, [commit])
    assert version(db) == 0


def test_an_empty_list_of_commits_changes_nothing(db):
    stats = apply_commits(db, [])
    assert (stats.version_before, stats.version_after, stats.commits) == (0, 0, 0)


def test_a_failure_while_reading_commits_rolls_back_the_whole_call(db):
    log = org_with_one_link()
    apply(db, log)
    before = dump(db)

    def commits_then_a_lost_connection():
        yield {"version": 2, "author": {"kind": "client"},
               "events": [created("l2", "https://example.com/2")]}
        raise ConnectionError("the log read failed half way")

    with pytest.raises(ConnectionError):
        apply_commits(db, commits_then_a_lost_connection())
    assert dump(db) == before
    assert not db.in_transaction


def test_a_title_saved_with_the_link_is_searchable_until_the_page_gives_its_own(db):
    log = Log()
    log.client(event("v1.LinkCreated", {"id": "l1", "url": "https://example.com/a",
                                        "createdAt": T0, "title": "Grandma's bread notes"}))
    log.client(event("v1.LinkCreated", {"id": "l2", "url": "https://example.com/b",
                                        "createdAt": T0, "title": "Kept title"}))
    apply(db, log)
    assert get_link(db, "l1")["metadata"]["title"] == "Grandma's bread notes"
    assert [hit["id"] for hit in search(db, "grandma")] == ["l1"]
    log.processor(
        started("l1"), started("l2"),
        event("v1.LinkMetadataFetched", {"linkId": "l1", "title": "Rye bread"}),
        # A page without a title keeps the one the user saved it with.
        event("v1.LinkMetadataFetched", {"linkId": "l2", "description": "no title here"}),
    )
    apply(db, log, since=2)
    assert get_link(db, "l1")["metadata"]["title"] == "Rye bread"
    assert search(db, "grandma") == []
    assert get_link(db, "l2")["metadata"]["title"] == "Kept title"
    db.execute("INSERT INTO link_search (link_search) VALUES ('integrity-check')")


def test_an_event_that_fails_unforeseen_is_rolled_back_alone_and_counted(db, monkeypatch):
    from chalicelib.state import apply as apply_module

    def creates_then_breaks(db, args, context):
        # Writes first, then fails the way a bug or a value SQLite cannot
        # bind would: the write must not survive.
        apply_module._link_created(db, args, context)
        raise OverflowError("int too big to convert")

    log = Log()
    log.client(created("l1", "https://example.com/1"),
               event("v1.LinkBroken", {"id": "l2", "url": "https://example.com/2", "createdAt": T0}),
               created("l3", "https://example.com/3"))
    monkeypatch.setitem(apply_module.HANDLERS, "v1.LinkBroken", creates_then_breaks)

    stats = apply(db, log)

    assert stats.skip_reasons == {"v1.LinkBroken: failed to apply (OverflowError)": 1}
    assert stats.events_applied == 2
    assert [row[0] for row in db.execute("SELECT id FROM links ORDER BY id")] == ["l1", "l3"]
    assert db.execute("SELECT skipped_events FROM meta").get == 1
    assert version(db) == 1


def test_a_failure_of_the_machine_is_not_blamed_on_the_event(db, monkeypatch):
    import apsw

    from chalicelib.state import apply as apply_module

    def disk_full(db, args, context):
        raise apsw.FullError("database or disk is full")

    log = org_with_one_link()
    apply(db, log)
    before = dump(db)
    log.client(created("l2", "https://example.com/2"), event("v1.LinkBroken", {}))
    monkeypatch.setitem(apply_module.HANDLERS, "v1.LinkBroken", disk_full)

    with pytest.raises(apsw.FullError):
        apply(db, log, since=1)
    assert dump(db) == before
    assert not db.in_transaction


def test_a_batch_id_sqlite_cannot_store_is_not_recorded_and_the_commit_applies(db):
    log = Log()
    log.client(created("l1", "https://example.com/1"), batch_id="b\udc80")

    stats = apply(db, log)

    assert stats.events_applied == 1
    assert db.execute("SELECT count(*) FROM batches").get == 0


@pytest.mark.parametrize("bad_id", ["a\nb", "t\x00", "\x7f"])
def test_an_id_processor_events_could_not_carry_is_skipped(db, bad_id):
    log = Log()
    log.client(created(bad_id, "https://example.com/1"),
               event("v1.TagCreated", {"id": bad_id, "name": "x", "createdAt": T0}))

    stats = apply(db, log)

    assert stats.skip_reasons == {"v1.LinkCreated: id must not contain control characters": 1,
                                  "v1.TagCreated: id must not contain control characters": 1}


def test_processor_epochs_beyond_64_bits_apply_and_are_kept_at_the_largest_integer(db):
    log = org_with_one_link()
    log.processor(started("l1"), epoch=2**63)
    log.processor(completed("l1"), epoch=2**63 + 1)

    stats = apply(db, log)

    assert (stats.fenced_commits, stats.events_applied) == (0, 4)
    assert db.execute("SELECT processor_epoch FROM meta").get == 2**63 - 1
    assert status_of(db, "l1")[0] == "completed"


def test_a_new_tag_suggestion_is_accepted_as_the_tag_the_client_names(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"))
    log.processor(
        event("v1.NewTagSuggested", {"id": "n1", "linkId": "l1", "name": "sourdough", "score": 0.9}),
        event("v1.NewTagSuggested", {"id": "n2", "linkId": "l1", "name": "starter", "score": 0.6}),
    )
    log.client(
        event("v1.TagSuggestionAccepted", {"id": "n1"}),  # no tag named: skipped
        event("v1.TagSuggestionAccepted", {"id": "n1", "tagId": "t-none"}),  # no such tag: skipped
        event("v1.TagCreated", {"id": "t-sd", "name": "sourdough", "createdAt": T0}),
        event("v1.TagSuggestionAccepted", {"id": "n1", "tagId": "t-sd"}),
        event("v1.TagSuggestionDismissed", {"id": "n2"}),
    )
    log.processor(event("v1.NewTagSuggested", {"id": "n3", "linkId": "l1", "name": "starter", "score": 0.7}))
    stats = apply(db, log)

    assert stats.skip_reasons == {
        "v1.TagSuggestionAccepted: tagId is needed to accept a new tag": 1,
        "v1.TagSuggestionAccepted: unknown tag": 1,
    }
    assert db.execute(
        "SELECT link_id, name, id, score, status, tag_id FROM new_tag_suggestions ORDER BY name"
    ).fetchall() == [("l1", "sourdough", "n1", 0.9, "accepted", "t-sd"), ("l1", "starter", "n3", 0.7, "dismissed", None)]
    assert db.execute("SELECT link_id, tag_id FROM link_tags").fetchall() == [("l1", "t-sd")]
    suggestions = get_link(db, "l1")["suggestions"]
    assert [(s["id"], s["tag_id"], s["tag_name"], s["status"], s["new"]) for s in suggestions] == [
        ("n1", "t-sd", "sourdough", "accepted", True), ("n3", None, "starter", "dismissed", True)]


def test_accepting_an_existing_tag_suggestion_as_another_tag_is_skipped(db):
    log = Log()
    log.client(created("l1", "https://example.com/a"),
               event("v1.TagCreated", {"id": "t1", "name": "bread", "createdAt": T0}),
               event("v1.TagCreated", {"id": "t2", "name": "cake", "createdAt": T0}))
    log.processor(event("v1.TagSuggested", {"id": "s1", "linkId": "l1", "tagId": "t1", "score": 0.8}))
    log.client(event("v1.TagSuggestionAccepted", {"id": "s1", "tagId": "t2"}))
    stats = apply(db, log)

    assert stats.skip_reasons == {"v1.TagSuggestionAccepted: tagId is not the suggested tag": 1}
    assert db.execute("SELECT count(*) FROM link_tags").get == 0
