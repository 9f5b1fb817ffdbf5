"""The read-only SQL route against a query built to answer a gigabyte.

Starts the dev server (``python -m chalicelib.devserver``, its own process,
over a fresh local store) and sends the query of issue 8: a thousand rows of
a 1,000,000-character text. Without a byte cap it answered a 1 GB body after
16 s, the server peaking near 3 GB. Reports the answer's status, size, rows
and truncation, the seconds it took, and the server's peak resident memory
(VmHWM, Linux) before and after the query.

    python -m bench.bench_query
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
GIGABYTE_QUERY = (
    "WITH big(b) AS MATERIALIZED (SELECT hex(zeroblob(500000))), "
    "c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 1000) SELECT b FROM big, c"
)
STARTUP_LINES = 6


def _peak_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) // 1024


def main() -> dict:
    with tempfile.TemporaryDirectory() as data:
        env = {
            name: value for name, value in os.environ.items()
            if name not in ("LINKLOG_JWT_SECRET", "LINKLOG_JWKS_URL")
        }
        env.update(LINKLOG_STORE=f"file://{data}", LINKLOG_PORT="0", PYTHONUNBUFFERED="1")
        server = subprocess.Popen(
            [sys.executable, "-m", "chalicelib.devserver"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            # The dev server prints its address, then the token on the line
            # after "development token".
            lines = [server.stdout.readline().strip() for _ in range(STARTUP_LINES)]
            url = re.search(r"serving on (\S+)", lines[0]).group(1)
            token = lines[next(i for i, line in enumerate(lines) if line.startswith("development token")) + 1]
            headers = {"Authorization": f"Bearer {token}"}
            requests.post(f"{url}/v1/query", json={"sql": "SELECT 1"}, headers=headers, timeout=60).raise_for_status()
            before = _peak_mb(server.pid)
            started = time.perf_counter()
            answer = requests.post(f"{url}/v1/query", json={"sql": GIGABYTE_QUERY}, headers=headers, timeout=600)
            seconds = time.perf_counter() - started
            document = answer.json()
            return {
                "status": answer.status_code,
                "body_bytes": len(answer.content),
                "seconds": round(seconds, 2),
                "rows": len(document.get("rows", [])),
                "truncated": document.get("truncated"),
                "truncated_reason": document.get("truncated_reason"),
                "server_peak_rss_mb_before": before,
                "server_peak_rss_mb_after": _peak_mb(server.pid),
            }
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
