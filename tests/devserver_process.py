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
from pathlib import Path

import requests

from chalicelib.auth import issue_token
from processes import stop

ROOT = Path(__file__).resolve().parent.parent
SECRET = "devserver-test-secret-long-enough-for-hs256"
SERVING = re.compile(r"linklog serving on (http://\S+)")


class DevServer:
    """``python -m chalicelib.devserver`` over ``data_dir``, on a free port,
    with a known JWT secret (so tokens outlive a restart). Its output is
    read all along (so the pipe never fills) and kept in ``lines``."""

    def __init__(self, data_dir: Path, env: dict[str, str]):
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chalicelib.devserver"],
            cwd=ROOT,
            env={
                **os.environ,
                "LINKLOG_STORE": f"file://{data_dir}",
                "LINKLOG_QUEUE": "local",
                "LINKLOG_PORT": "0",
                "LINKLOG_JWT_SECRET": SECRET,
                "PYTHONUNBUFFERED": "1",
                **env,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(
            target=lambda: [self.lines.put(line) for line in self.process.stdout], daemon=True
        ).start()
        self.url = self._wait_for_address()
        self.http = requests.Session()
        token = issue_token(SECRET, sub="tester", org="demo", lifetime_seconds=3600,
                            now=time.time())
        self.http.headers["Authorization"] = f"Bearer {token}"

    def _wait_for_address(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.seen.append(line)
            found = SERVING.search(line)
            if found:
                return found.group(1)
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

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lease released, as a crash or a power cut."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.http.close()

    def stop(self) -> None:
        stop(self.process)
        self.http.close()
