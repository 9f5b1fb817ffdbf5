"""Incremental snapshots: deltas on a full snapshot, restored through the
longest valid chain, compacted, pruned with their base."""

import json
import zlib
from pathlib import Path

import pytest

from chalicelib import compression, deltas, orgstate, snapshots, triggers
from chalicelib.keys import delta_key, snapshot_key, snapshot_prefix
from chalicelib.state import SCHEMA_HASH, apply_commits
from chalicelib.store.faulty import Fault, FaultyStore
from chalicelib.cycle import run_cycle
from clocks import T0
from chalicelib.store import CountingStore, LocalStore
from processes import kill_child_at
from processing_org import FakeProcessor, save_links
from statelog import ORG, created, dump, event, push, replay, state_at, story


def long_story(extra: int = 6) -> list[dict]:
    """story() and then ``extra`` more client commits, one link each."""
    log = story()
    for n in range(extra):
        log.client(created(f"x{n}", f"https://example.com/x/{n}"),
                   event("v1.LinkNoteUpdated", {"id": f"x{n}", "note": f"rye {n}"}))
    return log.commits


def advance(store, commits, upto, **bounds) -> snapshots.Written | None:
    """What a cycle does: restore (with digests), apply up to ``upto``, write the next snapshot."""
    restored = snapshots.restore_latest(store, ORG, with_digests=True)
    apply_commits(restored.db, commits[restored.version:upto])
    listed = snapshots.list_objects(store, ORG)
    try:
        return snapshots.write_next(store, ORG, restored.db, restored.chain, restored.digests,
                                    listed, **bounds)
    finally:
        if restored.digests is not None:
            restored.digests.close()


def no_bound(store, commits, upto) -> snapshots.Written | None:
    return advance(store, commits, upto, max_chain=1000, max_fraction=1000.0)


@pytest.mark.parametrize("codec, delta_format", [("none", 1), ("zstd", 2)])
def test_a_cycle_on_a_restored_chain_writes_a_delta_of_the_pages_it_changed(tmp_path, codec, delta_format):
    # The delta's format follows the store's codec: records as they are
    # (format 1) where parts are stored uncompressed, zstd (format 2) else.
    local_store = CountingStore(LocalStore(str(tmp_path), snapshot_codec=codec))
    commits = long_story()
    push(local_store, commits)
    first = no_bound(local_store, commits, 6)
    assert first.kind == "full" and first.key == snapshot_key(ORG, SCHEMA_HASH, 6)
    second = no_bound(local_store, commits, 8)
    assert second.kind == "delta"
    assert second.key == delta_key(ORG, SCHEMA_HASH, 6, 8)
    assert second.chain_length == 1
    base_bytes = local_store.head(first.key).size
    assert second.delta_bytes == local_store.head(second.key).size < base_bytes
    header = local_store.get(second.key).body.split(b"\n", 1)[0]
    assert header.startswith(
        f"linklog-delta {delta_format} schema={SCHEMA_HASH} base=6 parent=6 version=8 ".encode())
    assert f"pages={second.pages_changed} ".encode() in header
    raw_records = second.pages_changed * (4 + 4096)
    assert (len(header) + 1 + raw_records == second.delta_bytes) == (codec == "none")

    restored = snapshots.restore_latest(local_store, ORG)
    assert (restored.version, restored.key, restored.skipped) == (8, first.key, [])
    assert restored.chain.deltas == (second.key,) and restored.chain.complete
    assert dump(restored.db) == dump(state_at(commits[:8]))


def test_restore_follows_the_chain_and_equals_a_full_replay_fts_included(local_store):
    commits = long_story()
    push(local_store, commits)
    written = [no_bound(local_store, commits, upto) for upto in range(6, len(commits) + 1)]
    assert [w.kind for w in written] == ["full"] + ["delta"] * (len(written) - 1)
    assert [w.chain_length for w in written] == list(range(len(written)))

    state = orgstate.open_state(local_store, ORG)
    assert (state.version, state.commits_applied) == (len(commits), 0)
    assert len(state.chain.deltas) == len(written) - 1
    assert dump(state.db) == dump(replay(local_store))
    assert state.db.execute("SELECT count(*) FROM link_search WHERE link_search MATCH 'rye'").get > 0


def test_the_chain_is_compacted_at_its_length_bound(local_store):
    commits = long_story()
    push(local_store, commits)
    kinds = [advance(local_store, commits, upto, max_chain=2, max_fraction=1000.0).kind
             for upto in range(6, 12)]
    assert kinds == ["full", "delta", "delta", "full", "delta", "delta"]
    assert snapshots.restore_latest(local_store, ORG).chain.base_version == 9


def test_the_chain_is_compacted_when_its_bytes_pass_the_fraction_of_the_base(local_store):
    commits = long_story()
    push(local_store, commits)
    base = no_bound(local_store, commits, 6)
    size = local_store.head(base.key).size
    delta = no_bound(local_store, commits, 7)
    # Room for exactly one more delta of this size, not two.
    fraction = (delta.delta_bytes * 2.5) / size
    kinds = [advance(local_store, commits, upto, max_chain=1000, max_fraction=fraction).kind
             for upto in range(8, 11)]
    assert kinds[0] == "delta" and "full" in kinds


@pytest.mark.parametrize("damage", ["flip", "cut", "delete", "header"])
def test_a_damaged_delta_falls_back_to_the_longest_valid_prefix(local_store, damage):
    commits = long_story()
    push(local_store, commits)
    written = [no_bound(local_store, commits, upto) for upto in range(6, 11)]
    broken = written[2].key  # the delta to version 8
    body = local_store.get(broken).body
    if damage == "delete":
        local_store.delete(broken)
    else:
        header, data = body.split(b"\n", 1)
        local_store.delete(broken)
        local_store.put(broken, {
            "flip": header + b"\n" + data[:100] + bytes([data[100] ^ 1]) + data[101:],
            "cut": body[:-1],
            "header": header.replace(b"version=8", b"version=9") + b"\n" + data,
        }[damage])

    state = orgstate.open_state(local_store, ORG)

    assert state.snapshot_version == 7, "base 6 and the delta to 7, then the log"
    assert not state.chain.complete
    assert dump(state.db) == dump(replay(local_store))
    if damage != "delete":
        assert [key for key, _ in state.skipped_snapshots] == [broken]


def test_a_damaged_chain_is_healed_by_the_next_write_with_a_full_snapshot(local_store):
    commits = long_story()
    push(local_store, commits)
    written = [no_bound(local_store, commits, upto) for upto in range(6, 9)]
    local_store.delete(written[1].key)  # the delta to 7: the one to 8 is out of reach
    assert no_bound(local_store, commits, 10).kind == "full"


def test_a_delta_whose_base_is_not_the_newest_is_not_written(local_store):
    commits = long_story()
    push(local_store, commits)
    no_bound(local_store, commits, 6)
    stale = snapshots.restore_latest(local_store, ORG, with_digests=True)
    no_bound(local_store, commits, 8)  # a delta to 8 on base 6
    snapshots.write_snapshot(local_store, ORG, state_at(commits[:9]))  # another processor's base
    apply_commits(stale.db, commits[6:10])
    written = snapshots.write_next(local_store, ORG, stale.db, stale.chain, stale.digests,
                                   snapshots.list_objects(local_store, ORG))
    stale.digests.close()
    assert written.kind == "full"


def test_newest_version_and_readiness_count_deltas(local_store):
    commits = long_story()
    push(local_store, commits)
    no_bound(local_store, commits, 6)
    assert triggers.readiness(local_store, ORG).log_ahead
    no_bound(local_store, commits, len(commits))
    assert snapshots.newest_version(local_store, ORG) == len(commits)
    assert not triggers.readiness(local_store, ORG).log_ahead


def test_deltas_whose_base_is_gone_are_not_counted(local_store):
    commits = long_story()
    push(local_store, commits)
    base = no_bound(local_store, commits, 6)
    no_bound(local_store, commits, 9)
    local_store.delete(base.key)
    assert snapshots.newest_version(local_store, ORG) == 0
    assert snapshots.restore_latest(local_store, ORG).key is None


def test_pruning_deletes_old_bases_with_their_deltas_and_nothing_a_restore_needs(local_store):
    commits = long_story(10)
    push(local_store, commits)
    for upto in range(6, len(commits) + 1):
        advance(local_store, commits, upto, max_chain=2, max_fraction=1000.0)
    before = snapshots.list_objects(local_store, ORG)
    assert len(before.bases) > 3
    deleted = snapshots.prune(local_store, ORG, keep=3)
    after = snapshots.list_objects(local_store, ORG)
    assert [b.key for b in after.bases] == [b.key for b in before.bases[-3:]]
    assert after.deltas == {v: d for v, d in before.deltas.items()
                            if any(v == int(b.key.rsplit("/", 1)[-1][:20]) for b in after.bases)}
    assert all(".deltas/" not in key or key.split(".deltas/")[0] + ".sqlite" in deleted
               for key in deleted)
    kept_bases = {b.key.removesuffix(".sqlite") for b in after.bases}
    left = [info.key for info in local_store.list(snapshot_prefix(ORG, SCHEMA_HASH))]
    assert [key for key in left if key.split(".")[0] not in kept_bases] == [], "no delta left without its base"
    restored = snapshots.restore_latest(local_store, ORG)
    assert restored.version == len(commits) and restored.chain.complete


def test_pruning_deletes_deltas_whose_base_is_gone(local_store):
    commits = long_story()
    push(local_store, commits)
    old_base = no_bound(local_store, commits, 6)
    orphans = [no_bound(local_store, commits, upto).key for upto in (7, 8)]
    base = advance(local_store, commits, 9, max_chain=0)
    on_base = no_bound(local_store, commits, 10)
    local_store.delete(old_base.key)
    assert [info.key for info in snapshots.list_objects(local_store, ORG).orphans] == orphans

    assert snapshots.prune(local_store, ORG, keep=3) == orphans

    left = [info.key for info in local_store.list(snapshot_prefix(ORG, SCHEMA_HASH))]
    assert left == [on_base.key, base.key]
    assert snapshots.restore_latest(local_store, ORG).version == 10


PRUNE_CHILD = Path(__file__).resolve().parent / "prune_child.py"


@pytest.mark.parametrize("at", [1, 3, 4, 6])
def test_a_pruner_killed_between_deletes_leaves_what_restores_need_and_the_next_cleans_up(tmp_path, at):
    store_dir = str(tmp_path / "store")
    store = LocalStore(store_dir)
    commits = long_story(12)
    push(store, commits)
    # Five bases with two deltas on each but the newest.
    for upto in range(6, 6 + 13):
        advance(store, commits, upto, max_chain=2, max_fraction=1000.0)
    before = snapshots.list_objects(store, ORG)
    assert [len(before.deltas_on(base)) for base in before.bases] == [2, 2, 2, 2, 0]
    newest = before.newest_version()

    # Its deletes: the two oldest bases' deltas (the first two fail), then each base.
    kill_child_at([str(PRUNE_CHILD), store_dir, ORG, str(at)], f"delete {at}")

    restored = snapshots.restore_latest(store, ORG)
    assert (restored.version, restored.chain.complete, restored.skipped) == (newest, True, [])
    snapshots.prune(store, ORG, keep=3)
    kept = before.bases[-3:]
    assert sorted(info.key for info in store.list(snapshot_prefix(ORG, SCHEMA_HASH))) == sorted(
        info.key for base in kept for info in [base, *before.deltas_on(base)])
    assert snapshots.list_objects(store, ORG).orphans == []
    assert dump(snapshots.restore_latest(store, ORG).db) == dump(replay(store, ORG))


def test_a_failing_delta_get_falls_back_and_never_raises(local_store):
    commits = long_story()
    push(local_store, commits)
    written = [no_bound(local_store, commits, upto) for upto in range(6, 10)]
    target = written[1].key

    def plan(kind, key, _n):
        return Fault.TRANSIENT if kind == "get" and key == target else None

    state = orgstate.open_state(FaultyStore(local_store, plan=plan), ORG)
    assert state.snapshot_version == 6
    assert dump(state.db) == dump(replay(local_store))


def test_a_delta_body_is_checked_before_any_page_is_written():
    body = deltas.encode(base=3, parent=3, at_version=5, page_size=512, db_pages=2,
                         pages=[(2, memoryview(bytes(512)))])
    assert deltas.decode(body, base=3, at_version=5).pages == ((2, bytes(512)),)
    with pytest.raises(deltas.UnusableDelta, match="base 3 and version 5"):
        deltas.decode(body, base=3, at_version=6)
    header, data = body.split(b"\n", 1)
    with pytest.raises(deltas.UnusableDelta, match="outside"):
        records = compression.decompress(data, 4 + 512)
        bad = compression.compress((4).to_bytes(4, "big") + records[4:])
        deltas.decode(header.replace(f"{zlib.crc32(data):08x}".encode(),
                                     f"{zlib.crc32(bad):08x}".encode()) + b"\n" + bad,
                      base=3, at_version=5)
    with pytest.raises(deltas.UnusableDelta, match="no delta header"):
        deltas.decode(b"x" * 600, base=3, at_version=5)


def test_a_delta_carries_the_pages_a_growing_database_added(local_store):
    log = story()
    log.client(*[created(f"g{n}", f"https://example.com/grown/{n}/{'rye-' * 40}")
                 for n in range(400)])
    commits = log.commits
    push(local_store, commits)
    base = no_bound(local_store, commits, 6)
    grown = no_bound(local_store, commits, 7)
    assert grown.kind == "delta"
    restored = snapshots.restore_latest(local_store, ORG)
    assert restored.version == 7
    assert len(restored.db.serialize("main")) > local_store.head(base.key).size
    assert dump(restored.db) == dump(replay(local_store))
    assert restored.db.execute("SELECT count(*) FROM links WHERE id LIKE 'g%'").get == 400


def test_the_cycle_log_line_names_the_snapshot_kind_chain_length_and_delta(local_store, monkeypatch):
    monkeypatch.setattr(snapshots, "MAX_CHAIN_FRACTION", 1000.0)
    lines = []
    for n in range(3):
        save_links(local_store, ORG, range(n * 3, n * 3 + 3))
        run_cycle(local_store, ORG, process=FakeProcessor(), holder="p", now=lambda: T0,
                  emit=lambda line: lines.append(json.loads(line)))
    figures = [(doc["snapshot_kind"], doc["chain_length"]) for doc in lines]
    assert figures == [("full", 0), ("delta", 1), ("delta", 2)]
    assert lines[1]["delta_bytes"] == local_store.head(
        delta_key(ORG, SCHEMA_HASH, lines[0]["snapshot_written"], lines[1]["snapshot_written"])).size
    assert lines[1]["pages_changed"] > 0 and lines[0]["pages_changed"] is None


def test_a_cycle_at_the_head_replaces_a_chain_it_could_not_restore_whole(local_store, monkeypatch):
    monkeypatch.setattr(snapshots, "MAX_CHAIN_FRACTION", 1000.0)
    for n in range(3):
        save_links(local_store, ORG, range(n * 3, n * 3 + 3))
        run_cycle(local_store, ORG, process=FakeProcessor(), holder="p", now=lambda: T0,
                  emit=lambda line: None)
    listed = snapshots.list_objects(local_store, ORG)
    [base] = listed.bases
    first_delta = listed.deltas_on(base)[0].key
    local_store.put(first_delta, b"damaged")
    head = snapshots.newest_version(local_store, ORG)

    report = run_cycle(local_store, ORG, process=FakeProcessor(), holder="p", now=lambda: T0,
                       emit=lambda line: None)

    assert report.outcome == "nothing_to_do" and report.version_after == head
    assert report.snapshot_key == snapshot_key(ORG, SCHEMA_HASH, head)
    restored = snapshots.restore_latest(local_store, ORG)
    assert (restored.version, restored.skipped) == (head, [])
