"""A 10,000-bookmark Netscape file imported with one `linklog import` through
the dev server (what `make run` runs), then processed to the end.

The server runs in this process as `make run` runs it (chalice.local, the
local worker, a local directory store), with its store wrapped in a
CountingStore so every request is counted; the pages are served on
127.0.0.1 and allow-listed. The import is the real command in a process of
its own. Figures: the file's size, seconds until the command returns,
seconds until every link is terminal (or how many were, when it gave up),
store requests by kind during the import and in all. The wait is capped
(``LINKLOG_BENCH_IMPORT_WAIT`` seconds).

    python -m bench.bench_import          # LINKLOG_BENCH_IMPORT_LINKS=1000 for a quick run
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.pages import PageServer

LINKS = int(os.environ.get("LINKLOG_BENCH_IMPORT_LINKS", "10000"))
WAIT_SECONDS = float(os.environ.get("LINKLOG_BENCH_IMPORT_WAIT", "300"))
SECRET = "bench-import-secret-long-enough-for-hs256"
ROOT = Path(__file__).resolve().parent.parent
TERMINAL_SQL = """SELECT count(*) FROM link_status
                  WHERE status IN ('completed', 'cancelled')
                     OR (status = 'failed' AND next_retry_at IS NULL)"""


def article(path: str) -> bytes:
    words = path.strip("/").replace("/", " ")
    return (f"<!doctype html><title>Article {words}</title><article><h1>Article {words}</h1>"
            f"<p>Notes on {words}: bread, flour, water and patience, kept for later.</p>"
            "</article>").encode()


def _quiet_handler():
    from chalice.local import ChaliceRequestHandler

    class Quiet(ChaliceRequestHandler):
        def log_message(self, *args):
            pass

    return Quiet


def bookmark_file(pages: str, count: int) -> str:
    lines = ["<!DOCTYPE NETSCAPE-Bookmark-file-1>", "<TITLE>Bookmarks</TITLE>", "<DL><p>"]
    for folder in range(10):
        lines += [f"<DT><H3>Folder {folder}</H3>", "<DL><p>"]
        for i in range(folder, count, 10):
            lines.append(f'<DT><A HREF="{pages}/a/{i}" ADD_DATE="{1_500_000_000 + i * 60}" '
                         f'TAGS="t{i % 50}">Article {i}</A>')
        lines.append("</DL><p>")
    return "\n".join([*lines, "</DL><p>"]) + "\n"


def serve(data: Path, allow: str):
    """The dev server's API and worker over ``data``, in this process; (URL, counting store)."""
    os.environ["LINKLOG_ALLOW_HOSTS"] = allow
    import functools

    from chalice.config import Config
    from chalice.local import create_local_server

    import app as api
    from chalicelib import config
    from chalicelib.links.pipeline import make_link_processor
    from chalicelib.queue import LocalQueue
    from chalicelib.store import CountingStore, LocalStore
    from chalicelib.worker import start_worker

    store = CountingStore(LocalStore(str(data)))
    queue = LocalQueue()
    settings = config.Settings(store=f"file://{data}", jwt_secret=SECRET)
    api.use_services(api.build_services(settings, store=store, queue=queue))
    start_worker(store, queue, process=make_link_processor())
    server = create_local_server(api.app, Config(), "127.0.0.1", 0)
    server.server.RequestHandlerClass = functools.partial(_quiet_handler(), app_object=api.app, config=Config())
    server.server.socket.listen(128)
    threading.Thread(target=server.server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server.server_address[1]}", store


def terminal_count(url: str, token: str) -> int:
    answer = requests.post(f"{url}/v1/query", json={"sql": TERMINAL_SQL},
                           headers={"Authorization": f"Bearer {token}"}, timeout=60)
    answer.raise_for_status()
    return answer.json()["rows"][0][0]


def main() -> dict:
    # The worker prints each cycle's log line; the figures alone go to stdout.
    with contextlib.redirect_stdout(sys.stderr):
        return _run()


def _run() -> dict:
    from chalicelib.auth import issue_token

    with PageServer(article) as pages, tempfile.TemporaryDirectory() as scratch:
        page_url, allow = pages.url(""), pages.host
        scratch = Path(scratch)
        url, store = serve(scratch / "data", allow)
        token = issue_token(SECRET, sub="bench", org="bench", lifetime_seconds=86_400, now=time.time())
        source = scratch / "bookmarks.html"
        source.write_text(bookmark_file(page_url, LINKS), encoding="utf-8")
        env = {**os.environ, "LINKLOG_HOME": str(scratch / "home"), "LINKLOG_SERVER": url,
               "LINKLOG_TOKEN": token, "LINKLOG_ALLOW_HOSTS": allow}
        started = time.perf_counter()
        command = subprocess.run([sys.executable, "-m", "linklog", "import", str(source)], cwd=ROOT,
                                 env=env, capture_output=True, text=True)
        imported_seconds = time.perf_counter() - started
        requests_at_import = store.counts()
        if command.returncode != 0:
            raise RuntimeError(f"linklog import failed: {command.stdout}{command.stderr}")
        done, terminal = None, 0
        while time.perf_counter() - started < WAIT_SECONDS:
            terminal = terminal_count(url, token)
            if terminal >= LINKS:
                done = time.perf_counter() - started
                break
            time.sleep(2)
        return {
            "links": LINKS,
            "file_bytes": source.stat().st_size,
            "import_seconds": round(imported_seconds, 1),
            "summary": command.stdout.strip().splitlines(),
            "all_terminal_seconds": round(done, 1) if done is not None else None,
            "terminal_links": terminal,
            "gave_up_after_seconds": None if done is not None else WAIT_SECONDS,
            "store_requests_during_import": requests_at_import,
            "store_requests_total": store.counts(),
        }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
