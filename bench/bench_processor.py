"""What the processor costs: restore against replay, one cycle's requests,
apply rate, and a cycle's peak memory.

Orgs of 1,000 and 10,000 links (about 5 KB of text each, bench/orgdata.py)
are written to moto's S3 server on 127.0.0.1 and to a local directory store.
Then:

(a) restore, on each store: the newest snapshot (list, download to a
    scratch file with the checksum added up on the way, open and check it)
    against a full replay (read every commit, apply it), in ms and as
    ratios (download + open alone, and the whole restore);
(b) one cycle over 20 newly saved links on the 1,000-link org: store
    requests by kind, sequential round trips, commits and snapshots written;
    it is the first in its container (cold: it restores), and the next
    20-link cycle there resumes the state it kept (warm), measured alike;
(c) apply rate, events per second, from the 10,000-link replay;
(d) peak memory (max RSS) of a process running one 20-link cycle on the
    10,000-link org, beside the same process before the cycle.

    python -m bench.bench_processor
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from bench.orgdata import make_org_log
from chalicelib import cycle, log, snapshots, state
from chalicelib.keptstate import KeptStates
from chalicelib.keys import log_key, snapshot_key, snapshot_prefix
from chalicelib.links.outcome import LinkJob, LinkOutcome, PageMetadata
from chalicelib.store import CountingStore, LocalStore
from chalicelib.store.motoserver import moto_client, start_moto_server
from chalicelib.store.s3 import S3Store

SIZES = (1_000, 10_000)
NEW_LINKS = 20
TEXT = ("A paragraph of plain prose about the page, long enough to index. " * 80)[:5000]


class RoundTrips:
    """Counts requests that started while no other was in flight: the
    round trips a cycle waits for one after another."""

    def __init__(self, inner):
        self.inner = inner
        self.sequential = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    def _call(self, name, *args, **kwargs):
        with self._lock:
            if self._in_flight == 0:
                self.sequential += 1
            self._in_flight += 1
        try:
            return getattr(self.inner, name)(*args, **kwargs)
        finally:
            with self._lock:
                self._in_flight -= 1

    def get(self, key):
        return self._call("get", key)

    def download(self, key, into):
        return self._call("download", key, into)

    def head(self, key):
        return self._call("head", key)

    def put(self, key, body, **kwargs):
        return self._call("put", key, body, **kwargs)

    def delete(self, key, **kwargs):
        return self._call("delete", key, **kwargs)

    def list(self, prefix, **kwargs):
        return self._call("list", prefix, **kwargs)


def offline_processor(job: LinkJob) -> LinkOutcome:
    """A link's outcome without the network: the cycle's cost, not the web's."""
    return LinkOutcome(
        link_id=job.link_id,
        metadata=PageMetadata(title=f"Page {job.link_id}", lang="en"),
        text=TEXT,
        word_count=len(TEXT.split()),
        reading_minutes=4,
        summary=TEXT[:300],
    )


def write_org(store, org: str, commits: list[dict]) -> int:
    """The org's log in the store; returns the number of events."""
    for commit in commits:
        body = json.dumps(commit, separators=(",", ":")).encode()
        store.put(log_key(org, commit["version"]), body, if_absent=True)
    return sum(len(c["events"]) for c in commits)


def replay(store, org: str) -> tuple[object, float, float]:
    """Full replay: (db, total seconds, seconds spent applying)."""
    started = time.perf_counter()
    db = state.new_database()
    applying = 0.0
    while commits := log.read_commits(store, org, state.version(db)):
        begun = time.perf_counter()
        state.apply_commits(db, commits)
        applying += time.perf_counter() - begun
    return db, time.perf_counter() - started, applying


def bench_restore(store, org: str, links: int, commits: list[dict], *, setup=None) -> dict:
    """Replay and restore of the org through ``store``.

    ``setup`` (default ``store``) writes the org's log and its snapshot
    beforehand: over a simulated link, a store that reaches the same bucket
    directly, since writing them is not what is measured.
    """
    setup = setup or store
    events = write_org(setup, org, commits)
    db, replay_seconds, apply_seconds = replay(store, org)
    snapshots.write_snapshot(setup, org, db)
    # The same database as one format-1 object (how snapshots were stored
    # before parts), under another org, restored turn about with the parts.
    one_object = f"{org}-one-object"
    setup.put(snapshot_key(one_object, state.SCHEMA_HASH, state.version(db)), snapshots.encode(db))
    # Best of three: one restore is short enough for a stray pause to count.
    # Each restored database is dropped before the next restore, as a cycle
    # drops its own: in a Firecracker VM (Lambda's, and this machine's) the
    # first touch of guest memory costs several times a reused page, so
    # holding on to them would time the VM's page faults, not the restore.
    runs, one_object_runs = [], []
    for _ in range(3):
        for of_org, into in ((org, runs), (one_object, one_object_runs)):
            counted = CountingStore(store)
            started = time.perf_counter()
            restored = snapshots.restore_latest(counted, of_org)
            seconds = time.perf_counter() - started
            assert restored.version == state.version(db) and not restored.skipped
            restored.db.close()
            into.append((seconds, restored, counted.total()))
    restore_seconds, restored, requests = min(runs, key=lambda run: run[0])
    one_object_seconds = min(run[0] for run in one_object_runs)
    get_and_deserialize = restored.get_seconds + restored.deserialize_seconds
    return {
        "links": links,
        "commits": state.version(db),
        "events": events,
        "snapshot_bytes": restored.size,
        "replay_ms": round(replay_seconds * 1000, 1),
        "replay_apply_ms": round(apply_seconds * 1000, 1),
        "restore_ms": round(restore_seconds * 1000, 1),
        "restore_get_ms": round(restored.get_seconds * 1000, 1),
        "restore_deserialize_ms": round(restored.deserialize_seconds * 1000, 1),
        "restore_list_and_rest_ms": round((restore_seconds - get_and_deserialize) * 1000, 1),
        "restore_requests": requests,
        "restore_one_object_ms": round(one_object_seconds * 1000, 1),
        "speedup_get_and_deserialize": round(replay_seconds / get_and_deserialize, 1),
        "speedup_whole_restore": round(replay_seconds / restore_seconds, 1),
        "speedup_one_object_restore": round(replay_seconds / one_object_seconds, 1),
        "apply_events_per_second": round(events / apply_seconds),
    }


def save_new_links(store, org: str, count: int, *, prefix: str = "new") -> None:
    """One client commit saving ``count`` links, ids ``<prefix>-<n>``."""
    events = [
        {
            "id": uuid.uuid4().hex,
            "name": "v1.LinkCreated",
            "args": {"id": f"{prefix}-{n}", "url": f"https://news.example.com/{prefix}/{n}",
                     "createdAt": "2026-11-23T20:00:00Z"},
            "at": "2026-11-23T20:00:00Z",
        }
        for n in range(count)
    ]
    log.append(store, org, events, batch_id=uuid.uuid4().hex,
               author={"kind": "client", "id": "bench"})


def bench_cycle(store, org: str) -> dict:
    # A first cycle finds nothing to do; it takes the lease once, so the
    # measured cycle is a steady-state one (the generated log carries a
    # processor epoch that no lease object has handed out).
    cycle.run_cycle(store, org, process=offline_processor, holder="bench",
                    emit=lambda line: None)
    kept = KeptStates()
    cold = _measured_cycle(store, org, kept, prefix="cold")
    cold["warm"] = _measured_cycle(store, org, kept, prefix="warm")
    kept.clear()
    return cold


def _measured_cycle(store, org: str, kept: KeptStates, *, prefix: str) -> dict:
    save_new_links(store, org, NEW_LINKS, prefix=prefix)
    snapshots_before = len(store.list(snapshot_prefix(org, state.SCHEMA_HASH)))
    trips = RoundTrips(store)
    lines: list[str] = []
    report = cycle.run_cycle(trips, org, process=offline_processor, holder="bench",
                             emit=lines.append, kept=kept)
    assert report.outcome == "done", report.record.error
    figures = json.loads(lines[0])
    return {
        "warm_start": report.record.warm,
        "links": NEW_LINKS,
        "outcome": report.outcome,
        "requests_by_kind": report.requests,
        "requests_total": sum(report.requests.values()),
        "sequential_round_trips": trips.sequential,
        "commits_written": report.commits_written,
        "snapshots_written": 1 if report.snapshot_key else 0,
        "snapshots_kept": len(store.list(snapshot_prefix(org, state.SCHEMA_HASH))),
        "snapshots_before": snapshots_before,
        "timings_ms": figures["timings_ms"],
        "bytes_read": figures["bytes_read"],
        "bytes_written": figures["bytes_written"],
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory, in MB.

    VmHWM belongs to the process image, so unlike ru_maxrss it does not
    carry over the parent's peak through fork and exec.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cycle_memory(store_dir: str, org: str) -> dict:
    """Run in a fresh process: peak memory before and after one 20-link cycle."""
    store = CountingStore(LocalStore(store_dir))
    save_new_links(store, org, NEW_LINKS)
    before = peak_rss_mb()
    report = cycle.run_cycle(store, org, process=offline_processor, holder="bench-memory",
                             emit=lambda line: None)
    return {"outcome": report.outcome, "peak_rss_before_cycle_mb": before,
            "peak_rss_after_cycle_mb": peak_rss_mb()}


def main() -> dict:
    """Run every part and return the figures."""
    results: dict = {}
    logs = {links: make_org_log(links, org=f"org{links}") for links in SIZES}
    with start_moto_server() as server:
        client = moto_client(server.url)
        client.create_bucket(Bucket="linklog-bench")
        store = CountingStore(S3Store("linklog-bench", client=client))
        results["restore_s3_moto_server"] = [
            bench_restore(store, f"org{links}", links, logs[links]) for links in SIZES
        ]
    with tempfile.TemporaryDirectory(prefix="linklog-bench-") as directory:
        store = CountingStore(LocalStore(directory))
        results["restore_local"] = [
            bench_restore(store, f"org{links}", links, logs[links]) for links in SIZES
        ]
        results["apply_events_per_second"] = results["restore_local"][-1][
            "apply_events_per_second"
        ]
        results["cycle_20_links"] = bench_cycle(store, f"org{SIZES[0]}")
        child = subprocess.run(
            [sys.executable, "-m", "bench.bench_processor", "--cycle-memory", directory,
             f"org{SIZES[-1]}"],
            capture_output=True, text=True, check=True,
        )
        results["cycle_memory_10000_links"] = json.loads(child.stdout.splitlines()[-1])
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--cycle-memory"]:
        print(json.dumps(cycle_memory(sys.argv[2], sys.argv[3])))
    else:
        print(json.dumps(main(), indent=2))
