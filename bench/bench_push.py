"""Push throughput on one org: 1, 8 and 32 concurrent writers.

Writers call ``sync.push`` in-process from threads (no HTTP: what is measured
is the log, not the web server). Each writer has its own LogIndex, as if it
were its own Lambda container, so they really race for each version; the
``one_process`` figures share one index, as the dev server's request threads
do, where pushes to one org take turns. A push answered 503 (LogBusy) is
retried after its Retry-After, with the same batch id, as a client would.

Figures per backend (local directory store; moto's S3 server over HTTP in a
child process) and writer count: commits per second, p50/p99 push latency
(until committed, retries included), 412s and retried puts of commits per
commit (a batch marker's put is not a retry), store requests per commit by
kind (batch markers included), 503s. ``put_ms`` is the uncontended
put-if-absent latency: one org commits at most once per put round trip, so
commits/s is to be read against 1000 / put_ms.

    python -m bench.bench_push
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import uuid

from chalicelib import sync
from chalicelib.api_errors import ApiError
from chalicelib.store import CountingStore, LocalStore, PreconditionFailed
from chalicelib.store.motoserver import moto_client, start_moto_server
from chalicelib.store.s3 import S3Store

WRITER_COUNTS = (1, 8, 32)
COMMITS_PER_RUN = 96
PUT_SAMPLES = 100
AT = "2026-11-23T20:00:00Z"


class RaceCounter(CountingStore):
    """Counts requests by kind, and the puts of commits: all, and refused with 412."""

    def __init__(self, inner):
        super().__init__(inner)
        self.commit_puts = 0
        self.refused = 0
        self._commit_lock = threading.Lock()

    def put(self, key, body, *, if_absent=False, if_match=None):
        # Batch markers are puts too; races are lost only over log versions.
        is_commit = "/log/" in key
        if is_commit:
            with self._commit_lock:
                self.commit_puts += 1
        try:
            return super().put(key, body, if_absent=if_absent, if_match=if_match)
        except PreconditionFailed:
            if is_commit:
                with self._commit_lock:
                    self.refused += 1
            raise


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def push_body(writer: int, n: int) -> bytes:
    event_id = f"w{writer}-{n}"
    return json.dumps(
        {
            "batch_id": event_id,
            "client_id": f"writer-{writer}",
            "events": [
                {"id": event_id, "name": "v1.TagCreated",
                 "args": {"id": event_id, "name": event_id, "createdAt": AT}, "at": AT}
            ],
        }
    ).encode()


def run(store_factory, writers: int, shared_index: bool) -> dict:
    """``writers`` threads pushing COMMITS_PER_RUN commits in all to one fresh org."""
    store = RaceCounter(store_factory())
    org = f"bench-{uuid.uuid4().hex[:8]}"
    per_writer = COMMITS_PER_RUN // writers
    shared = sync.LogIndex()
    latencies: list[float] = []
    busy = [0]
    lock = threading.Lock()
    start = threading.Barrier(writers)

    def writer(w: int) -> None:
        index = shared if shared_index else sync.LogIndex()
        start.wait()
        for n in range(per_writer):
            began = time.perf_counter()
            while True:
                try:
                    sync.push(store, org, push_body(w, n), notify=lambda org: None, index=index)
                    break
                except ApiError as error:
                    if error.status != 503:
                        raise
                    with lock:
                        busy[0] += 1
                    time.sleep(error.retry_after or 1)
            with lock:
                latencies.append(time.perf_counter() - began)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    commits = per_writer * writers
    counts = store.counts()
    return {
        "writers": writers,
        "commits": commits,
        "commits_per_second": round(commits / elapsed, 1),
        "push_p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "push_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "412s_per_commit": round(store.refused / commits, 2),
        "commit_put_retries_per_commit": round((store.commit_puts - commits) / commits, 2),
        "requests_per_commit": {k: round(v / commits, 2) for k, v in counts.items() if v},
        "503s": busy[0],
    }


def put_latency_ms(store) -> dict:
    samples = []
    for i in range(PUT_SAMPLES):
        began = time.perf_counter()
        store.put(f"bench/put/{i:05d}", b"x" * 512, if_absent=True)
        samples.append(time.perf_counter() - began)
    return {
        "p50": round(percentile(samples, 0.5) * 1000, 2),
        "p99": round(percentile(samples, 0.99) * 1000, 2),
    }


def measure(store_factory) -> dict:
    return {
        "put_ms": put_latency_ms(store_factory()),
        "separate_processes": [run(store_factory, w, shared_index=False) for w in WRITER_COUNTS],
        "one_process": [run(store_factory, w, shared_index=True) for w in WRITER_COUNTS],
    }


def main() -> dict:
    """Run the push bench on both backends; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-push-") as root:
        local = measure(lambda: LocalStore(root))
    with start_moto_server() as server:
        client = moto_client(server.url)
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        moto = measure(lambda: S3Store(bucket, client=client))
    return {
        "how": "sync.push in-process, one thread per writer, one org; "
        "separate_processes: a LogIndex per writer; one_process: one shared LogIndex",
        "local": local,
        "moto_server": moto,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
