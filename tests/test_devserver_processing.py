"""`make run`: a link saved with the printed curl line gets processed, unasked.

The dev server runs as `make run` runs it, a process of its own on a local
directory store; the page it fetches is served on 127.0.0.1, allow-listed as
a user would. Nothing but the printed request (with the page's address in
place of the public example URL) and polling the pull API happens.
"""

import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from processes import free_port, stop

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {"v1.LinkProcessingCompleted", "v1.LinkProcessingFailed"}
ARTICLE = b"""<!doctype html><html lang="en"><head>
<title>Tending a sourdough starter</title>
<meta name="description" content="Flour, water and patience.">
</head><body><article><h1>Tending a sourdough starter</h1>
<p>A starter is a culture of wild yeast and bacteria that lives in flour and water.
Feed it every day with equal weights of flour and water and keep it somewhere warm.</p>
<p>After a week it rises and falls on a schedule, smells pleasantly sour, and is ready
to leaven bread. Keep a little back each time you bake, and feed it again.</p>
</article></body></html>"""


class Page(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(ARTICLE)))
        self.end_headers()
        self.wfile.write(ARTICLE)

    def log_message(self, *args):
        pass


@pytest.fixture
def page_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def devserver(tmp_path, page_server):
    """The dev server process; yields (base URL, queue of its output lines)."""
    port = free_port()
    env = {
        **os.environ,
        "LINKLOG_STORE": f"file://{tmp_path / 'data'}",
        "LINKLOG_QUEUE": "local",
        "LINKLOG_PORT": str(port),
        "LINKLOG_ALLOW_HOSTS": f"127.0.0.1:{page_server}",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("LINKLOG_JWT_SECRET", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.devserver"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                              daemon=True)
    reader.start()
    try:
        yield f"http://127.0.0.1:{port}", lines
    finally:
        stop(process)


def printed_curl_line(lines, seen, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if line.lstrip().startswith("curl "):
            return line.strip()
    raise AssertionError("the dev server printed no curl line:\n" + "".join(seen))


def request_of(curl_line):
    """Method, URL, headers and body of a curl command line."""
    words = shlex.split(curl_line.rstrip("\\ "))[1:]
    method, url, headers, body = None, None, {}, None
    at = 0
    while at < len(words):
        word = words[at]
        if word in ("-X", "--request"):
            method, at = words[at + 1], at + 2
        elif word in ("-H", "--header"):
            name, _, value = words[at + 1].partition(":")
            headers[name.strip()] = value.strip()
            at += 2
        elif word in ("-d", "--data", "--data-raw", "--data-binary", "--json"):
            body, at = words[at + 1], at + 2
            if word == "--json":
                headers.setdefault("Content-Type", "application/json")
        elif word.startswith("-"):
            at += 1
        else:
            url, at = word, at + 1
    return method or ("POST" if body is not None else "GET"), url, headers, body


def with_page_url(body, page_url):
    """The push body with each saved link's URL pointing at our page."""
    payload = json.loads(body)
    for event in payload["events"]:
        if event["name"] == "v1.LinkCreated":
            event["args"]["url"] = page_url
    return json.dumps(payload)


def test_a_link_saved_with_the_printed_curl_line_is_processed(devserver, page_server):
    base, lines = devserver
    seen = []
    method, url, headers, body = request_of(printed_curl_line(lines, seen))
    assert url.startswith(base), f"the curl line does not call {base}: {url}"
    page_url = f"http://127.0.0.1:{page_server}/sourdough"

    response = requests.request(method, url, headers=headers,
                                data=with_page_url(body, page_url), timeout=30)
    assert response.status_code == 200, response.text
    link_ids = {event["args"]["id"] for event in json.loads(body)["events"]
                if event["name"] == "v1.LinkCreated"}

    auth = {"Authorization": headers["Authorization"]}
    deadline = time.monotonic() + 60
    terminal = {}
    while time.monotonic() < deadline and set(terminal) != link_ids:
        pulled = requests.get(f"{base}/v1/sync/pull", params={"since": 0},
                              headers=auth, timeout=30)
        assert pulled.status_code == 200, pulled.text
        terminal = {
            event["args"]["linkId"]: event
            for commit in pulled.json()["commits"]
            for event in commit["events"]
            if event["name"] in TERMINAL
        }
        time.sleep(0.1)
    while not lines.empty():
        seen.append(lines.get())
    assert set(terminal) == link_ids, "no terminal status; server said:\n" + "".join(seen)
    assert {event["name"] for event in terminal.values()} == {"v1.LinkProcessingCompleted"}
    titles = {
        event["args"].get("title")
        for commit in pulled.json()["commits"]
        for event in commit["events"]
        if event["name"] == "v1.LinkMetadataFetched"
    }
    assert titles == {"Tending a sourdough starter"}
