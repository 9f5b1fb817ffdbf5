"""The dev server (`make run`) as a process of its own, for end-to-end tests."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import requests
from processes import stop

from chalicelib.log import LIST_PAGE, read_commits
from chalicelib.store import open_store

ROOT = Path(__file__).resolve().parent.parent
SECRET = "devserver-test-secret-long-enough-for-hs256"
ADDRESS = re.compile(r"^open (http://\S+)/#token=(\S+)$")


class DevServer:
    """``python -m chalicelib.devserver`` over ``data_dir``, on a free port,
    with a known JWT secret (so tokens outlive a restart), or with ``secret=None``
    the one it keeps in the data directory, as `make run` does. Its output is
    read all along (so the pipe never fills) and kept in ``lines``; ``url``
    and ``token`` are the address and token it prints."""

    def __init__(self, data_dir: Path, env: dict[str, str], *, secret: str | None = SECRET):
        self.data_dir = data_dir
        self.environment = {
            **os.environ,
            "LINKLOG_STORE": f"file://{data_dir}",
            "LINKLOG_QUEUE": "local",
            "LINKLOG_PORT": "0",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.environment.pop("LINKLOG_JWKS_URL", None)
        if secret is None:
            self.environment.pop("LINKLOG_JWT_SECRET", None)
        else:
            self.environment["LINKLOG_JWT_SECRET"] = secret
        self._start()

    def _start(self) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chalicelib.devserver"],
            cwd=ROOT,
            env=self.environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(
            target=lambda: [self.lines.put(line) for line in self.process.stdout], daemon=True
        ).start()
        self.url, self.token = self._wait_for_address()
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    def restart(self) -> None:
        """Start it again, once stopped or killed, on the port it had: a
        client that kept its address finds it there."""
        self.environment["LINKLOG_PORT"] = self.url.rsplit(":", 1)[1]
        self._start()

    def _wait_for_address(self, timeout: float = 60) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.seen.append(line)
            found = ADDRESS.match(line.strip())
            if found:
                return found.group(1), found.group(2)
        self.stop()
        raise AssertionError("the dev server did not start:\n" + "".join(self.seen))

    def push(self, body: dict) -> dict:
        answer = self.http.post(f"{self.url}/v1/sync/push", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def query(self, sql: str) -> list[list]:
        answer = self.http.post(f"{self.url}/v1/query", json={"sql": sql}, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.json()["rows"]

    def pull_all(self) -> list[dict]:
        """Every commit of the org's log, page by page."""
        commits, since = [], 0
        while True:
            answer = self.http.get(f"{self.url}/v1/sync/pull", params={"since": since},
                                   timeout=60)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            commits += page["commits"]
            if not page["has_more"]:
                return commits
            since = page["commits"][-1]["version"]

    def log_events(self, org: str) -> list[dict]:
        """Every event of every commit in ``org``'s log, straight from the store."""
        store = open_store(f"file://{self.data_dir}")
        events, since = [], 0
        while True:
            commits = read_commits(store, org, since, limit=LIST_PAGE)
            for commit in commits:
                events.extend(commit["events"])
            if len(commits) < LIST_PAGE:
                return events
            since = commits[-1]["version"]

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lease released, as a crash or a power cut."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.http.close()

    def stop(self) -> None:
        stop(self.process)
        self.http.close()


@contextmanager
def running_devserver(data_dir: Path, allow_hosts: str = "", env: dict[str, str] | None = None):
    """The dev server as `make run` starts it (its own kept secret, ``env``
    added to its environment), stopped when the block ends."""
    server = DevServer(data_dir, {"LINKLOG_ALLOW_HOSTS": allow_hosts, **(env or {})}, secret=None)
    try:
        yield server
    finally:
        server.stop()
