import errno
import os
import re
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import apsw
import pytest

from chalicelib import compression, orgstate, scratch, snapshotparts, snapshots
from chalicelib.keys import snapshot_key, snapshot_prefix
from chalicelib.state import SCHEMA_HASH, apply_commits, new_database, version
from chalicelib.store import LocalStore
from chalicelib.store.faulty import Fault, FaultyStore
from statelog import ORG, dump, push, replay, state_at, story


def snapshot_keys(store, schema=SCHEMA_HASH):
    return [info.key for info in store.list(snapshot_prefix(ORG, schema))]


def test_a_snapshot_restores_to_the_same_state(any_store):
    commits = story().commits
    push(any_store, commits)
    db = state_at(commits)
    key = snapshots.write_snapshot(any_store, ORG, db)
    assert key == f"orgs/acme/snapshots/{SCHEMA_HASH}/00000000000000000006.sqlite"
    restored = snapshots.restore_latest(any_store, ORG)
    assert (restored.key, restored.version, restored.skipped) == (key, 6, [])
    assert restored.size == len(any_store.get(key).body)
    assert dump(restored.db) == dump(replay(any_store))


@pytest.mark.parametrize("codec, named", [("zstd", ""), ("none", " codec=none")])
def test_the_body_starts_with_a_header_naming_schema_version_size_parts_and_checksum(
        tmp_path, codec, named):
    store = LocalStore(str(tmp_path), snapshot_codec=codec)
    db = state_at(story().commits)
    data = db.serialize("main")
    key = snapshots.write_snapshot(store, ORG, db)
    body = store.get(key).body
    header, manifest, part = body.split(b"\n", 2)
    manifest_crc = zlib.crc32(manifest + b"\n")
    # zstd, as every snapshot before codecs, goes unnamed.
    assert re.fullmatch(
        f"linklog-snapshot 2 schema={SCHEMA_HASH} version=6 size={len(data)} page_size=4096 "
        f"part_size={8 << 20} parts=1 writer=[0-9a-f]{{16}}{named} crc32={manifest_crc:08x}",
        header.decode())
    assert manifest == f"{len(part)} {zlib.crc32(part):08x}".encode()
    assert compression.decompress(part, len(data), codec) == data
    assert (part == data) == (codec == "none")


def test_an_empty_database_is_not_stored(local_store):
    assert snapshots.write_snapshot(local_store, ORG, new_database()) is None
    assert snapshot_keys(local_store) == []


def test_a_snapshot_is_never_overwritten(local_store):
    commits = story().commits
    key = snapshots.write_snapshot(local_store, ORG, state_at(commits))
    etag = local_store.head(key).etag
    assert snapshots.write_snapshot(local_store, ORG, state_at(commits)) == key
    assert local_store.head(key).etag == etag


def test_a_wal_database_is_snapshotted_in_rollback_mode(tmp_path, local_store):
    db = apsw.Connection(str(tmp_path / "state.sqlite"))
    db.execute("PRAGMA journal_mode = WAL")
    source = new_database()
    apply_commits(source, story().commits)
    with db.backup("main", source, "main") as backup:
        backup.step()
    assert db.execute("PRAGMA journal_mode").get == "wal"
    key = snapshots.write_snapshot(local_store, ORG, db)
    restored = snapshots.restore_latest(local_store, ORG)
    assert restored.key == key
    assert dump(restored.db) == dump(source)


def snapshot_at(store, commits, upto: int) -> str:
    return snapshots.write_snapshot(store, ORG, state_at(commits[:upto]))


def test_a_corrupt_newest_snapshot_falls_back_to_the_previous_one(any_store):
    commits = story().commits
    push(any_store, commits)
    snapshot_at(any_store, commits, 2)
    newest = snapshot_at(any_store, commits, 4)
    body = bytearray(any_store.get(newest).body)
    body[-100] ^= 0xFF
    any_store.delete(newest)
    any_store.put(newest, bytes(body))
    state = orgstate.open_state(any_store, ORG)
    assert state.snapshot_key == snapshot_key(ORG, SCHEMA_HASH, 2)
    assert state.skipped_snapshots == [(newest, "UnusableParts: part 0: checksum mismatch")]
    assert (state.version, state.commits_applied) == (6, 4)
    assert dump(state.db) == dump(replay(any_store))


def framed(data: bytes, at_version: int = 4, schema: str = SCHEMA_HASH) -> bytes:
    """A format-1 snapshot body, as deployments before parts wrote it."""
    return (f"linklog-snapshot 1 schema={schema} version={at_version} size={len(data)} "
            f"crc32={zlib.crc32(data):08x}\n").encode() + data


def other_schema_database(commits) -> bytes:
    db = state_at(commits)
    db.execute("UPDATE meta SET schema_hash = 'feedfacefeedface'")
    return db.serialize("main")


@pytest.mark.parametrize("damage, reason", [
    (lambda good, commits: b"", "UnusableSnapshot: no snapshot header"),
    (lambda good, commits: b"garbage\n" + good, "UnusableSnapshot: malformed snapshot header"),
    (lambda good, commits: good[:-10], "bytes where the manifest says"),
    (lambda good, commits: good + b"trailing", "bytes where the manifest says"),
    (lambda good, commits: good.replace(b" parts=1 ", b" parts=2 ", 1), "2 parts of 8388608 bytes"),
    (lambda good, commits: good.replace(b"\n", b"\n1", 2), "manifest checksum mismatch"),
    # Snapshots of format 1, as written before parts, are read and checked too.
    (lambda good, commits: framed(state_at(commits[:4]).serialize("main"))[:-10],
     "bytes where the header says"),
    (lambda good, commits: framed(state_at(commits[:4]).serialize("main")) + b"x",
     "UnusableSnapshot: more than the"),
    (lambda good, commits: framed(b"not a database at all" * 100, 4),
     "UnusableSnapshot: SQLite cannot open it: file is not a database"),
    (lambda good, commits: framed(state_at(commits[:3]).serialize("main"), 4),
     f"UnusableSnapshot: database holds schema {SCHEMA_HASH} at version 3"),
    (lambda good, commits: framed(other_schema_database(commits[:4]), 4),
     "UnusableSnapshot: database holds schema feedfacefeedface at version 4"),
    (lambda good, commits: framed(state_at(commits[:4]).serialize("main"), 5),
     "UnusableSnapshot: header names version 5"),
    (lambda good, commits: framed(state_at(commits[:4]).serialize("main"), 4, "0123456789abcdef"),
     "UnusableSnapshot: header names schema 0123456789abcdef"),
])
def test_every_kind_of_damage_is_detected_and_recovered_from(local_store, damage, reason):
    commits = story().commits
    push(local_store, commits)
    snapshot_at(local_store, commits, 2)
    newest = snapshot_at(local_store, commits, 4)
    bad = damage(local_store.get(newest).body, commits)
    local_store.delete(newest)
    local_store.put(newest, bad)
    state = orgstate.open_state(local_store, ORG)
    assert state.snapshot_key == snapshot_key(ORG, SCHEMA_HASH, 2)
    [(skipped_key, skipped_reason)] = state.skipped_snapshots
    assert skipped_key == newest
    assert reason in skipped_reason
    assert dump(state.db) == dump(replay(local_store))


def test_a_snapshot_deleted_between_listing_and_reading_is_recovered_from(any_store):
    commits = story().commits
    push(any_store, commits)
    snapshot_at(any_store, commits, 3)
    newest = snapshot_at(any_store, commits, 5)

    def prune_it_first(kind, key, n):
        if kind == "get" and key == newest:
            any_store.delete(key)

    state = orgstate.open_state(FaultyStore(any_store, plan=prune_it_first), ORG)
    assert state.snapshot_version == 3
    [(skipped, reason)] = state.skipped_snapshots
    assert (skipped, reason.split(":")[0]) == (newest, "NotFound")
    assert dump(state.db) == dump(replay(any_store))


def test_no_snapshot_at_all_means_a_full_replay(any_store):
    push(any_store, story().commits)
    state = orgstate.open_state(any_store, ORG)
    assert (state.snapshot_key, state.skipped_snapshots, state.commits_applied) == (None, [], 6)
    assert dump(state.db) == dump(replay(any_store))


def test_snapshots_of_another_schema_are_invisible(any_store):
    commits = story().commits
    push(any_store, commits)
    snapshot_at(any_store, commits, 2)
    foreign = snapshot_key(ORG, "0123456789abcdef", 5)
    any_store.put(foreign, framed(state_at(commits[:5]).serialize("main"), 5, "0123456789abcdef"))
    state = orgstate.open_state(any_store, ORG)
    assert state.snapshot_version == 2
    assert state.skipped_snapshots == []
    assert dump(state.db) == dump(replay(any_store))


def test_only_the_newest_three_are_tried(local_store):
    commits = story().commits
    push(local_store, commits)
    for upto in range(1, 6):
        key = snapshot_at(local_store, commits, upto)
        if upto >= 3:
            local_store.delete(key)
            local_store.put(key, b"broken")
    restored = snapshots.restore_latest(local_store, ORG)
    assert restored.key is None
    assert [key for key, _ in restored.skipped] == [
        snapshot_key(ORG, SCHEMA_HASH, v) for v in (5, 4, 3)]
    assert version(restored.db) == 0


def failing(*kinds, fault=Fault.TRANSIENT):
    """A plan failing every request of ``kinds``."""
    return lambda kind, key, n: fault if kind in kinds else None


def test_a_failed_listing_gives_an_empty_database_not_an_error(local_store):
    snapshot_at(local_store, story().commits, 3)
    restored = snapshots.restore_latest(FaultyStore(local_store, plan=failing("list")), ORG)
    assert (restored.key, restored.version) == (None, 0)
    [(prefix, reason)] = restored.skipped
    assert prefix == f"orgs/acme/snapshots/{SCHEMA_HASH}/"
    assert reason.startswith("listing failed: Transient")


def test_a_failed_read_of_the_newest_falls_back_to_the_previous(any_store):
    commits = story().commits
    snapshot_at(any_store, commits, 2)
    newest = snapshot_at(any_store, commits, 4)
    plan = lambda kind, key, n: Fault.TRANSIENT if (kind, key) == ("get", newest) else None
    restored = snapshots.restore_latest(FaultyStore(any_store, plan=plan), ORG)
    assert restored.version == 2
    assert [key for key, _ in restored.skipped] == [newest]


def test_a_failed_write_returns_none_not_an_error(local_store):
    db = state_at(story().commits)
    assert snapshots.write_snapshot(FaultyStore(local_store, plan=failing("put")), ORG, db) is None
    assert snapshot_keys(local_store) == []


def test_a_write_whose_answer_was_lost_leaves_a_usable_snapshot(local_store):
    db = state_at(story().commits)
    store = FaultyStore(local_store, plan=failing("put", fault=Fault.LOST_RESPONSE))
    assert snapshots.write_snapshot(store, ORG, db) is None
    assert snapshots.restore_latest(local_store, ORG).version == 6


def test_writers_racing_on_one_version_all_get_the_one_snapshot(any_store, monkeypatch):
    # Small parts, so that every writer puts parts of its own.
    monkeypatch.setattr(snapshotparts, "PART_SIZE", 4 * 4096)
    db = state_at(story().commits)
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = list(pool.map(lambda _: snapshots.write_snapshot(any_store, ORG, db), range(8)))
    assert keys == [snapshot_key(ORG, SCHEMA_HASH, 6)] * 8
    restored = snapshots.restore_latest(any_store, ORG)
    assert (restored.key, restored.skipped) == (keys[0], [])
    assert dump(restored.db) == dump(db)
    # The losers deleted their parts: only the winner's are left.
    listed = snapshots.list_objects(any_store, ORG)
    assert len({info.key.split("/")[-2] for info in listed.parts_of(listed.bases[0])}) == 1


def test_prune_keeps_the_newest_three_of_this_schema(any_store):
    commits = story().commits
    for upto in range(1, 7):
        snapshot_at(any_store, commits, upto)
    foreign = snapshot_key(ORG, "0123456789abcdef", 1)
    any_store.put(foreign, b"old deployment")
    deleted = snapshots.prune(any_store, ORG, keep=3)
    assert deleted == [snapshot_key(ORG, SCHEMA_HASH, v) for v in (1, 2, 3)]
    assert snapshot_keys(any_store) == [snapshot_key(ORG, SCHEMA_HASH, v) for v in (4, 5, 6)]
    assert snapshot_keys(any_store, "0123456789abcdef") == [foreign]
    assert snapshots.prune(any_store, ORG, keep=3) == []


def test_prune_refuses_to_keep_nothing(local_store):
    with pytest.raises(ValueError):
        snapshots.prune(local_store, ORG, keep=0)


def test_prune_failures_are_logged_not_raised(local_store):
    commits = story().commits
    for upto in range(1, 5):
        snapshot_at(local_store, commits, upto)
    assert snapshots.prune(FaultyStore(local_store, plan=failing("delete")), ORG, keep=1) == []
    assert len(snapshot_keys(local_store)) == 4


def test_newest_version_skips_objects_that_are_not_snapshots(local_store):
    assert snapshots.newest_version(local_store, ORG) == 0
    commits = story().commits
    snapshot_at(local_store, commits, 2)
    snapshot_at(local_store, commits, 4)
    local_store.put(snapshot_prefix(ORG, SCHEMA_HASH) + "notes.txt", b"hi")
    assert snapshots.newest_version(local_store, ORG) == 4


@pytest.fixture
def scratch_dir(tmp_path, monkeypatch):
    """Where scratch copies go, empty, so a test can see what is left in it."""
    directory = tmp_path / "scratch"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


def test_a_restored_database_leaves_no_file_behind_and_stays_writable(any_store, scratch_dir):
    commits = story().commits
    push(any_store, commits)
    snapshot_at(any_store, commits, 3)

    state = orgstate.open_state(any_store, ORG)

    # The scratch copy was unlinked as soon as SQLite had it open; the
    # commits after the snapshot were still applied to it.
    assert list(scratch_dir.iterdir()) == []
    assert (state.snapshot_version, state.commits_applied) == (3, 3)
    assert dump(state.db) == dump(replay(any_store))


def test_unusable_and_cut_off_snapshots_leave_no_file_behind(local_store, scratch_dir):
    commits = story().commits
    push(local_store, commits)
    snapshot_at(local_store, commits, 2)
    cut_off = snapshot_at(local_store, commits, 3)
    broken = snapshot_at(local_store, commits, 4)
    local_store.put(broken, b"broken")
    plan = lambda kind, key, n: Fault.TRANSIENT if key == cut_off else None

    state = orgstate.open_state(FaultyStore(local_store, plan=plan), ORG)

    assert [key for key, _ in state.skipped_snapshots] == [broken, cut_off]
    assert state.snapshot_version == 2
    assert list(scratch_dir.iterdir()) == []


class InTinyPieces:
    """A store whose downloads arrive 7 bytes at a time, headers split and all."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def download(self, key, into):
        body = self.inner.get(key).body
        for at in range(0, len(body), 7):
            into.write(memoryview(body)[at:at + 7])
        return self.inner.head(key)


def test_a_snapshot_arriving_in_tiny_pieces_restores_the_same(local_store):
    commits = story().commits
    key = snapshot_at(local_store, commits, 6)

    restored = snapshots.restore_latest(InTinyPieces(local_store), ORG)

    assert (restored.key, restored.skipped) == (key, [])
    assert dump(restored.db) == dump(state_at(commits))


def test_no_room_for_the_scratch_copy_means_a_replay_not_an_error(local_store, scratch_dir, monkeypatch):
    commits = story().commits
    push(local_store, commits)
    snapshot_at(local_store, commits, 4)
    paths = []

    class Full:
        def __init__(self, file):
            self.file = file

        def write(self, piece):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def fileno(self):
            return self.file.fileno()

        def close(self):
            self.file.close()

    def no_room(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    # Parts are written at their offsets, not through write().
    monkeypatch.setattr(os, "pwrite", no_room)

    def full_scratch_file(directory=None):
        file, path = new_scratch_file(directory)
        paths.append(path)
        return Full(file), path

    new_scratch_file = scratch.new_scratch_file
    monkeypatch.setattr(scratch, "new_scratch_file", full_scratch_file)

    state = orgstate.open_state(local_store, ORG)

    [(skipped, reason)] = state.skipped_snapshots
    assert reason == "OSError: [Errno 28] No space left on device"
    assert (state.snapshot_key, state.commits_applied) == (None, 6)
    assert dump(state.db) == dump(replay(local_store))
    assert len(paths) == 1 and list(scratch_dir.iterdir()) == []
