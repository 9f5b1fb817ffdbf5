"""Store reads run on threads kept for the process: reading again starts no thread."""

import json
import threading
import time

from chalicelib import fetchers, log, packs
from chalicelib.keys import log_key

ORG = "acme"


def test_reading_commits_and_packs_again_starts_no_thread(local_store, monkeypatch):
    for version in range(1, 41):
        commit = {"version": version, "org": ORG, "batch_id": f"b{version}", "committed_at": "2026-12-01T00:00:00Z",
                  "author": {"kind": "client", "id": "phone"}, "events": []}
        local_store.put(log_key(ORG, version), json.dumps(commit).encode(), if_absent=True)
    packs.write_packs(local_store, ORG, 40)
    listed = packs.list_packs(local_store, ORG)
    assert listed == [packs.Pack(1, 32), packs.Pack(33, 40)]
    # Every thread of the pool running (the pool starts them as work comes).
    list(fetchers.pool.map(time.sleep, [0.05] * fetchers.FETCHERS * 2))
    started = []
    start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda thread: started.append(thread.name) or start(thread))

    for _ in range(5):
        assert len(packs.read_bodies(local_store, ORG, 1, 40, listed)) == 40
        assert len(packs.read_bodies(local_store, ORG, 1, 40, [])) == 40
        assert [commit["version"] for commit in log.read_commits(local_store, ORG, 0)] == list(range(1, 41))

    assert started == []
