"""`make run` killed in the middle of a 1,000-link backlog, then started
again: every link still ends exactly once, with no further push (issue 8).

The dev server is SIGKILLed (no lease released, links left pending, maybe a
commit half-way) once a hundred links have ended, and started again over the
same directory. A short LINKLOG_LEASE_SECONDS lets the new process take over
the dead one's lease after seconds instead of two minutes.
"""

from backlog import allow_list, check_each_link_ended_once, push_bodies, sites, wait_until
from devserver_process import DevServer

LINKS = 1_000
ORIGINS = 4
ENDED = "SELECT count(*) FROM link_status WHERE status IN ('completed', 'failed', 'cancelled')"


def test_a_backlog_survives_a_killed_server_with_no_further_push(tmp_path):
    with sites(LINKS, ORIGINS) as urls:
        env = {"LINKLOG_ALLOW_HOSTS": allow_list(urls), "LINKLOG_LEASE_SECONDS": "3"}
        server = DevServer(tmp_path / "data", env)
        try:
            for body in push_bodies(urls):
                server.push(body)
            wait_until(lambda: server.query(ENDED)[0][0] >= 100, 300, "a hundred links ended")
        finally:
            server.kill()

        server = DevServer(tmp_path / "data", env)
        try:
            assert server.query(ENDED)[0][0] < LINKS, "the kill came too late to test anything"
            wait_until(lambda: server.query(ENDED) == [[LINKS]], 300, "every link ended")
            check_each_link_ended_once(server.pull_all(), {f"backlog-{n}" for n in range(LINKS)})
        finally:
            server.stop()
