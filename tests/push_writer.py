"""One writer pushing batches to an org, as one Lambda container would: its
own LogIndex, a store failing a share of its requests, and a client that
pushes the same batch again after every 503 until it is answered; then
every batch once more through another container's index.

The racing-push tests run several of these as threads, and as processes:

    python tests/push_writer.py STORE WRITER BATCHES FAIL_RATE

STORE is ``file://DIR`` or ``s3://BUCKET@http://127.0.0.1:PORT`` (moto's
server). The process says ``READY`` once it has imported everything, starts pushing
when a line arrives on stdin (so that all writers start together), and
prints ``{batch_id: version}`` as JSON on stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chalicelib import sync  # noqa: E402
from chalicelib.api_errors import ApiError  # noqa: E402
from chalicelib.store import LocalStore  # noqa: E402
from chalicelib.store.faulty import FaultyStore  # noqa: E402

ORG = "racing"
AT = "2026-11-23T20:00:00Z"


def batch_id(writer: int, n: int) -> str:
    return f"w{writer}-b{n}"


def body(writer: int, n: int) -> bytes:
    ids = batch_id(writer, n)
    return json.dumps({
        "batch_id": ids,
        "client_id": f"writer-{writer}",
        "events": [{"id": ids, "name": "v1.TagCreated",
                    "args": {"id": ids, "name": ids, "createdAt": AT}, "at": AT}],
    }).encode()


def push_batches(store, writer: int, batches: int, fail_rate: float) -> dict[str, int]:
    """Push ``batches`` batches as ``writer``; the version each was answered with.

    Then push each again through a new index, as a retry reaching another
    container would, and check it is answered with the same version.
    """
    faulty = FaultyStore(store, fail_rate=fail_rate, seed=writer)
    index = sync.LogIndex()
    answered = {batch_id(writer, n): push_until_answered(faulty, writer, n, index)
                for n in range(batches)}
    again = sync.LogIndex()
    retried = {batch_id(writer, n): push_until_answered(faulty, writer, n, again)
               for n in range(batches)}
    if retried != answered:
        raise AssertionError(f"retries answered {retried}, first pushes {answered}")
    return answered


def push_until_answered(store, writer: int, n: int, index: sync.LogIndex) -> int:
    """Push batch ``n`` of ``writer`` until answered (a client retries a 503)."""
    while True:
        try:
            return sync.push(store, ORG, body(writer, n), notify=lambda org: None,
                             index=index)["version"]
        except ApiError as error:
            if error.status != 503:
                raise


def open_store(spec: str):
    """The store a ``file://DIR`` or ``s3://BUCKET@ENDPOINT`` spec names."""
    if spec.startswith("file://"):
        return LocalStore(spec.removeprefix("file://"))
    from chalicelib.store.motoserver import moto_client
    from chalicelib.store.s3 import S3Store

    bucket, endpoint = spec.removeprefix("s3://").split("@", 1)
    return S3Store(bucket, client=moto_client(endpoint))


if __name__ == "__main__":
    spec, writer, batches, fail_rate = sys.argv[1:5]
    store = open_store(spec)
    print("READY", flush=True)
    sys.stdin.readline()
    print(json.dumps(push_batches(store, int(writer), int(batches), float(fail_rate))))
