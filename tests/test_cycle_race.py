"""Eight processors started at once on one org with 200 links, over moto's
server, with and without 10% of store requests failing. Each keeps its
state between its cycles, as a container does (chalicelib.keptstate)."""

import threading
from datetime import timedelta

from chalicelib import cycle, orgstate
from chalicelib.keptstate import KeptStates
from chalicelib.keys import version_of_snapshot_key
from chalicelib.store.faulty import FaultyStore
from clocks import WallClock
from processing_org import (
    FakeProcessor,
    check_every_link_ended_once,
    processor_history,
    save_links,
)
from statelog import all_commits

LINKS = 200
PROCESSORS = 8
HARD_FAILURES = range(0, LINKS, 25)


class SnapshotPuts:
    """Records every snapshot put that reached the store, in order."""

    def __init__(self, inner):
        self.inner = inner
        self.versions: list[int] = []
        self.lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, body, **kwargs):
        etag = self.inner.put(key, body, **kwargs)
        if "/snapshots/" in key:
            with self.lock:
                self.versions.append(version_of_snapshot_key(key))
        return etag


def race(store_for, now) -> list[str]:
    """PROCESSORS threads, released together, each running cycles until one
    finds nothing to do; returns every outcome."""
    barrier = threading.Barrier(PROCESSORS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def processor(n: int) -> None:
        store = store_for(n)
        kept = KeptStates()
        barrier.wait()
        try:
            for _ in range(200):
                report = cycle.run_cycle(
                    store, "acme", process=FakeProcessor(), holder=f"proc-{n}",
                    now=now, lease_seconds=5, budget_seconds=5, link_seconds=1,
                    concurrency=4, emit=lambda line: None, kept=kept,
                )
                with lock:
                    outcomes.append(report.outcome)
                if report.outcome == "nothing_to_do":
                    return
                if report.outcome in ("lease_held", "stopped"):
                    threading.Event().wait(0.02)
        finally:
            kept.clear()

    threads = [threading.Thread(target=processor, args=(n,)) for n in range(PROCESSORS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def check_every_link_terminal_once(store) -> None:
    db = check_every_link_ended_once(store, "acme", LINKS)
    statuses = dict(db.execute("SELECT status, count(*) FROM link_status GROUP BY status"))
    assert statuses == {"completed": LINKS - len(HARD_FAILURES), "failed": len(HARD_FAILURES)}


def save_org(store) -> None:
    hard = set(HARD_FAILURES)
    save_links(store, "acme", [n for n in range(LINKS) if n not in hard])
    save_links(store, "acme", sorted(hard), host="example.com/fail-hard")


def test_eight_processors_at_once_process_every_link_exactly_once(server_store):
    save_org(server_store)
    recorder = SnapshotPuts(server_store)
    now = WallClock()
    outcomes = race(lambda n: recorder, now)
    assert "lease_held" in outcomes
    assert "stopped" not in outcomes
    check_every_link_terminal_once(server_store)
    history = processor_history(all_commits(server_store, "acme"))
    assert {tuple(h.attempts_started) for h in history.values()} == {(1,)}
    assert recorder.versions == sorted(set(recorder.versions))


def test_with_ten_percent_of_requests_failing_the_same_holds(server_store):
    save_org(server_store)
    recorder = SnapshotPuts(server_store)
    now = WallClock()
    faulty = [FaultyStore(recorder, fail_rate=0.1, seed=n) for n in range(PROCESSORS)]
    outcomes = race(lambda n: faulty[n], now)
    # Links a stopped cycle had started stay pending until the stuck timeout.
    for _ in range(5):
        db = orgstate.load(server_store, "acme")
        if not db.execute("SELECT 1 FROM link_status WHERE status = 'pending'").fetchall():
            break
        now.at += timedelta(minutes=6)
        outcomes += race(lambda n: faulty[n], now)
    assert "stopped" in outcomes, "the faults did bite"
    check_every_link_terminal_once(server_store)
    assert recorder.versions == sorted(set(recorder.versions))
