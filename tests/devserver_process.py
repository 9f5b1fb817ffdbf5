"""`python -m chalicelib.devserver` as a process of its own, as `make run` starts it."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from processes import stop

ROOT = Path(__file__).resolve().parent.parent
_ADDRESS = re.compile(r"^open (http://127\.0\.0\.1:\d+)/#token=(\S+)$")


@dataclass
class DevServer:
    url: str
    token: str
    output: list[str]


@contextmanager
def running_devserver(data_directory: Path, allow_hosts: str = "", timeout: float = 60):
    """Start the dev server on a free port over ``data_directory``; yield its
    printed address and token; stop it when the block ends."""
    env = {
        **os.environ,
        "LINKLOG_STORE": f"file://{data_directory}",
        "LINKLOG_QUEUE": "local",
        "LINKLOG_PORT": "0",
        "LINKLOG_ALLOW_HOSTS": allow_hosts,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("LINKLOG_JWT_SECRET", None)
    env.pop("LINKLOG_JWKS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.devserver"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    output: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if process.poll() is not None:
                    break
                continue
            output.append(line)
            found = _ADDRESS.match(line.strip())
            if found:
                yield DevServer(found.group(1), found.group(2), output)
                return
        raise AssertionError("the dev server printed no address:\n" + "".join(output))
    finally:
        stop(process)
