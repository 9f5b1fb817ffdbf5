"""`make run`: a link saved with the printed curl line gets processed, unasked.

The dev server runs as `make run` runs it, a process of its own on a local
directory store; the page it fetches is served on 127.0.0.1, allow-listed as
a user would. Nothing but the printed request, run through a shell (with the
page's address in place of the public example URL), other pushes a client
makes, and polling the read API happens.
"""

import json
import queue
import shlex
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from devserver_process import running_devserver
from fetch_servers import respond

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
    """The article on every path but those in the server's ``missing``, which get 404."""

    def do_GET(self):
        status, body = (404, b"not here yet") if self.path in self.server.missing else (200, ARTICLE)
        respond(self, status, body, {"Content-Type": "text/html; charset=utf-8"})

    def log_message(self, *args):
        pass


@pytest.fixture
def pages():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    server.missing = set()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def page_server(pages):
    return pages.server_address[1]


@pytest.fixture
def devserver(tmp_path, page_server):
    """The dev server as `make run` starts it; yields (base URL, queue of the
    output lines it printed after its address)."""
    with running_devserver(tmp_path / "data", f"127.0.0.1:{page_server}") as server:
        yield server.url, server.lines


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


def link_when(base, auth, link_id, statuses, timeout=60.0):
    """GET /v1/links/{link_id} until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    link = None
    while time.monotonic() < deadline:
        response = requests.get(f"{base}/v1/links/{link_id}", headers=auth, timeout=30)
        assert response.status_code in (200, 404), response.text
        link = response.json() if response.status_code == 200 else None
        if link is not None and link["status"] in statuses:
            return link
        time.sleep(0.1)
    raise AssertionError(f"{link_id} never reached {statuses}: {link}")


def test_the_printed_curl_line_saves_a_link_each_time_it_is_run(devserver, page_server):
    base, lines = devserver
    seen = []
    line = printed_curl_line(lines, seen)
    _, url, headers, _ = request_of(line)
    assert url.startswith(base), f"the curl line does not call {base}: {url}"
    assert line.count("https://example.com/") == 1
    page_url = f"http://127.0.0.1:{page_server}/sourdough"
    runnable = line.replace("https://example.com/", page_url)

    answers = []
    for shell in ("sh", "bash"):
        ran = subprocess.run([shell, "-c", runnable], capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        answers.append(json.loads(ran.stdout))
    # The processor may commit in between; a repeated batch would answer the same version.
    assert answers[0]["version"] < answers[1]["version"], "each run commits anew"

    auth = {"Authorization": headers["Authorization"]}
    pulled = requests.get(f"{base}/v1/sync/pull", params={"since": 0}, headers=auth, timeout=30).json()
    saves = [event for commit in pulled["commits"] if commit["author"]["kind"] == "client"
             for event in commit["events"]]
    assert [event["name"] for event in saves] == ["v1.LinkCreated"] * 2
    assert len({event["id"] for event in saves}) == 2
    first, second = (event["args"]["id"] for event in saves)
    assert first != second

    # The same page saved twice is one link, reached by either id.
    for link_id in (first, second):
        link = link_when(base, auth, link_id, {"completed", "failed"})
        assert (link["id"], link["status"]) == (first, "completed"), link
        assert link["metadata"]["title"] == "Tending a sourdough starter"


def test_a_failed_link_saved_again_ends_completed_once_its_page_answers(devserver, pages, page_server):
    base, lines = devserver
    _, url, headers, _ = request_of(printed_curl_line(lines, []))
    page_url = f"http://127.0.0.1:{page_server}/later"
    pages.missing.add("/later")

    def save(link_id):
        at = "2026-11-23T20:00:00Z"
        body = {"batch_id": f"batch-{link_id}", "client_id": "phone", "events": [
            {"id": f"event-{link_id}", "name": "v1.LinkCreated",
             "args": {"id": link_id, "url": page_url, "createdAt": at}, "at": at}]}
        response = requests.post(url, headers=headers, data=json.dumps(body), timeout=30)
        assert response.status_code == 200, response.text

    auth = {"Authorization": headers["Authorization"]}
    save("first")
    failed = link_when(base, auth, "first", {"completed", "failed"})
    assert (failed["status"], failed["error"]["code"], failed["error"]["retryable"]) == (
        "failed", "http_404", False)

    pages.missing.clear()
    save("again")
    link = link_when(base, auth, "again", {"completed"})
    assert (link["id"], link["error"], link["attempts"]) == ("first", None, 1)
    assert link["metadata"]["title"] == "Tending a sourdough starter"
    assert link_when(base, auth, "first", {"completed"})["summary"]
