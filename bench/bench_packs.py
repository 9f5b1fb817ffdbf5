"""Log packs: a cold pull and a replay of the 10,000-link org's whole log,
commit by commit against through packs, on the local store and moto's server.

The org's 1,501 commits (bench/orgdata.py, 73,020 events, 70 MB) are
written to the store; then, before and after its packs are written:

- cold pull: a process that never saw the org (a fresh LogIndex) pulls
  the whole log page by page (1,000 events a page), as a new device does;
- replay: the org's state built from its log alone (orgstate.open_state
  with no snapshot), as a cycle does when no snapshot is usable.

Figures: store requests by kind and seconds for each; for the packs, what
writing them cost (requests, seconds, bytes against the log's).

    python -m bench.bench_packs
"""

from __future__ import annotations

import tempfile
import time
import uuid

from bench.bench_processor import write_org
from bench.orgdata import make_org_log
from chalicelib import orgstate, packs, sync
from chalicelib.keys import pack_key
from chalicelib.store import CountingStore, LocalStore
from chalicelib.store.motoserver import moto_client, start_moto_server
from chalicelib.store.s3 import S3Store

LINKS = 10_000
ORG = "bench"


def measured(store: CountingStore, work) -> dict:
    before = store.counts()
    started = time.perf_counter()
    result = work()
    figures = {
        "seconds": round(time.perf_counter() - started, 2),
        "requests": {kind: count - before[kind] for kind, count in store.counts().items() if count > before[kind]},
    }
    figures["requests_total"] = sum(figures["requests"].values())
    return figures | (result or {})


def cold_pull(store) -> dict:
    index = sync.LogIndex()
    since, pages, commits = 0, 0, 0
    while True:
        page = sync.pull(store, ORG, since, index=index)
        pages += 1
        commits += len(page["commits"])
        if not page["has_more"]:
            return {"pages": pages, "commits": commits}
        since = page["commits"][-1]["version"]


def replay(store) -> dict:
    opened = orgstate.open_state(store, ORG)
    opened.db.close()
    return {"commits": opened.commits_applied}


def write_all_packs(store, head: int) -> dict:
    written = []
    while batch := packs.write_packs(store, ORG, head):
        written += batch
    return {"packs": [[pack.first, pack.last] for pack in written]}


def measure(store: CountingStore, commits: list[dict]) -> dict:
    write_org(store, ORG, commits)
    log_bytes = sum(store.inner.head(f"orgs/{ORG}/log/{v:020d}.json").size for v in range(1, len(commits) + 1))
    figures = {
        "commit_by_commit": {"cold_pull": measured(store, lambda: cold_pull(store)),
                             "replay": measured(store, lambda: replay(store))},
        "writing_packs": measured(store, lambda: write_all_packs(store, len(commits))),
    }
    listed = packs.list_packs(store.inner, ORG)
    pack_bytes = sum(store.inner.head(pack_key(ORG, p.first, p.last)).size for p in listed)
    figures["writing_packs"] |= {"log_bytes": log_bytes, "pack_bytes": pack_bytes}
    figures["packs"] = {"cold_pull": measured(store, lambda: cold_pull(store)),
                        "replay": measured(store, lambda: replay(store))}
    return figures


def main() -> dict:
    commits = make_org_log(LINKS)
    with tempfile.TemporaryDirectory(prefix="bench-packs-") as root:
        local = measure(CountingStore(LocalStore(root)), commits)
    with start_moto_server() as server:
        client = moto_client(server.url)
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        moto = measure(CountingStore(S3Store(bucket, client=client)), commits)
    return {"links": LINKS, "commits": len(commits), "local": local, "moto_server": moto}


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
