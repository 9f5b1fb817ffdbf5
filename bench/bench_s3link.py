"""The processor and the log as a Lambda in S3's region sees them: over a simulated link.

moto's server (served keep-alive, as S3 is) sits behind bench/link_proxy.py
in a process of its own: 15 ms each way, 80 MB/s per connection and
direction, two round trips of handshakes per new connection. Through it,
with the other benches' own functions:

- ``request_latency``: a 1 KB get, directly and over the link (the link's
  cost on one request, to read the rest against);
- ``restore``: replay against restore of the 10,000-link org
  (bench_processor.bench_restore; its log and snapshot are written
  directly, since writing them is not what is measured);
- ``cold_pull_10000_links``: a new device pulling the whole log, page by
  page, served by a cold container (a fresh LogIndex);
- ``cycle_20_links_on_10000``: one cycle over 20 new links on the
  10,000-link org, cold (it restores), and the next one in the same
  container, warm (bench_processor.bench_cycle);
- ``push_8_writers``: 8 writers, each with its own LogIndex as separate
  Lambda containers would be, pushing 96 commits to one org
  (bench_push.run).

    python -m bench.bench_s3link            # every part
    python -m bench.bench_s3link restore    # the restore part only
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import asdict

from bench import bench_processor, bench_push
from bench.bench_store import latency_ms
from bench.link_proxy import LinkProfile, start_proxy_process
from bench.orgdata import make_org_log
from chalicelib import sync
from chalicelib.store import CountingStore
from chalicelib.store.motoserver import moto_client, start_moto_server
from chalicelib.store.s3 import S3Store

LINKS = 10_000
LATENCY_SAMPLES = 50
PUSH_WRITERS = 8


def cold_pull(store, org: str) -> dict:
    """A new device pulling ``org``'s whole log from version 0, through a cold LogIndex."""
    counted = CountingStore(store)
    index = sync.LogIndex()
    since = pages = commits = events = 0
    started = time.perf_counter()
    while True:
        page = sync.pull(counted, org, since, index=index)
        pages += 1
        commits += len(page["commits"])
        events += sum(len(commit["events"]) for commit in page["commits"])
        if not page["has_more"] or not page["commits"]:
            break
        since = page["commits"][-1]["version"]
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "pages": pages,
        "commits": commits,
        "events": events,
        "requests_total": counted.total(),
        "requests_by_kind": {kind: n for kind, n in counted.counts().items() if n},
    }


def main(profile: LinkProfile = LinkProfile(), *, only_restore: bool = False) -> dict:
    """Run every part (or only the restore) over a link of ``profile``; returns the figures."""
    org = f"org{LINKS}"
    commits = make_org_log(LINKS, org=org)
    with (
        start_moto_server(keep_alive=True) as server,
        start_proxy_process(server.url, profile) as link,
    ):
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        direct_client = moto_client(server.url)
        direct_client.create_bucket(Bucket=bucket)
        link_client = moto_client(link.url)
        direct = S3Store(bucket, client=direct_client)
        linked = S3Store(bucket, client=link_client)
        direct.put("latency/probe", b"x" * 1024)
        results = {
            "link": asdict(profile),
            "request_latency": {
                "direct": latency_ms(lambda i: direct.get("latency/probe"), LATENCY_SAMPLES),
                "link": latency_ms(lambda i: linked.get("latency/probe"), LATENCY_SAMPLES),
            },
            "restore": bench_processor.bench_restore(linked, org, LINKS, commits, setup=direct),
        }
        if only_restore:
            return results
        results |= {
            f"cold_pull_{LINKS}_links": cold_pull(linked, org),
            f"cycle_20_links_on_{LINKS}": bench_processor.bench_cycle(linked, org),
            f"push_{PUSH_WRITERS}_writers": bench_push.run(
                lambda: S3Store(bucket, client=link_client), PUSH_WRITERS, shared_index=False
            ),
        }
    return results


if __name__ == "__main__":
    print(json.dumps(main(only_restore=sys.argv[1:] == ["restore"]), indent=2))
