"""Writers racing to push to one org, each with its own index as separate
Lambda containers have, through a store that fails 10% of its requests:
every batch lands exactly once, at dense versions, answered with the
version it holds. As threads, and as separate processes over moto's server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chalicelib.log import find_head, read_commits
from chalicelib.store.motoserver import moto_client
from conftest import fresh_bucket_name
from processes import stop
from push_writer import ORG, batch_id, open_store, push_batches

WRITERS = 4
BATCHES = 6
FAIL_RATE = 0.1
WRITER_SCRIPT = Path(__file__).resolve().parent / "push_writer.py"


def assert_each_batch_once(store, answered: dict[str, int]) -> None:
    expected = {batch_id(w, n) for w in range(WRITERS) for n in range(BATCHES)}
    commits = read_commits(store, ORG, 0)
    assert [c["version"] for c in commits] == list(range(1, len(expected) + 1))
    assert sorted(c["batch_id"] for c in commits) == sorted(expected)
    assert {c["batch_id"]: c["version"] for c in commits} == answered
    assert find_head(store, ORG) == len(expected)


@pytest.mark.parametrize("backend", ["local", "server"])
def test_writers_racing_as_threads_commit_each_batch_once(request, backend):
    store = request.getfixturevalue(f"{backend}_store")
    start = threading.Barrier(WRITERS)

    def write(writer: int) -> dict[str, int]:
        start.wait()
        return push_batches(store, writer, BATCHES, FAIL_RATE)

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        answered = {k: v for versions in pool.map(write, range(WRITERS)) for k, v in versions.items()}

    assert_each_batch_once(store, answered)


@pytest.mark.parametrize("backend", ["local", "server"])
def test_writers_racing_as_processes_commit_each_batch_once(tmp_path, moto_server, backend):
    if backend == "local":
        spec = f"file://{tmp_path / 'store'}"
    else:
        bucket = fresh_bucket_name()
        moto_client(moto_server).create_bucket(Bucket=bucket)
        spec = f"s3://{bucket}@{moto_server}"
    writers = [
        subprocess.Popen(
            [sys.executable, str(WRITER_SCRIPT), spec, str(w), str(BATCHES), str(FAIL_RATE)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for w in range(WRITERS)
    ]
    try:
        for writer in writers:
            assert writer.stdout.readline().strip() == "READY"
        for writer in writers:
            writer.stdin.write("go\n")
            writer.stdin.flush()
        answered: dict[str, int] = {}
        for writer in writers:
            answered.update(json.loads(writer.stdout.readline()))
            assert writer.wait(timeout=120) == 0
    finally:
        for writer in writers:
            stop(writer)
            writer.stdin.close()
            writer.stdout.close()

    assert_each_batch_once(open_store(spec), answered)
