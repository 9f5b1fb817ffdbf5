"""Import and export of a 10,000-link org, on the local store and moto's server.

What ``POST /v1/import`` and ``GET /v1/export`` do, called in-process (no
HTTP): a 10,000-bookmark Netscape file (two tags each, a tenth marked read)
is imported into an empty org, the org's state is opened (snapshot-less:
the log is replayed, as a cold API container would), and exported as
Netscape HTML and as linklog JSON. Figures: seconds per step, commits and
store requests of the import, file sizes, and whether each export fits in a
Lambda answer (6 MB) or goes through the store.

    python -m bench.bench_transfer
"""

from __future__ import annotations

import tempfile
import time
import uuid

from chalicelib import exports, imports, sync
from chalicelib.links.addresses import AllowList
from chalicelib.orgstate import open_state
from chalicelib.state.schema import new_database
from chalicelib.store import CountingStore, LocalStore
from chalicelib.store.motoserver import moto_client, start_moto_server
from chalicelib.store.s3 import S3Store

LINKS = 10_000
ORG = "bench"


def bookmark_file(count: int) -> bytes:
    rows = "\n".join(
        f'<DT><A HREF="https://example.org/articles/{n}" ADD_DATE="1700000000" '
        f'TAGS="topic-{n % 40},year-{2015 + n % 10}" TOREAD="{0 if n % 10 == 0 else 1}">Article {n}</A>'
        for n in range(count)
    )
    return f"<!DOCTYPE NETSCAPE-Bookmark-file-1>\n<DL><p>\n{rows}\n</DL><p>\n".encode()


def measure(store: CountingStore) -> dict:
    data = bookmark_file(LINKS)
    started = time.perf_counter()
    result = imports.import_file(
        store, ORG, new_database(), data, format=None, allow=AllowList(),
        notify=lambda org: None, index=sync.LogIndex(),
    )
    import_seconds = time.perf_counter() - started
    import_requests = store.counts()
    started = time.perf_counter()
    state = open_state(store, ORG)
    open_seconds = time.perf_counter() - started
    figures = {
        "file_bytes": len(data),
        "saved": result["saved"],
        "commits": result["version"],
        "import_seconds": round(import_seconds, 2),
        "import_requests": import_requests,
        "open_state_seconds": round(open_seconds, 2),
    }
    for format in ("netscape", "json"):
        started = time.perf_counter()
        export = exports.export_links(store, ORG, state.db, format)
        figures[f"export_{format}"] = {
            "seconds": round(time.perf_counter() - started, 2),
            "bytes": export.size,
            "links": export.count,
            "answered": "inline" if export.body is not None else "presigned link",
        }
    state.db.close()
    return figures


def main() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as root:
        local = measure(CountingStore(LocalStore(root)))
    with start_moto_server() as server:
        client = moto_client(server.url)
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        moto = measure(CountingStore(S3Store(bucket, client=client)))
    return {"links": LINKS, "local": local, "moto_server": moto}


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
