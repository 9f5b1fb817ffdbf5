"""A processor process for the crash tests: runs one cycle over a local
store and, at the step it is told, says so on stdout and waits to be killed.

    python tests/cycle_child.py STORE_DIR STEP

STEP is a checkpoint of run_cycle ("leased", "started", "processed",
"committed", "snapshot"), "processing" (inside link processing) or
"snapshot_put" (inside the store's put of the snapshot object).
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chalicelib import cycle  # noqa: E402
from chalicelib.store import LocalStore  # noqa: E402
from clocks import T0  # noqa: E402
from processing_org import FakeProcessor  # noqa: E402



def stop_here(step: str) -> None:
    print(f"AT {step}", flush=True)
    time.sleep(600)


class PausingStore:
    """Pauses inside the put of a snapshot object, before it reaches the disk."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, body, **kwargs):
        if "/snapshots/" in key:
            stop_here("snapshot_put")
        return self.inner.put(key, body, **kwargs)


def main() -> None:
    store_dir, step = sys.argv[1], sys.argv[2]
    store = LocalStore(store_dir)
    processor = FakeProcessor()
    seen = []

    def process(job):
        seen.append(job.link_id)
        if step == "processing" and len(seen) == 3:
            stop_here("processing")
        return processor(job)

    def checkpoint(name):
        if name == step:
            stop_here(name)

    cycle.run_cycle(
        PausingStore(store) if step == "snapshot_put" else store,
        "acme",
        process=process,
        holder="doomed",
        now=lambda: T0,
        concurrency=1,
        lease_seconds=30,
        checkpoint=checkpoint,
        emit=lambda line: None,
    )
    print("FINISHED", flush=True)


if __name__ == "__main__":
    main()
