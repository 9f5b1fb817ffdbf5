"""Retries a user would expect, through real cycles: the production link
processor, the safe fetcher with a resolver the test controls, a page served
over real HTTP on 127.0.0.1, and the local store.

A name that does not resolve (a laptop offline, a site not yet in DNS) is
tried again on the documented schedule and completes once it resolves.
"""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest

from chalicelib import cycle
from chalicelib.links.addresses import AllowList
from chalicelib.links.fetch import FetchPolicy, fetch_page
from chalicelib.links.pipeline import make_link_processor
from chalicelib.state.queries import get_link
from clocks import T0, FakeClock, WallClock
from fetch_servers import PageServer, html
from processing_org import AT, client_commit
from statelog import replay

ORG = "acme"
ARTICLE = """<!doctype html><html><head><title>Proofing times</title></head><body>
<article><h1>Proofing times</h1><p>Dough proofs faster somewhere warm. Give it an hour
and a half in a warm kitchen, longer in a cold one, and watch the dough, not the clock.</p>
</article></body></html>"""


class Resolver:
    """Fails every lookup with ``error`` until a name is ``known``, then answers it."""

    def __init__(self, error: OSError):
        self.error = error
        self.known: dict[str, str] = {}
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.known:
            raise self.error
        return [self.known[host]]


@pytest.fixture
def pages():
    server = PageServer({"/proofing": html(ARTICLE)})
    yield server
    server.close()


def run(store, process, now):
    return cycle.run_cycle(
        store, ORG, process=process, holder="proc-a", clock=FakeClock(), now=now, emit=lambda line: None
    )


@pytest.mark.parametrize(
    "error",
    [
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
    ],
    ids=["name not known yet", "resolver offline"],
)
def test_a_dns_failure_is_retried_and_completes_once_the_name_resolves(local_store, pages, error):
    resolver = Resolver(error)
    policy = FetchPolicy(allow=AllowList.parse(f"later.test:{pages.port}"), resolve=resolver)
    process = make_link_processor(fetch=lambda url: fetch_page(url, policy))
    client_commit(local_store, ORG, "v1.LinkCreated",
                  {"id": "l1", "url": f"http://later.test:{pages.port}/proofing", "createdAt": AT})
    now = WallClock()

    first = run(local_store, process, now)
    assert first.links_failed == ("l1",)
    link = get_link(replay(local_store, ORG), "l1")
    assert (link["status"], link["error"]["code"], link["error"]["retryable"]) == ("failed", "dns_failure", True)
    assert first.next_due == T0 + timedelta(minutes=1)
    assert run(local_store, process, now).outcome == "nothing_to_do", "not before its time"

    now.at = first.next_due
    second = run(local_store, process, now)
    assert second.links_failed == ("l1",)
    assert second.next_due == now.at + timedelta(minutes=6)

    resolver.known["later.test"] = "127.0.0.1"
    now.at = second.next_due
    third = run(local_store, process, now)

    assert third.links_done == ("l1",)
    assert third.next_due is None
    link = get_link(replay(local_store, ORG), "l1")
    assert (link["status"], link["error"], link["attempts"]) == ("completed", None, 3)
    assert link["metadata"]["title"] == "Proofing times"
    assert resolver.asked == ["later.test"] * 3
    assert pages.paths() == ["/proofing"]
