"""What the sweep costs over 10,000 orgs on the local store (1,000 on moto's server).

One org is processed by a real cycle (a saved link, processed, snapshot,
lease released saying nothing is due); its objects are then copied to
the other orgs, made after the due index existed, so every org looks
exactly like a quiet org to the sweep (which reads only keys and the
lease). Reported, in store requests by kind:

- ``walk_sample``: the one-off walk over orgs from before the index, over
  WALK_SAMPLE of them (the whole walk takes minutes on the local store). It
  visits each org as every sweep did before the index (a list to find it,
  two to compare log and snapshot, a get of the lease), so ``per_org`` times
  the orgs is what a sweep cost before: ``before_index_estimate``;
- ``idle``: a sweep when every org is idle (the goal: at most 20 requests);
- ``due``: a sweep when DUE of the orgs have a push's entry due (a new
  commit whose wake-up was lost) and DUE more a retry come due.

    python -m bench.bench_sweep
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from chalicelib import dueindex, lease, log
from chalicelib.cycle import run_cycle
from chalicelib.links.outcome import LinkOutcome, PageMetadata
from chalicelib.store import CountingStore, LocalStore, ObjectStore
from chalicelib.store.motoserver import moto_client, start_moto_server
from chalicelib.store.s3 import S3Store
from chalicelib.triggers import WALK_KEY, index_orgs_from_before, sweep

ORGS = 10_000
# moto's server takes each request in turn: copying 10,000 orgs into it did
# not finish in 30 minutes on a busy 2-core machine. The idle sweep reads no
# org's objects, so its count does not depend on how many there are.
MOTO_ORGS = 1_000
DUE = 50
WALK_SAMPLE = 500
TEMPLATE = "org-00000"
WRITERS = 16
T0 = datetime(2026, 11, 23, 20, 0, tzinfo=timezone.utc)
CLIENT = {"kind": "client", "id": "bench-device"}


def save_link(store: ObjectStore, org: str, link_id: str) -> None:
    """One client commit saving a link, as a push writes it."""
    event = {"id": f"created-{link_id}", "name": "v1.LinkCreated", "at": "2026-11-23T19:00:00Z",
             "args": {"id": link_id, "url": f"http://pages.test/{link_id}",
                      "createdAt": "2026-11-23T19:00:00Z"}}
    log.append(store, org, [event], batch_id=f"batch-{link_id}", author=CLIENT)


def _processed(job) -> LinkOutcome:
    return LinkOutcome(link_id=job.link_id, metadata=PageMetadata(title="a page"))


def _quiet_orgs(store: ObjectStore, now, count: int) -> list[str]:
    """``count`` orgs, each processed and idle, made after the index's walk
    was done; returns their names."""
    save_link(store, TEMPLATE, "l1")
    run_cycle(store, TEMPLATE, process=_processed, holder="bench", now=lambda: now,
              emit=lambda line: None)
    index_orgs_from_before(store, now=now, most=1)
    objects = {found.key.split("/", 2)[2]: store.get(found.key).body
               for found in store.list(f"orgs/{TEMPLATE}/")}
    orgs = [f"org-{n:05d}" for n in range(count)]

    def copy(org: str) -> None:
        for rest, body in objects.items():
            store.put(f"orgs/{org}/{rest}", body)

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(copy, orgs[1:]))
    return orgs


def _make_some_due(store: ObjectStore, orgs: list[str], now) -> None:
    """DUE orgs get a new commit and its push entry; DUE more a retry due at ``now``."""
    marks = dueindex.PushMarks()
    for n, org in enumerate(orgs[1:1 + DUE]):
        save_link(store, org, f"new-{n}")
        marks.after_commit(store, org, now - dueindex.PushMarks.DELAY)
    for org in orgs[1 + DUE:1 + 2 * DUE]:
        held = lease.acquire(store, org, "bench", duration=60, clock=time.monotonic)
        lease.release(store, held, hint=lease.Released(next_due=now))


def _requests(store: ObjectStore, run, answer: str) -> dict:
    """What ``run(store)`` cost in requests and seconds, and what it answered."""
    counted = CountingStore(store)
    started = time.perf_counter()
    result = run(counted)
    return {"requests": counted.total(), "by_kind": counted.counts(),
            "seconds": round(time.perf_counter() - started, 2), answer: result}


def measure(store: ObjectStore, orgs_wanted: int = ORGS) -> dict:
    """The three sweeps over ``orgs_wanted`` orgs in ``store``."""
    now = T0 + timedelta(days=1)
    started = time.perf_counter()
    orgs = _quiet_orgs(store, T0, orgs_wanted)
    built = time.perf_counter() - started
    figures = {"orgs": len(orgs), "build_seconds": round(built, 1)}
    # The walk, over a sample, from a fresh start; then its progress as it was.
    progress = store.get(WALK_KEY).body
    store.delete(WALK_KEY)
    sample = _requests(
        store, lambda s: index_orgs_from_before(s, now=now, most=WALK_SAMPLE), "orgs_walked")
    store.put(WALK_KEY, progress)
    # Less the walk's own progress (a get and a put) and its look past the sample.
    per_org = (sample["requests"] - 3) / WALK_SAMPLE
    figures["walk_sample"] = {**sample, "per_org": round(per_org, 2),
                              "before_index_estimate": round(per_org * len(orgs))}
    figures["idle"] = _requests(
        store, lambda s: len(sweep(s, now=now, enqueue=lambda org: None)), "orgs_enqueued")
    _make_some_due(store, orgs, now)
    figures["due"] = _requests(
        store, lambda s: len(sweep(s, now=now, enqueue=lambda org: None)), "orgs_enqueued")
    return figures


def main() -> dict:
    results = {}
    # In memory when there is a tmpfs: on a busy disk, deleting the 50,000
    # files afterwards took longer than everything measured.
    memory = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=memory) as root:
        results["local"] = measure(LocalStore(root))
    with start_moto_server() as server:
        client = moto_client(server.url)
        client.create_bucket(Bucket="linklog-bench")
        results["moto_server"] = measure(S3Store("linklog-bench", client=client), MOTO_ORGS)
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
