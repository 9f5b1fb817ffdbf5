"""`make run` drains a backlog of 1,000 links with no further push (issue 8).

The dev server runs as `make run` runs it, a process of its own over a local
directory store; the links are real article pages on four local sites (so
the per-origin politeness does not make the test slow). Two pushes of 500
links each, then nothing but reads: every link must end exactly once.
The crash test (a SIGKILL mid-backlog) is in test_backlog_restart.py, so
pytest-xdist (--dist loadfile) can run the two at the same time.
"""

from backlog import allow_list, check_each_link_ended_once, push_bodies, sites, wait_until
from devserver_process import DevServer

LINKS = 1_000
ORIGINS = 4
ENDED = "SELECT count(*) FROM link_status WHERE status IN ('completed', 'failed', 'cancelled')"


def test_two_pushes_of_500_links_all_end_with_no_further_push(tmp_path):
    with sites(LINKS, ORIGINS) as urls:
        server = DevServer(tmp_path / "data", {"LINKLOG_ALLOW_HOSTS": allow_list(urls)})
        try:
            bodies = push_bodies(urls)
            for body in bodies:
                server.push(body)
            wait_until(lambda: server.query(ENDED) == [[LINKS]], 300, "every link ended")
            check_each_link_ended_once(server.pull_all(), {f"backlog-{n}" for n in range(LINKS)})
            assert server.query("SELECT count(*) FROM links") == [[LINKS]]
        finally:
            server.stop()
