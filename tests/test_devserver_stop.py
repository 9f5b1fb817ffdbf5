"""Stopping `make run` in the middle of a cycle, with Ctrl-C or `kill`.

The worker finishes the cycle it is running: the links it has fetched are
committed, its lease is released, and the next start processes the rest at
once, not after LINKLOG_LEASE_SECONDS.
"""

import signal
import time

import pytest

from backlog import article, check_each_link_ended_once, push_bodies, terminal_events, wait_until
from chalicelib.lease import released
from chalicelib.log import read_commits
from chalicelib.store.local import LocalStore
from devserver_process import DevServer
from fetch_servers import PageServer, html

LINKS = 12
PAGE_SECONDS = 0.5
ENDED = "SELECT count(*) FROM link_status WHERE status IN ('completed', 'failed', 'cancelled')"


def slow(body: str):
    """A page that answers after PAGE_SECONDS: a cycle is still running when the stop comes."""
    route = html(body)

    def answer(handler) -> None:
        time.sleep(PAGE_SECONDS)
        route(handler)

    return answer


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_a_stop_mid_cycle_commits_what_the_cycle_did_and_releases_its_lease(tmp_path, how):
    pages = PageServer({f"/article/{n}": slow(article(n)) for n in range(LINKS)})
    urls = [f"{pages.url}/article/{n}" for n in range(LINKS)]
    # Two minutes of lease: a lease left held would stop the second server for all the test.
    env = {"LINKLOG_ALLOW_HOSTS": pages.url.split("/")[2], "LINKLOG_LEASE_SECONDS": "120"}
    try:
        server = DevServer(tmp_path / "data", env)
        try:
            for body in push_bodies(urls):
                server.push(body)
            wait_until(lambda: len(pages.requests) > 0, 60, "the first page fetched")
            server.process.send_signal(how)
            assert server.process.wait(timeout=120) == 0
        finally:
            server.stop()
        output = "".join(server.seen) + "".join(iter_lines(server))
        assert "Traceback" not in output, output

        store = LocalStore(str(tmp_path / "data"))
        done_before_the_stop = terminal_events(read_commits(store, "demo", after=0))
        assert done_before_the_stop, "the cycle in progress committed nothing"
        assert released(store, "demo") is not None, "the lease was left held"

        server = DevServer(tmp_path / "data", env)
        try:
            wait_until(lambda: server.query(ENDED) == [[LINKS]], 120, "every link ended")
            check_each_link_ended_once(server.pull_all(), {f"backlog-{n}" for n in range(LINKS)})
        finally:
            server.stop()
    finally:
        pages.close()


def iter_lines(server: DevServer):
    """What the server printed that the test has not read yet."""
    while not server.lines.empty():
        yield server.lines.get()
