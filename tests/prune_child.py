"""A snapshot pruner for the crash tests: prunes an org's snapshots (keep
three) over a local store and, inside its N-th delete, says so on stdout
and waits to be killed. Every delete of the oldest base's deltas fails, so
that base, once deleted, leaves its deltas without it.

    python tests/prune_child.py STORE_DIR ORG N

It prints "AT delete N".
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chalicelib import snapshots  # noqa: E402
from chalicelib.keys import delta_prefix, version_of_snapshot_key  # noqa: E402
from chalicelib.state import SCHEMA_HASH  # noqa: E402
from chalicelib.store import LocalStore  # noqa: E402
from chalicelib.store.faulty import Fault, FaultyStore  # noqa: E402


class PausingStore:
    """Pauses inside the N-th delete, before it reaches the store."""

    def __init__(self, inner, pause_at: int):
        self.inner = inner
        self.pause_at = pause_at
        self.deletes = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def delete(self, key, **kwargs):
        self.deletes += 1
        if self.deletes == self.pause_at:
            print(f"AT delete {self.pause_at}", flush=True)
            time.sleep(600)
        return self.inner.delete(key, **kwargs)


def main() -> None:
    store_dir, org, pause_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = LocalStore(store_dir)
    oldest = version_of_snapshot_key(snapshots.list_snapshots(store, org)[0].key)
    stuck = delta_prefix(org, SCHEMA_HASH, oldest)

    def plan(kind, key, _n):
        return Fault.TRANSIENT if kind == "delete" and key.startswith(stuck) else None

    snapshots.prune(PausingStore(FaultyStore(store, plan=plan), pause_at), org, keep=3)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
