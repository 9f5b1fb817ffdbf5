"""A saved library larger than many cycles, served as real pages, for the
backlog tests: sites on several ports of 127.0.0.1, the push bodies that
save their articles, and the check that every link ended exactly once.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from typing import Callable, Iterator

from fetch_servers import PageServer, html

TERMINAL_EVENTS = {"v1.LinkProcessingCompleted", "v1.LinkProcessingFailed"}
SAVED_AT = "2026-11-23T20:00:00Z"


def article(n: int) -> str:
    """A small real article page, its title naming ``n``."""
    return f"""<!doctype html><html lang="en"><head>
<title>Field notes {n}: keeping bees through the winter</title>
<meta name="description" content="What hive {n} needed in the cold months.">
</head><body><article><h1>Field notes {n}</h1>
<p>Hive {n} went into the winter heavy with stores. The bees cluster when it is
cold and eat their way slowly upwards through the honey they packed in autumn.</p>
<p>Check the weight of the hive on a mild day, keep the entrance clear of dead
bees and snow, and never open the hive for long while the cluster is tight.</p>
</article></body></html>"""


@contextmanager
def sites(links: int, origins: int) -> Iterator[list[str]]:
    """``origins`` page servers; yields the URL of article n for n < ``links``
    (article n is on server n % origins)."""
    servers = [
        PageServer({f"/article/{n}": html(article(n)) for n in range(first, links, origins)})
        for first in range(origins)
    ]
    try:
        yield [f"{servers[n % origins].url}/article/{n}" for n in range(links)]
    finally:
        for server in servers:
            server.close()


def allow_list(urls: list[str]) -> str:
    """A LINKLOG_ALLOW_HOSTS value opening exactly the hosts and ports of ``urls``."""
    return " ".join(sorted({url.split("/")[2] for url in urls}))


def push_bodies(urls: list[str], per_push: int = 500, prefix: str = "backlog") -> list[dict]:
    """Push bodies saving each URL as a link (``{prefix}-{n}``), ``per_push`` a push."""
    bodies = []
    for start in range(0, len(urls), per_push):
        events = [
            {
                "id": f"{prefix}-event-{n}",
                "name": "v1.LinkCreated",
                "args": {"id": f"{prefix}-{n}", "url": urls[n], "createdAt": SAVED_AT},
                "at": SAVED_AT,
            }
            for n in range(start, min(start + per_push, len(urls)))
        ]
        bodies.append({"batch_id": f"{prefix}-batch-{start}", "client_id": "importer",
                       "events": events})
    return bodies


def terminal_events(commits: list[dict]) -> Counter:
    """How many terminal processing events each link has in ``commits``."""
    return Counter(
        event["args"]["linkId"]
        for commit in commits
        for event in commit["events"]
        if event["name"] in TERMINAL_EVENTS
    )


def check_each_link_ended_once(commits: list[dict], link_ids: set[str]) -> None:
    """Every saved link has exactly one terminal event, and it is a completion."""
    ended = terminal_events(commits)
    assert set(ended) == link_ids, f"{len(link_ids - set(ended))} links never ended"
    assert set(ended.values()) == {1}, {link: n for link, n in ended.items() if n != 1}
    failed = [event["args"] for commit in commits for event in commit["events"]
              if event["name"] == "v1.LinkProcessingFailed"]
    assert failed == [], failed[:5]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; the timeout only stops a hung test."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.2)
