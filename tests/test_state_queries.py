import itertools

import apsw
import pytest

from chalicelib.state import apply_commits, new_database, queries
from chalicelib.state.queries import (
    QueryRejected,
    fts_query,
    get_link,
    list_links,
    run_readonly_sql,
    search,
)
from statelog import Log, T0, completed, created, dump, event, failed, started


def metadata(link_id, title, description=None):
    return event("v1.LinkMetadataFetched", {"linkId": link_id, "title": title, "description": description})


def text(link_id, body):
    return event("v1.LinkContentExtracted", {"linkId": link_id, "text": body,
                                             "wordCount": len(body.split()), "readingMinutes": 1})


@pytest.fixture
def db():
    log = Log()
    log.client(event("v1.TagCreated", {"id": "t-bread", "name": "bread", "createdAt": T0}),
               event("v1.TagCreated", {"id": "t-old", "name": "old", "createdAt": T0}))
    log.client(*[created(f"l{n}", f"https://example.com/{n}") for n in range(1, 6)])
    log.client(event("v1.LinkTagged", {"id": "lt1", "linkId": "l1", "tagId": "t-bread", "createdAt": T0}),
               event("v1.LinkTagged", {"id": "lt2", "linkId": "l1", "tagId": "t-old", "createdAt": T0}),
               event("v1.LinkTagged", {"id": "lt3", "linkId": "l3", "tagId": "t-bread", "createdAt": T0}),
               event("v1.TagDeleted", {"id": "t-old", "deletedAt": T0}),
               event("v1.LinkDeleted", {"id": "l5", "deletedAt": T0}))
    log.processor(
        started("l1"), metadata("l1", "Sourdough starter", "Feeding a starter"),
        text("l1", "Rye flour and water make a lively sourdough starter."),
        event("v1.LinkSummarized", {"linkId": "l1", "summary": "Feed it daily.", "model": "extractive"}),
        event("v1.TagSuggested", {"id": "s1", "linkId": "l1", "tagId": "t-bread", "score": 0.7}),
        completed("l1"),
        started("l2"), metadata("l2", "Train timetables"),
        text("l2", "Sourdough is mentioned once here, next to rail schedules."),
        completed("l2"),
        started("l3"), failed("l3", retryable=False, at=T0, code="http_404"),
        started("l4"),
        metadata("l5", "Deleted sourdough page"),
    )
    database = new_database()
    apply_commits(database, log.commits)
    return database


def test_list_links_newest_first_without_deleted(db):
    page = list_links(db)
    assert [link["id"] for link in page.links] == ["l4", "l3", "l2", "l1"]
    assert page.next_cursor is None
    first = page.links[-1]
    assert first["status"] == "completed"
    assert first["metadata"]["title"] == "Sourdough starter"
    assert first["tags"] == [{"id": "t-bread", "name": "bread"}]
    assert page.links[1]["error"] == {"code": "http_404", "message": "it failed", "retryable": False}


def test_list_links_pages_with_a_cursor(db):
    first = list_links(db, limit=3)
    assert [link["id"] for link in first.links] == ["l4", "l3", "l2"]
    second = list_links(db, limit=3, cursor=first.next_cursor)
    assert [link["id"] for link in second.links] == ["l1"]
    assert second.next_cursor is None


@pytest.mark.parametrize("status, expected", [
    ("completed", ["l2", "l1"]), ("failed", ["l3"]), ("pending", ["l4"]), ("new", []), ("cancelled", [])])
def test_list_links_by_status(db, status, expected):
    assert [link["id"] for link in list_links(db, status=status).links] == expected


def test_list_links_by_tag(db):
    assert [link["id"] for link in list_links(db, tag="t-bread").links] == ["l3", "l1"]
    assert list_links(db, tag="nope").links == []


@pytest.mark.parametrize("bad", [
    {"status": "done"}, {"limit": 0}, {"limit": 201}, {"limit": "5"}, {"cursor": "abc"},
    {"cursor": "-1"}, {"cursor": "9" * 40}, {"tag": 5}])
def test_list_links_refuses_bad_arguments(db, bad):
    with pytest.raises(ValueError):
        list_links(db, **bad)


def test_get_link_has_everything(db):
    link = get_link(db, "l1")
    assert link["text"] == "Rye flour and water make a lively sourdough starter."
    assert (link["word_count"], link["summary"], link["summary_model"]) == (9, "Feed it daily.", "extractive")
    assert link["suggestions"] == [
        {"id": "s1", "tag_id": "t-bread", "tag_name": "bread", "score": 0.7, "status": "suggested", "new": False}]
    assert link["tags"] == [{"id": "t-bread", "name": "bread"}]
    assert link["aliases"] == []


def test_get_link_of_a_deleted_or_unknown_link(db):
    assert get_link(db, "l5")["deleted_at"] == "2026-11-23T20:00:00.000000Z"
    assert get_link(db, "nope") is None
    assert get_link(db, None) is None


def test_search_ranks_title_matches_first_and_leaves_out_deleted(db):
    hits = search(db, "sourdough")
    assert [hit["id"] for hit in hits] == ["l1", "l2"]
    assert hits[0]["title"] == "Sourdough starter"
    assert "[sourdough]" in hits[1]["snippet"].lower()
    assert hits[0]["score"] > hits[1]["score"]


def test_search_needs_every_word(db):
    assert [hit["id"] for hit in search(db, "sourdough rail")] == ["l2"]


ODD_QUERIES = ['"', '""', "'", "sourdough OR", "AND", "NOT sourdough", "NEAR(", "(", ")", "*", "^",
               "sour*", "title:sourdough", "-sourdough", "a:b:c", "\\", "\x00", "🍞", "{title}",
               '"sourdough', "sourdough\"\"", "; DROP TABLE links", "%", "   "]


@pytest.mark.parametrize("query", ODD_QUERIES)
def test_odd_search_input_never_raises(db, query):
    before = dump(db)
    assert isinstance(search(db, query), list)
    assert dump(db) == before


def test_search_words_are_quoted():
    assert fts_query('sour"dough NEAR( x') == '"sour""dough" "NEAR(" "x"'
    assert fts_query("( ) *") is None


@pytest.mark.parametrize("bad", [{"q": None}, {"q": "x" * 1001}, {"q": "x", "limit": 0}, {"q": "x", "limit": 101}])
def test_search_refuses_bad_arguments(db, bad):
    with pytest.raises(ValueError):
        search(db, **bad)


def test_readonly_sql_returns_columns_and_rows(db):
    result = run_readonly_sql(db, "SELECT id, url FROM links WHERE id IN ('l1', 'l2') ORDER BY id")
    assert result.columns == ["id", "url"]
    assert result.rows == [("l1", "https://example.com/1"), ("l2", "https://example.com/2")]
    assert result.truncated is False


def test_readonly_sql_can_use_with_and_full_text_search(db):
    result = run_readonly_sql(
        db, "WITH hits AS (SELECT rowid FROM link_search WHERE link_search MATCH 'rail') "
            "SELECT links.id FROM links JOIN hits ON hits.rowid = links.seq")
    assert result.rows == [("l2",)]


def test_readonly_sql_caps_rows(db):
    result = run_readonly_sql(db, "SELECT id FROM links ORDER BY id", max_rows=2)
    assert result.rows == [("l1",), ("l2",)]
    assert (result.truncated, result.truncated_reason) == (True, "max_rows")


def test_readonly_sql_caps_the_bytes_of_its_rows_as_json(db):
    # Each row is ["l1"] and a comma: 7 bytes of JSON.
    result = run_readonly_sql(db, "SELECT id FROM links ORDER BY id", max_bytes=14)
    assert result.rows == [("l1",), ("l2",)]
    assert (result.truncated, result.truncated_reason) == (True, "max_bytes")
    whole = run_readonly_sql(db, "SELECT id FROM links WHERE id IN ('l1', 'l2') ORDER BY id", max_bytes=14)
    assert (whole.rows, whole.truncated, whole.truncated_reason) == ([("l1",), ("l2",)], False, None)


def test_readonly_sql_gives_blobs_as_base64_objects_and_infinities_as_text(db):
    result = run_readonly_sql(db, "SELECT x'00ff', x'', 1e999, -1e999, 1.5, NULL, 'x'")
    assert result.rows == [({"base64": "AP8="}, {"base64": ""}, "Infinity", "-Infinity", 1.5, None, "x")]


HOSTILE = [
    ("INSERT INTO links (id, url, created_at, created_version) VALUES ('x', 'u', 't', 1)", "not_allowed"),
    ("UPDATE links SET url = 'evil'", "not_allowed"),
    ("DELETE FROM links", "not_allowed"),
    ("DROP TABLE links", "not_allowed"),
    ("ATTACH DATABASE ':memory:' AS other", "not_allowed"),
    ("ATTACH DATABASE '/tmp/linklog-attack.db' AS other", "not_allowed"),
    ("PRAGMA writable_schema = 1", "not_allowed"),
    ("PRAGMA query_only = 0", "not_allowed"),
    ("PRAGMA journal_mode = wal", "not_allowed"),
    ("CREATE TEMP TABLE t (a)", "not_allowed"),
    ("CREATE TABLE t (a)", "not_allowed"),
    ("CREATE TRIGGER tr AFTER INSERT ON links BEGIN DELETE FROM links; END", "not_allowed"),
    ("BEGIN", "not_allowed"),
    ("SAVEPOINT s", "not_allowed"),
    ("VACUUM", "not_allowed"),
    ("REINDEX", "not_allowed"),
    ("ANALYZE", "not_allowed"),
    ("SELECT load_extension('/tmp/evil.so')", "not_allowed"),
    ("INSERT INTO link_search (link_search) VALUES ('delete-all')", "not_allowed"),
    ("WITH x AS (SELECT 1) DELETE FROM links", "not_allowed"),
    ("SELECT 1; DELETE FROM links", "multiple_statements"),
    ("SELECT 1; SELECT 2", "multiple_statements"),
    ("SELECT randomblob(1000000000)", "too_big"),
    ("SELECT zeroblob(20000000)", "too_big"),
    ("SELECT * FROM no_such_table", "invalid_sql"),
    ("SELEKT 1", "invalid_sql"),
    ("", "empty"),
    ("-- only a comment", "empty"),
    ("SELECT '" + "x" * 10_000 + "'", "too_long"),
    (b"SELECT 1", "invalid"),
    ("SELECT 1\x00", "invalid"),
    ("SELECT '\ud800'", "invalid"),
    ("SELECT CAST(x'ff' AS TEXT)", "invalid_text"),
]


@pytest.mark.parametrize("sql, code", HOSTILE)
def test_hostile_sql_is_refused_and_changes_nothing(db, sql, code):
    before = dump(db)
    with pytest.raises(QueryRejected) as refused:
        run_readonly_sql(db, sql)
    assert refused.value.code == code
    assert dump(db) == before
    assert db.execute("PRAGMA query_only").get == 0
    assert db.execute("SELECT count(*) FROM temp.sqlite_master WHERE name = 't'").get == 0


WRITES = [
    "INSERT INTO links (id, url, created_at, created_version) VALUES ('x', 'u', 't', 1)",
    "UPDATE links SET url = 'evil'",
    "DELETE FROM links",
    "WITH x AS (SELECT 1) DELETE FROM links",
    "DROP TABLE links",
    "CREATE TABLE t (a)",
    "INSERT INTO link_search (link_search) VALUES ('delete-all')",
]


@pytest.mark.parametrize("sql", WRITES)
def test_query_only_alone_refuses_writes_the_authorizer_let_through(db, monkeypatch, sql):
    # Two guards keep user SQL read-only, so that one mistake (an action
    # the authorizer allows that it should not) still changes nothing.
    monkeypatch.setattr(queries._Authorizer, "__call__", lambda self, *args: apsw.SQLITE_OK)
    before = dump(db)
    with pytest.raises(QueryRejected) as refused:
        run_readonly_sql(db, sql)
    assert refused.value.code == "invalid_sql"
    assert "readonly" in refused.value.message
    assert dump(db) == before


# Without the time limit this query runs forever: fail in seconds, not
# after the suite's default limit.
@pytest.mark.timeout(30)
def test_a_query_that_never_ends_hits_the_time_limit(db):
    ticks = itertools.count()
    with pytest.raises(QueryRejected) as refused:
        run_readonly_sql(
            db, "WITH RECURSIVE forever(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM forever) "
                "SELECT count(*) FROM forever",
            time_limit_ms=50, clock=lambda: next(ticks) / 1000)
    assert refused.value.code == "time_limit"


def test_the_value_limit_is_lifted_after_a_query(db):
    with pytest.raises(QueryRejected):
        run_readonly_sql(db, "SELECT zeroblob(20000000)")
    assert len(db.execute("SELECT zeroblob(20000000)").get) == 20_000_000


def test_the_database_is_writable_again_after_a_query(db):
    run_readonly_sql(db, "SELECT 1")
    with pytest.raises(QueryRejected):
        run_readonly_sql(db, "DELETE FROM links")
    apply_commits(db, [{"version": 5, "author": {"kind": "client"},
                        "events": [created("l9", "https://example.com/9")]}])
    assert get_link(db, "l9")["id"] == "l9"
