import pytest

from chalicelib import orgstate, snapshots
from chalicelib.keys import log_key
from chalicelib.log import CorruptLog, damaged_commit
from chalicelib.state import version
from statelog import ORG, dump, push, replay, state_at, story


def test_load_and_catch_up_reach_the_head_of_the_log(any_store):
    commits = story().commits
    push(any_store, commits[:4])
    snapshots.write_snapshot(any_store, ORG, orgstate.load(any_store, ORG))
    push(any_store, commits[4:5])
    db = orgstate.load(any_store, ORG)
    assert version(db) == 5
    push(any_store, commits[5:])
    assert orgstate.catch_up(any_store, ORG, db) == 1
    assert orgstate.catch_up(any_store, ORG, db) == 0
    assert dump(db) == dump(replay(any_store))


def test_open_state_reports_where_it_came_from_and_what_it_cost(local_store):
    commits = story().commits
    push(local_store, commits[:3])
    key = snapshots.write_snapshot(local_store, ORG, orgstate.load(local_store, ORG))
    push(local_store, commits[3:])
    state = orgstate.open_state(local_store, ORG)
    assert (state.snapshot_key, state.snapshot_version, state.version, state.commits_applied) == (key, 3, 6, 3)
    assert state.snapshot_size == len(local_store.get(key).body)
    assert sorted(state.timings) == ["apply", "deserialize", "read_log", "snapshot_get"]
    assert [(s.version_before, s.version_after) for s in state.stats] == [(3, 6)]


def a_state_at_two_of_the_story(store) -> tuple[list[dict], object]:
    """The whole story in the log, and a state loaded after its first two commits."""
    commits = story().commits
    push(store, commits[:2])
    db = orgstate.load(store, ORG)
    push(store, commits[2:])
    return commits, db


def test_a_damaged_commit_costs_its_own_events_and_the_load_goes_on(local_store):
    commits, db = a_state_at_two_of_the_story(local_store)
    local_store.put(log_key(ORG, 4), b"{not json")

    state = orgstate.open_state(local_store, ORG)
    assert orgstate.catch_up(local_store, ORG, db) == len(commits) - 2
    assert state.version == version(db) == len(commits)
    # Equal to a replay of the log without the damaged commit's events.
    without = [c if c["version"] != 4 else damaged_commit(ORG, 4, "lost") for c in commits]
    assert dump(db) == dump(state.db) == dump(state_at(without))


def test_a_gap_in_the_log_still_stops_the_load_and_keeps_what_was_applied(local_store):
    _, db = a_state_at_two_of_the_story(local_store)
    local_store.delete(log_key(ORG, 4))
    with pytest.raises(CorruptLog):
        orgstate.open_state(local_store, ORG)
    with pytest.raises(CorruptLog):
        orgstate.catch_up(local_store, ORG, db)
    assert version(db) == 2
