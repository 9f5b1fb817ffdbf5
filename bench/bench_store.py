"""What one store request costs, on the local directory store and on moto's server.

For each backend: the latency of uncontended 1 KB puts and gets (p50, p99
in milliseconds), and the throughput of put-if-absent on distinct keys with
1, 8 and 32 threads. The put latency is the floor under the log: a commit is
one put-if-absent, so one writer can commit at most once per put round trip.
moto's server runs in a child process started here, over HTTP on 127.0.0.1.

    python -m bench.bench_store
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from chalicelib.store import LocalStore, ObjectStore
from chalicelib.store.motoserver import moto_client, start_moto_server
from chalicelib.store.s3 import S3Store

BODY = b"x" * 1024
LATENCY_SAMPLES = 200
THREAD_COUNTS = (1, 8, 32)
PUTS_PER_THROUGHPUT_RUN = 320


def latency_ms(request, count: int) -> dict:
    """p50 and p99 of ``count`` calls of ``request(i)``, in milliseconds."""
    samples = []
    for i in range(count):
        started = time.perf_counter()
        request(i)
        samples.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(samples, n=100)
    return {"p50_ms": round(cuts[49], 3), "p99_ms": round(cuts[98], 3)}


def put_if_absent_throughput(store: ObjectStore, threads: int) -> dict:
    """Puts per second with ``threads`` writers, each creating its own keys."""
    run = uuid.uuid4().hex[:8]
    per_thread = PUTS_PER_THROUGHPUT_RUN // threads

    def writer(me: int) -> None:
        for i in range(per_thread):
            store.put(f"throughput/{run}/{me:02d}/{i:05d}", BODY, if_absent=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(writer, range(threads)))
    elapsed = time.perf_counter() - started
    return {"threads": threads, "puts": per_thread * threads, "puts_per_second": round(per_thread * threads / elapsed, 1)}


def measure(store: ObjectStore) -> dict:
    """All figures for one store."""
    put = latency_ms(lambda i: store.put(f"latency/{i:05d}", BODY, if_absent=True), LATENCY_SAMPLES)
    get = latency_ms(lambda i: store.get(f"latency/{i:05d}"), LATENCY_SAMPLES)
    return {
        "put_if_absent_latency": put,
        "get_latency": get,
        "put_if_absent_throughput": [put_if_absent_throughput(store, n) for n in THREAD_COUNTS],
    }


def main() -> dict:
    """Run the store bench; returns JSON-able figures by backend."""
    with tempfile.TemporaryDirectory(prefix="bench-store-") as root:
        local = measure(LocalStore(root))
    with start_moto_server() as server:
        client = moto_client(server.url)
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        moto = measure(S3Store(bucket, client=client))
    return {
        "body_bytes": len(BODY),
        "local": local,
        "moto_server": moto,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
