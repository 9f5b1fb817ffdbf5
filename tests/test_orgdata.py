from datetime import datetime, timezone

from bench.orgdata import make_org_log
from chalicelib.state import apply_commits, links_needing_work, new_database
from chalicelib.state.queries import get_link, search


def test_the_bench_org_applies_without_a_skipped_event():
    commits = make_org_log(45, text_bytes=300, seed=3)
    assert [c["version"] for c in commits] == list(range(1, 11))
    db = new_database()
    stats = apply_commits(db, commits)
    assert (stats.skipped_events, stats.unknown_events, stats.duplicate_events, stats.fenced_commits) == (0, 0, 0, 0)
    assert stats.events_applied == sum(len(c["events"]) for c in commits)
    assert db.execute("SELECT status, count(*) FROM link_status GROUP BY status").fetchall() == [("completed", 45)]
    assert links_needing_work(db, datetime(2030, 1, 1, tzinfo=timezone.utc)) == []
    link = get_link(db, "link-0000044")
    assert len(link["text"]) == 300
    assert link["summary"] and link["metadata"]["title"]
    word = link["text"].split()[3].strip(".")
    assert "link-0000044" in [hit["id"] for hit in search(db, word, limit=100)]


def test_the_bench_org_is_the_same_for_a_seed_and_differs_between_seeds():
    assert make_org_log(20, text_bytes=200, seed=1) == make_org_log(20, text_bytes=200, seed=1)
    assert make_org_log(20, text_bytes=200, seed=1) != make_org_log(20, text_bytes=200, seed=2)
