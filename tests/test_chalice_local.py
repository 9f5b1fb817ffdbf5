"""`chalice local` processes saved links, as `make run` does.

The Chalice CLI serves the app (with its default autoreloader) on a free
port over a local directory store and the local queue; a link to a page
served on 127.0.0.1 is saved through the API and read back completed, with
no other process running. The worker starts once, however many requests
come.
"""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from fetch_servers import PageServer, html
from processes import free_port

from chalicelib.auth import issue_token

ROOT = Path(__file__).resolve().parent.parent
SECRET = "a-secret-for-chalice-local-long-enough"
STARTED = "local worker started"
PAGE = (b"<!doctype html><html><head><title>Shaping a boule</title></head><body><article>"
        b"<p>Tip the dough onto an unfloured counter and pull it towards you to build tension.</p>"
        b"<p>A taut skin holds the loaf's shape in the oven and gives an even, open crumb.</p>"
        b"</article></body></html>")


@pytest.fixture
def page_port():
    server = PageServer({"/boule": html(PAGE.decode())})
    yield server.port
    server.close()


@pytest.fixture
def chalice_local(tmp_path, page_port):
    """`chalice local --port P` in the project; yields (base URL, its output lines)."""
    port = free_port()
    env = {**os.environ, "LINKLOG_STORE": f"file://{tmp_path / 'data'}", "LINKLOG_QUEUE": "local",
           "LINKLOG_JWT_SECRET": SECRET, "LINKLOG_ALLOW_HOSTS": f"127.0.0.1:{page_port}",
           "PYTHONUNBUFFERED": "1"}
    for name in ("LINKLOG_JWKS_URL", "LINKLOG_JWT_SECRET_FROM"):
        env.pop(name, None)
    # Its own session: the autoreloader runs the server in a child process.
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "chalice"), "local", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                     daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, drain(lines)
            time.sleep(0.2)
        yield base, lines
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def drain(lines: queue.Queue) -> str:
    seen = []
    while not lines.empty():
        seen.append(lines.get())
    return "".join(seen)


def test_a_link_saved_under_chalice_local_is_completed(chalice_local, page_port):
    base, lines = chalice_local
    now = time.time()
    auth = {"Authorization": "Bearer " + issue_token(SECRET, sub="u", org="acme",
                                                      lifetime_seconds=600, now=now)}
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    pushed = requests.post(f"{base}/v1/sync/push", headers=auth, timeout=30, json={
        "batch_id": "batch-1", "client_id": "laptop",
        "events": [{"id": "event-1", "name": "v1.LinkCreated", "at": at,
                    "args": {"id": "link-1", "url": f"http://127.0.0.1:{page_port}/boule",
                             "createdAt": at}}],
    })
    assert pushed.status_code == 200, pushed.text

    deadline = time.monotonic() + 60
    link = {}
    while time.monotonic() < deadline and link.get("status") not in ("completed", "failed"):
        answer = requests.get(f"{base}/v1/links/link-1", headers=auth, timeout=30)
        if answer.status_code == 200:
            link = answer.json()
        time.sleep(0.2)
    output = drain(lines)
    assert link.get("status") == "completed", (link, output)
    assert link["metadata"]["title"] == "Shaping a boule"
    assert output.count(STARTED) == 1, output
