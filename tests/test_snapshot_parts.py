"""Full snapshots in compressed parts (chalicelib.snapshotparts): restored
byte for byte whatever the part boundaries, and a missing, damaged,
replaced or foreign part falls back like a damaged snapshot, never to an
error."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import deltas, fetchers, orgstate, snapshotparts, snapshots
from chalicelib.keys import snapshot_key
from chalicelib.state import SCHEMA_HASH, apply_commits, version
from chalicelib.store.faulty import Fault, FaultyStore
from statelog import ORG, created, dump, event, push, replay, state_at, story

PAGE = 4096


@pytest.fixture
def small_parts(monkeypatch):
    """Parts of two pages: the story's database (36 pages) is 18 parts."""
    monkeypatch.setattr(snapshotparts, "PART_SIZE", 2 * PAGE)


def parts_of(store, upto_version: int) -> list:
    listed = snapshots.list_objects(store, ORG)
    [base] = [b for b in listed.bases if b.key == snapshot_key(ORG, SCHEMA_HASH, upto_version)]
    return listed.parts_of(base)


@pytest.mark.parametrize("part_pages", [1, 3, 35, 36, 1000])
def test_a_snapshot_in_parts_restores_byte_for_byte_at_every_boundary(any_store, monkeypatch, part_pages):
    monkeypatch.setattr(snapshotparts, "PART_SIZE", part_pages * PAGE)
    db = state_at(story().commits)
    data = db.serialize("main")
    assert len(data) == 36 * PAGE  # so 35 and 36 pages end on and just before the end
    snapshots.write_snapshot(any_store, ORG, db)
    assert len(parts_of(any_store, 6)) == -(-36 // part_pages) - 1

    restored = snapshots.restore_latest(any_store, ORG, with_digests=True)

    assert (restored.version, restored.skipped) == (6, [])
    assert restored.db.serialize("main") == data
    # The digests taken part by part are the pages' own.
    assert restored.digests.digests == tuple(deltas.digest_pages(data, PAGE))
    restored.digests.close()


def test_the_size_restored_and_the_requests_count_every_part(local_store, small_parts):
    snapshots.write_snapshot(local_store, ORG, state_at(story().commits))
    before = local_store.counts()
    restored = snapshots.restore_latest(local_store, ORG)
    after = local_store.counts()
    # One listing, the snapshot object, and its 17 other parts.
    assert (after["list"] - before["list"], after["get"] - before["get"]) == (1, 18)
    stored = local_store.head(restored.key).size + sum(p.size for p in parts_of(local_store, 6))
    assert restored.size == restored.chain.base_size == stored


def older_and_newest(store) -> tuple[str, list]:
    """Snapshots at versions 2 and 4 over the story's log; the newest's key and parts."""
    commits = story().commits
    push(store, commits)
    snapshots.write_snapshot(store, ORG, state_at(commits[:2]))
    newest = snapshots.write_snapshot(store, ORG, state_at(commits[:4]))
    return newest, parts_of(store, 4)


def falls_back_to_the_older(store, newest: str, reason: str) -> None:
    state = orgstate.open_state(store, ORG)
    assert state.snapshot_version == 2
    [(skipped, why)] = state.skipped_snapshots
    assert skipped == newest and reason in why, why
    assert dump(state.db) == dump(replay(store))


def test_a_missing_part_falls_back_to_the_older_snapshot(any_store, small_parts):
    newest, parts = older_and_newest(any_store)
    any_store.delete(parts[5].key)
    falls_back_to_the_older(any_store, newest, "NotFound")


def test_a_damaged_part_falls_back_to_the_older_snapshot(any_store, small_parts):
    newest, parts = older_and_newest(any_store)
    body = bytearray(any_store.get(parts[-1].key).body)
    body[len(body) // 2] ^= 0x01
    any_store.put(parts[-1].key, bytes(body))
    falls_back_to_the_older(any_store, newest, "part 17: checksum mismatch")


def test_a_part_replaced_by_another_falls_back_to_the_older_snapshot(local_store, small_parts):
    newest, parts = older_and_newest(local_store)
    local_store.put(parts[3].key, local_store.get(parts[4].key).body)
    falls_back_to_the_older(local_store, newest, "part 4:")


@pytest.mark.parametrize("moved", [1, 17])
def test_parts_under_another_writers_id_are_not_used(local_store, small_parts, moved):
    newest, parts = older_and_newest(local_store)
    # The same bytes under another writer's id, the snapshot's own gone:
    # parts the snapshot object does not name, whether they are all the
    # parts listed (fetched before the manifest came) or only some.
    for info in parts[:moved]:
        foreign = info.key.replace(info.key.split("/")[-2], "0123456789abcdef")
        local_store.put(foreign, local_store.get(info.key).body)
        local_store.delete(info.key)
    reason = "is not a part the snapshot object names" if moved == 17 else "NotFound"
    falls_back_to_the_older(local_store, newest, reason)


def test_parts_a_dead_writer_left_beside_the_snapshot_are_skipped(local_store, small_parts):
    newest, parts = older_and_newest(local_store)
    for info in parts:
        local_store.put(info.key.replace(info.key.split("/")[-2], "0123456789abcdef"), b"junk")
    restored = snapshots.restore_latest(local_store, ORG)
    assert (restored.version, restored.skipped) == (4, [])


def test_a_failed_part_put_stores_no_snapshot_and_leaves_no_part(local_store, small_parts):
    db = state_at(story().commits)
    failing = FaultyStore(local_store, plan=lambda kind, key, n: (
        Fault.TRANSIENT if kind == "put" and "/00007." in key else None))
    assert snapshots.write_snapshot(failing, ORG, db) is None
    listed = snapshots.list_objects(local_store, ORG)
    assert (listed.bases, listed.orphans) == ([], [])
    assert snapshots.restore_latest(local_store, ORG).key is None


@pytest.mark.parametrize("fault", [Fault.TRANSIENT, Fault.LOST_RESPONSE, Fault.CONFLICT])
def test_a_part_put_that_fails_once_is_tried_again(local_store, small_parts, fault):
    # One failed put among 18 parts would otherwise lose the whole snapshot.
    seen: set[str] = set()

    def once(kind, key, n):
        if kind == "put" and ".parts/" in key and key not in seen:
            seen.add(key)
            return fault
        return None

    db = state_at(story().commits)
    assert snapshots.write_snapshot(FaultyStore(local_store, plan=once), ORG, db) is not None
    assert len(seen) == 17  # every part's first put failed
    restored = snapshots.restore_latest(local_store, ORG)
    assert (restored.version, restored.skipped) == (6, [])
    assert restored.db.serialize("main") == db.serialize("main")


def test_a_snapshot_object_put_whose_answer_was_lost_keeps_its_parts(local_store, small_parts):
    # Every first put of a key lands and loses its answer. A part's retried
    # put then finds its own part (the key is this writer's alone); the
    # object's key is any writer's, so a 412 on a retry of it could not
    # tell ours from another's, and deleting "our" parts then would break a
    # snapshot that landed: the object's put is not retried, its parts stay.
    seen: set[str] = set()

    def once(kind, key, n):
        if kind == "put" and key not in seen:
            seen.add(key)
            return Fault.LOST_RESPONSE
        return None

    db = state_at(story().commits)
    lost = FaultyStore(local_store, plan=once)
    assert snapshots.write_snapshot(lost, ORG, db) is None
    assert len(parts_of(local_store, 6)) == 17
    restored = snapshots.restore_latest(local_store, ORG)
    assert (restored.version, restored.skipped) == (6, [])
    assert restored.db.serialize("main") == db.serialize("main")


def test_a_snapshot_of_format_1_still_restores_with_its_digests(local_store):
    db = state_at(story().commits)
    key = snapshot_key(ORG, SCHEMA_HASH, 6)
    local_store.put(key, snapshots.encode(db))
    restored = snapshots.restore_latest(local_store, ORG, with_digests=True)
    assert (restored.key, restored.version, restored.skipped) == (key, 6, [])
    assert restored.db.serialize("main") == db.serialize("main")
    assert restored.digests.digests == tuple(deltas.digest_pages(db.serialize("main"), PAGE))
    restored.digests.close()


def test_prune_deletes_every_part_and_the_parts_no_snapshot_names(local_store, small_parts):
    commits = story().commits
    for upto in range(1, 6):
        snapshots.write_snapshot(local_store, ORG, state_at(commits[:upto]))
    # What a writer killed before its snapshot object leaves, at version 1.
    orphan = parts_of(local_store, 1)[0].key.replace("00000000000000000001.parts",
                                                     "00000000000000000000.parts")
    local_store.put(orphan, b"left by a dead writer")
    deleted = snapshots.prune(local_store, ORG, keep=3)
    assert orphan in deleted
    listed = snapshots.list_objects(local_store, ORG)
    assert [version(snapshots.restore_latest(local_store, ORG).db)] == [5]
    assert sorted(listed.parts) == [3, 4, 5] and listed.orphans == []


def a_base_with_a_chain(store) -> list[dict]:
    """The story and four commits more, pushed; a full snapshot at version 6
    and a delta for each commit after it. Returns the commits."""
    log = story()
    for n in range(4):
        # Notes that change pages, and links that add pages past the base's end.
        log.client(event("v1.LinkNoteUpdated", {"id": "l1", "note": f"rye {n} " * 50}),
                   *[created(f"g{n}-{k}", f"https://example.com/{n}/{k}/{'rye-' * 40}")
                     for k in range(60)])
    commits = log.commits
    push(store, commits)
    snapshots.write_snapshot(store, ORG, state_at(commits[:6]))
    for upto in range(7, len(commits) + 1):
        restored = snapshots.restore_latest(store, ORG, with_digests=True)
        apply_commits(restored.db, commits[restored.version:upto])
        written = snapshots.write_next(store, ORG, restored.db, restored.chain, restored.digests,
                                       snapshots.list_objects(store, ORG), max_fraction=1000.0)
        restored.digests.close()
        assert written.kind == "delta"
    return commits


def test_digests_after_a_chain_are_the_restored_pages_own(local_store, small_parts):
    commits = a_base_with_a_chain(local_store)
    restored = snapshots.restore_latest(local_store, ORG, with_digests=True)
    assert len(restored.chain.deltas) == len(commits) - 6
    data = restored.db.serialize("main")
    assert restored.digests.digests == tuple(deltas.digest_pages(data, PAGE))
    restored.digests.close()


@pytest.mark.timeout(60)
def test_restores_at_once_of_more_parts_than_the_pool_has_threads_all_finish(local_store, small_parts):
    # Each part job holds a thread of the one fetchers pool while it waits
    # for its base's manifest (why that cannot deadlock: snapshots._part_job).
    # Here every restore has more parts than the pool has threads, and there
    # are more restores at once than threads, each with its deltas.
    commits = a_base_with_a_chain(local_store)
    assert len(parts_of(local_store, 6)) > fetchers.FETCHERS
    with ThreadPoolExecutor(max_workers=2 * fetchers.FETCHERS) as restoring:
        restores = list(restoring.map(lambda _: snapshots.restore_latest(local_store, ORG),
                                      range(2 * fetchers.FETCHERS)))
    wanted = dump(state_at(commits))
    for restored in restores:
        assert (restored.version, restored.skipped) == (len(commits), [])
        assert len(restored.chain.deltas) == len(commits) - 6
        assert dump(restored.db) == wanted
