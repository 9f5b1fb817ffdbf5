"""A push for the crash tests: claims its batch's marker, then, at the put
of its commit, says so on stdout and waits to be killed.

    python tests/push_child.py STORE WRITER N

STORE is a spec as tests/push_writer.py reads it; the batch is that
module's batch N of WRITER.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chalicelib import sync  # noqa: E402
from push_writer import ORG, body, open_store  # noqa: E402


class PausingStore:
    """Pauses at the first put of a log commit, before it lands."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, data, **kwargs):
        if "/log/" in key:
            print("AT commit_put", flush=True)
            time.sleep(600)
        return self.inner.put(key, data, **kwargs)


if __name__ == "__main__":
    spec, writer, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = PausingStore(open_store(spec))
    sync.push(store, ORG, body(writer, n), notify=lambda org: None, index=sync.LogIndex())
    print("DONE", flush=True)
