"""Snapshot parts stored with the store's codec (chalicelib.compression):
uncompressed on a local disk, zstd over S3, and every object readable by
every store whichever codec wrote it."""

import re

import pytest

from chalicelib import compression, snapshotparts, snapshots
from chalicelib.cyclelog import MeteredStore
from chalicelib.keys import snapshot_key
from chalicelib.state import SCHEMA_HASH
from chalicelib.store import CountingStore, LocalStore
from chalicelib.store.faulty import FaultyStore
from statelog import ORG, dump, push, replay, state_at, story

PAGE = 4096


@pytest.fixture(autouse=True)
def small_parts(monkeypatch):
    """Parts of two pages: the story's database (36 pages) is 18 parts."""
    monkeypatch.setattr(snapshotparts, "PART_SIZE", 2 * PAGE)


def written_codec(store) -> tuple[str, set[str]]:
    """The codec the newest snapshot's header names, and its parts' extensions."""
    listed = snapshots.list_objects(store, ORG)
    base = listed.bases[-1]
    manifest, _ = snapshotparts.decode(store.get(base.key).body, 6)
    return manifest.codec, {info.key.rsplit(".", 1)[1] for info in listed.parts_of(base)}


def test_the_local_store_keeps_parts_uncompressed_and_s3_compresses_them(local_store, moto_store):
    for store in (local_store, moto_store):
        snapshots.write_snapshot(store, ORG, state_at(story().commits))
    assert written_codec(local_store) == ("none", {"raw"})
    assert written_codec(moto_store) == ("zstd", {"zst"})


def test_wrappers_pass_the_codec_on(tmp_path):
    for codec in compression.EXTENSIONS:
        inner = LocalStore(str(tmp_path), snapshot_codec=codec)
        for wrapped in (CountingStore(inner), MeteredStore(inner), FaultyStore(CountingStore(inner))):
            assert compression.codec_of(wrapped) == codec


def test_a_store_that_does_not_say_gets_zstd(tmp_path):
    class Bare:
        """A store wrapper that passes on only the requests."""

        def __init__(self, inner):
            self.get, self.put, self.list, self.download = inner.get, inner.put, inner.list, inner.download

    store = Bare(LocalStore(str(tmp_path)))
    snapshots.write_snapshot(store, ORG, state_at(story().commits))
    assert written_codec(store) == ("zstd", {"zst"})


def test_an_unknown_codec_is_refused(tmp_path):
    with pytest.raises(ValueError, match="snapshot_codec"):
        LocalStore(str(tmp_path), snapshot_codec="lz4")


@pytest.mark.parametrize("written_with", ["none", "zstd"])
@pytest.mark.parametrize("read_with", ["local-none", "local-zstd", "server"])
def test_either_codec_restores_through_any_store(server_store, tmp_path, written_with, read_with):
    # The same bucket or directory, written by a store of one codec, read
    # by a store that would write the other (or by S3).
    commits = story().commits
    if read_with == "server":
        reader = server_store
        writer = CountingStore(server_store.inner)
        writer.inner.snapshot_codec = written_with  # this S3Store only
    else:
        reader = LocalStore(str(tmp_path), snapshot_codec=read_with.split("-")[1])
        writer = LocalStore(str(tmp_path), snapshot_codec=written_with)
    push(writer, commits)
    snapshots.write_snapshot(writer, ORG, state_at(commits))
    assert written_codec(reader) == (written_with, {compression.EXTENSIONS[written_with]})

    restored = snapshots.restore_latest(reader, ORG, with_digests=True)

    assert (restored.version, restored.skipped) == (6, [])
    assert dump(restored.db) == dump(replay(reader))
    restored.digests.close()


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_a_header_naming_an_unknown_codec_falls_back(tmp_path, codec):
    store = LocalStore(str(tmp_path), snapshot_codec=codec)
    commits = story().commits
    push(store, commits)
    snapshots.write_snapshot(store, ORG, state_at(commits))
    key = snapshot_key(ORG, SCHEMA_HASH, 6)
    body = store.get(key).body
    header, rest = body.split(b"\n", 1)
    damaged = re.sub(rb" (codec=none )?crc32=", b" codec=lz4 crc32=", header)
    assert damaged != header
    store.put(key, damaged + b"\n" + rest)

    restored = snapshots.restore_latest(store, ORG)

    assert restored.key is None
    assert "unknown codec lz4" in restored.skipped[0][1]


def test_a_part_stored_raw_where_the_manifest_says_zstd_falls_back(tmp_path):
    # The codec is the manifest's, not the key's: bytes of the other codec
    # under a part's key fail its checksum.
    store = LocalStore(str(tmp_path), snapshot_codec="zstd")
    commits = story().commits
    push(store, commits)
    db = state_at(commits)
    snapshots.write_snapshot(store, ORG, db)
    part = snapshots.list_objects(store, ORG).parts[6][0]
    offset = int(part.key.rsplit("/", 1)[1].split(".")[0]) * 2 * PAGE
    store.put(part.key, db.serialize("main")[offset : offset + 2 * PAGE])

    restored = snapshots.restore_latest(store, ORG)

    assert restored.key is None
    assert "checksum mismatch" in restored.skipped[0][1] or "bytes where" in restored.skipped[0][1]
