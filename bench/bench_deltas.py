"""What incremental snapshots cost: a 20-link cycle's snapshot against the
full snapshot it replaces, and a restore through the longest chain.

On the 10,000-link org (bench/orgdata.py) in a local directory store:

(a) a full snapshot of the replayed log;
(b) 20-link cycles until the chain reaches its longest (MAX_CHAIN deltas,
    or the byte bound). The first also writes the log packs of the whole
    log (the generated org has none). One, cold (the first in its
    container: it restores), is measured where no range of 8 commits
    completes, so it writes no pack: what it wrote (kind, delta bytes,
    pages changed, all bytes written) beside the full snapshot's bytes,
    and its store requests by kind. The others are warm (they resume the
    state the cycle before kept, chalicelib.keptstate): the first without
    a pack alike, and every warm cycle's request total;
(c) restores through base and chain and of the base alone, taken turn
    about (best of five each), beside the replay; and of the same base
    stored with zstd, as S3 stores it (the local store keeps parts
    uncompressed, chalicelib.compression), to show what the codec costs;
(d) the next cycle, which compacts (warm).

    python -m bench.bench_deltas
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from bench.bench_processor import offline_processor, replay, save_new_links, write_org
from bench.orgdata import make_org_log
from chalicelib import compression, cycle, packs, snapshots, state
from chalicelib.keptstate import KeptStates
from chalicelib.store import CountingStore, LocalStore

LINKS = 10_000
NEW_LINKS = 20
ORG = "org10000"
BASE_COPY = "org10000-base"
ZSTD_COPY = "org10000-zstd"


def restore_seconds(store, org: str) -> float:
    started = time.perf_counter()
    restored = snapshots.restore_latest(store, org)
    seconds = time.perf_counter() - started
    assert restored.key is not None and not restored.skipped, restored.skipped
    # Dropped before the next restore, as a cycle drops its own.
    restored.db.close()
    return seconds


def compare_restores(store, rounds: int = 5) -> tuple[float, float, float]:
    """Best seconds of a full-only restore (the base alone, copied to
    another org), of a restore through the chain, and of a full-only
    restore of the base stored with zstd, taken turn about so that a
    change in the machine's load weighs on all alike."""
    full, chain, zstd = [], [], []
    for _ in range(rounds):
        full.append(restore_seconds(store, BASE_COPY))
        chain.append(restore_seconds(store, ORG))
        zstd.append(restore_seconds(store, ZSTD_COPY))
    return min(full), min(chain), min(zstd)


def one_cycle(store, n: int, kept: KeptStates) -> dict:
    """A cycle over 20 newly saved links in the container ``kept`` stands
    for; its log line's figures."""
    save_new_links(store, ORG, NEW_LINKS, prefix=f"cycle{n}")
    lines: list[str] = []
    report = cycle.run_cycle(store, ORG, process=offline_processor, holder="bench",
                             emit=lines.append, kept=kept)
    assert report.outcome == "done", report.record.error
    return json.loads(lines[0])


def main() -> dict:
    """Run every part and return the figures."""
    with tempfile.TemporaryDirectory(prefix="linklog-bench-deltas-") as directory:
        store = CountingStore(LocalStore(directory))
        write_org(store, ORG, make_org_log(LINKS, org=ORG))
        db, replay_seconds, _ = replay(store, ORG)
        snapshots.write_snapshot(store, ORG, db)
        snapshots.write_snapshot(LocalStore(directory, snapshot_codec=compression.ZSTD), ZSTD_COPY, db)
        db.close()
        # The base alone (its object and parts), under another org, for
        # full-only restores.
        listed = snapshots.list_objects(store, ORG)
        [base] = listed.bases
        full = [base] + listed.parts_of(base)
        full_bytes = sum(info.size for info in full)
        for info in full:
            store.put(info.key.replace(f"orgs/{ORG}/", f"orgs/{BASE_COPY}/"), store.get(info.key).body)

        # A first cycle only takes the lease (the generated log carries a
        # processor epoch no lease handed out), as in bench_processor.
        cycle.run_cycle(store, ORG, process=offline_processor, holder="bench",
                        emit=lambda line: None)
        kept = KeptStates()
        chain = [one_cycle(store, 0, kept)]
        first_requests = chain[0]["requests"]
        while chain[-1]["snapshot_kind"] == "delta" and chain[-1]["chain_length"] < snapshots.MAX_CHAIN:
            # A cycle completes a range of 8 commits, and writes its pack,
            # when it moves the version across a multiple of 8 (3 commits
            # a cycle here: the client's and its two).
            packs_next = chain[-1]["version_after"] % packs.LEVELS[0] >= packs.LEVELS[0] - 3
            if not packs_next and not any(not line["warm"] for line in chain[1:]):
                kept.clear()  # a new container: the next cycle is cold
            chain.append(one_cycle(store, len(chain), kept))
        longest = max(line["chain_length"] for line in chain if line["snapshot_kind"] == "delta")
        first = next(line for line in chain[1:] if not line["warm"])
        warm = [line for line in chain if line["warm"]]
        warm_no_pack = next(line for line in warm if line["timings_ms"]["pack"] == 0)
        if chain[-1]["snapshot_kind"] == "full":
            # The byte bound compacted first: the longest chain is gone, so
            # build it again on the new base.
            chain = [one_cycle(store, len(chain) + n, kept) for n in range(longest)]
        full_seconds, chain_seconds, zstd_seconds = compare_restores(store)
        through_chain = snapshots.restore_latest(store, ORG)
        through_chain.db.close()
        compaction = one_cycle(store, 10_000, kept)
        kept.clear()

    return {
        "links": LINKS,
        "max_chain": snapshots.MAX_CHAIN,
        "max_chain_fraction": snapshots.MAX_CHAIN_FRACTION,
        "full_snapshot_bytes": full_bytes,
        "first_cycle_with_every_pack_requests": first_requests,
        "cycle_20_links": {
            "warm": first["warm"],
            "snapshot_kind": first["snapshot_kind"],
            "delta_bytes": first["delta_bytes"],
            "pages_changed": first["pages_changed"],
            "delta_share_of_full": round(first["delta_bytes"] / full_bytes, 5),
            "bytes_written": first["bytes_written"],
            "requests_by_kind": first["requests"],
            "requests_total": sum(first["requests"].values()),
            "write_requests": first["requests"]["put"] + first["requests"]["delete"],
            "timings_ms": first["timings_ms"],
        },
        "cycle_20_links_warm": {
            "snapshot_kind": warm_no_pack["snapshot_kind"],
            "delta_bytes": warm_no_pack["delta_bytes"],
            "requests_by_kind": warm_no_pack["requests"],
            "requests_total": sum(warm_no_pack["requests"].values()),
            "timings_ms": warm_no_pack["timings_ms"],
            # Every warm delta cycle of the chain: more when one also
            # wrote a log pack (a range of 8 commits completed).
            "requests_total_each": [sum(line["requests"].values()) for line in warm],
            "packs_written_by": [line["timings_ms"]["pack"] > 0 for line in warm],
        },
        "restore": {
            "load_average": [round(load, 1) for load in os.getloadavg()],
            "replay_ms": round(replay_seconds * 1000, 1),
            "full_only_ms": round(full_seconds * 1000, 1),
            "full_plus_chain_ms": round(chain_seconds * 1000, 1),
            "full_only_zstd_parts_ms": round(zstd_seconds * 1000, 1),
            "chain_length": len(through_chain.chain.deltas),
            "chain_bytes": through_chain.chain.delta_bytes,
            "chain_over_full_only": round(chain_seconds / full_seconds, 3),
            "speedup_over_replay_full_only": round(replay_seconds / full_seconds, 1),
            "speedup_over_replay_through_chain": round(replay_seconds / chain_seconds, 1),
            "speedup_over_replay_zstd_parts": round(replay_seconds / zstd_seconds, 1),
        },
        "compaction_cycle": {
            "warm": compaction["warm"],
            "snapshot_kind": compaction["snapshot_kind"],
            "bytes_written": compaction["bytes_written"],
            "requests_by_kind": compaction["requests"],
        },
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
