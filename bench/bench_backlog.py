"""A backlog through the real worker: 1,000 links to slow pages, how long
until every one has ended.

Local page servers on ORIGINS ports of 127.0.0.1 each answer after 200 ms
with a small real article. Two client commits of 500 links each land in a
local directory store, each followed by a wake-up, as two pushes would do;
then the local worker (the one `make run` runs: queue, cycles, sweeps) is
left alone. Reported: seconds until all links are terminal (the goal is 60),
links per second, the cycles that ran and their outcomes, commits written,
store requests by kind, and the bytes of snapshots written. A run that does
not finish within LIMIT_SECONDS reports how many links had ended by then.

    python -m bench.bench_backlog
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import threading
import time
from collections import Counter

from bench.pages import PageServer
from chalicelib import log, orgstate
from chalicelib.links.addresses import AllowList
from chalicelib.links.fetch import FetchPolicy, fetch_page
from chalicelib.links.pipeline import make_link_processor
from chalicelib.queue import LocalQueue
from chalicelib.store import CountingStore, LocalStore
from chalicelib.worker import start_worker

LINKS = 1_000
PER_PUSH = 500
ORIGINS = 4
PAGE_SECONDS = 0.2
GOAL_SECONDS = 60
LIMIT_SECONDS = 120
ORG = "bench"
AT = "2026-11-23T20:00:00Z"
TERMINAL = ("completed", "failed", "cancelled")


def _article(path: str) -> bytes:
    return f"""<!doctype html><html lang="en"><head><title>Notes from {path}</title>
<meta name="description" content="A short article served slowly."></head>
<body><article><h1>Notes from {path}</h1>
<p>The orchard was pruned in late winter, before the sap rose, and the cuttings
were stacked to dry for kindling. Every tree got a ring of compost.</p>
<p>By May the blossom had set well, and the bees from the next field worked the
rows from dawn until the light went.</p></article></body></html>""".encode()


class _SnapshotBytes(CountingStore):
    """Counts requests, and the bytes of snapshot puts."""

    def __init__(self, inner):
        super().__init__(inner)
        self.snapshot_bytes = 0

    def put(self, key, body, *, if_absent=False, if_match=None):
        if "/snapshots/" in key:
            with self._lock:
                self.snapshot_bytes += len(body)
        return super().put(key, body, if_absent=if_absent, if_match=if_match)


class _CycleLines(io.TextIOBase):
    """Stands in for stdout while the worker runs: keeps each cycle's JSON
    log line, so the bench can add up what the cycles did."""

    def __init__(self):
        self.cycles: list[dict] = []
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._partial += text
            *lines, self._partial = self._partial.split("\n")
            for line in lines:
                if line.startswith("{") and '"outcome"' in line:
                    self.cycles.append(json.loads(line))
        return len(text)

    def ended(self) -> int:
        with self._lock:
            return sum(c["links_done"] + c["links_failed"] for c in self.cycles)


def _saves(servers: list[PageServer]) -> list[list[dict]]:
    urls = [servers[n % len(servers)].url(f"/article/{n}") for n in range(LINKS)]
    events = [
        {"id": f"save-{n}", "name": "v1.LinkCreated", "at": AT,
         "args": {"id": f"link-{n}", "url": url, "createdAt": AT}}
        for n, url in enumerate(urls)
    ]
    return [events[start:start + PER_PUSH] for start in range(0, LINKS, PER_PUSH)]


def run(limit_seconds: float = LIMIT_SECONDS) -> dict:
    """One backlog run; the figures as a dict."""
    servers = [PageServer(_article, PAGE_SECONDS) for _ in range(ORIGINS)]
    policy = FetchPolicy(allow=AllowList.parse(" ".join(server.host for server in servers)))
    process = make_link_processor(fetch=lambda url: fetch_page(url, policy))
    stop = threading.Event()
    lines = _CycleLines()
    with tempfile.TemporaryDirectory() as directory:
        store = _SnapshotBytes(LocalStore(directory))
        queue = LocalQueue()
        try:
            with contextlib.redirect_stdout(lines):
                worker = start_worker(store, queue, process=process, stop_event=stop,
                                      poll_seconds=0.05)
                started = time.perf_counter()
                for number, events in enumerate(_saves(servers)):
                    log.append(LocalStore(directory), ORG, events, batch_id=f"import-{number}",
                               author={"kind": "client", "id": "importer"})
                    queue.send(ORG)
                while lines.ended() < LINKS and time.perf_counter() - started < limit_seconds:
                    time.sleep(0.05)
                seconds = time.perf_counter() - started
                stop.set()
                worker.join(timeout=120)
        finally:
            for server in servers:
                server.close()
        db = orgstate.load(LocalStore(directory), ORG)
        placeholders = ", ".join("?" * len(TERMINAL))
        terminal = db.execute(
            f"SELECT count(*) FROM link_status WHERE status IN ({placeholders})", TERMINAL
        ).get
        finished = terminal == LINKS
        cycles = [c for c in lines.cycles if c["outcome"] != "nothing_to_do"]
        requests = store.counts()
        return {
            "links": LINKS,
            "origins": ORIGINS,
            "page_ms": PAGE_SECONDS * 1000,
            "terminal": terminal,
            "seconds_until_all_terminal": round(seconds, 1) if finished else None,
            "seconds_watched": round(seconds, 1),
            "links_per_second": round(terminal / seconds, 1),
            "goal_seconds": GOAL_SECONDS,
            "goal_met": finished and seconds <= GOAL_SECONDS,
            "cycles": len(cycles),
            "cycle_outcomes": dict(Counter(c["outcome"] for c in lines.cycles)),
            "commits_written": sum(c["commits_written"] for c in lines.cycles),
            "store_requests": {"total": sum(requests.values()), **requests},
            "snapshot_bytes_written": store.snapshot_bytes,
        }


def main() -> dict:
    return run()


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
