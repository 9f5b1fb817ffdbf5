"""A page server for the `linklog` command's tests, a way to run the command
as a user does, and a proxy that holds a push's answer. The dev server they
talk to is tests/devserver_process.py's, started with this module's SECRET."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from click.testing import CliRunner

from chalicelib.auth import issue_token
from linklog.cli import main
from fetch_servers import respond

ROOT = Path(__file__).resolve().parent.parent
SECRET = "cli-test-secret-long-enough-for-hs256-signing"


class Pages:
    """Article pages on 127.0.0.1: any path is a page titled after it; /gone/… is a 404."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.startswith("/gone/"):
                    body, status = b"gone", 404
                else:
                    words = self.path.strip("/").replace("/", " ").replace("-", " ")
                    body = (
                        f"<!doctype html><html><head><title>Page {words}</title></head><body><article>"
                        f"<h1>Page {words}</h1><p>A long article about {words} and sourdough bread, "
                        "flour, water, patience and the slow craft of baking at home every week.</p>"
                        "<p>Keep a little starter back each time you bake, and feed it again.</p>"
                        "</article></body></html>"
                    ).encode()
                    status = 200
                respond(self, status, body, {"Content-Type": "text/html; charset=utf-8"})

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.allow = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def token(org: str) -> str:
    return issue_token(SECRET, sub="tester", org=org, lifetime_seconds=3600, now=time.time())


class Linklog:
    """The `linklog` command for one user: a home directory, a server, an org."""

    def __init__(self, home: Path, server: str, org: str, allow: str = ""):
        self.home = home
        self.env = {
            "LINKLOG_HOME": str(home),
            "LINKLOG_SERVER": server,
            "LINKLOG_TOKEN": token(org),
            "LINKLOG_ALLOW_HOSTS": allow,
        }

    def __call__(self, *args: str, ok: bool = True):
        result = CliRunner().invoke(main, list(args), env=self.env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, f"linklog {' '.join(args)} failed:\n{result.output}"
        return result

    def subprocess(self, *args: str) -> subprocess.Popen:
        """The command as a process of its own (to kill it)."""
        return subprocess.Popen(
            [sys.executable, "-m", "linklog", *args], cwd=ROOT, env={**os.environ, **self.env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )

    def outbox_event_ids(self) -> set[str]:
        """The ids of the events waiting in the outbox."""
        import apsw

        with apsw.Connection(str(self.home / "client.sqlite"), flags=apsw.SQLITE_OPEN_READONLY) as db:
            return {row[0] for row in db.execute("SELECT json_extract(event, '$.id') FROM outbox")}

    def view(self):
        import apsw

        return apsw.Connection(str(self.home / "view.sqlite"), flags=apsw.SQLITE_OPEN_READONLY)


class HoldingProxy:
    """A proxy in front of the dev server that, while ``hold`` is set, keeps
    the answer to a push after the server committed it: the client sees a
    push whose outcome it cannot know, as after a timeout or a crash."""

    def __init__(self, upstream: str):
        import requests

        self.hold = threading.Event()
        self.held = threading.Event()
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                answer = requests.request(method, upstream + self.path, data=body, headers=headers, timeout=60)
                if method == "POST" and proxy.hold.is_set():
                    proxy.held.set()
                    proxy.release.wait(60)
                try:
                    self.send_response(answer.status_code)
                    for name in ("Content-Type", "Retry-After"):
                        if name in answer.headers:
                            self.send_header(name, answer.headers[name])
                    self.send_header("Content-Length", str(len(answer.content)))
                    self.end_headers()
                    self.wfile.write(answer.content)
                except OSError:
                    pass  # the client is gone

            def do_GET(self):
                self._forward("GET")

            def do_POST(self):
                self._forward("POST")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
