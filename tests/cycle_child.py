"""A processor process for the crash tests: runs one cycle over a local
store and, at the step it is told, says so on stdout and waits to be killed.

    python tests/cycle_child.py STORE_DIR STEP [warm]

STEP is a checkpoint of run_cycle ("leased", "started", "processed",
"committed", "snapshot"), "processing" (inside link processing),
"snapshot_put" (inside the store's put of the snapshot object),
"delta_put" (inside the put of a delta; these tiny orgs' deltas are
allowed any size), "compaction_put" (inside the put of a full
snapshot, with every chain compacted at once) or "part_put" (inside the
put of a compaction's third part, with parts of two pages, so that some
parts have landed and the snapshot object has not). With "warm", it first
runs a cycle to its end keeping the state (chalicelib.keptstate), saves 20
more links, and stops in the next cycle, which resumes that state.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chalicelib import cycle, keptstate, snapshotparts, snapshots  # noqa: E402
from chalicelib.store import LocalStore  # noqa: E402
from chalicelib.store.base import NotFound  # noqa: E402
from clocks import T0  # noqa: E402
from processing_org import FakeProcessor, save_links  # noqa: E402



def stop_here(step: str) -> None:
    print(f"AT {step}", flush=True)
    time.sleep(600)


PAUSES = {
    "snapshot_put": lambda key: "/snapshots/" in key,
    "delta_put": lambda key: "/snapshots/" in key and key.endswith(".delta"),
    "compaction_put": lambda key: "/snapshots/" in key and key.endswith(".sqlite"),
    "part_put": lambda key: "/snapshots/" in key and "/00003." in key,
}


class PausingStore:
    """Pauses inside the put of the object ``step`` names, before it reaches the disk."""

    def __init__(self, inner, step):
        self.inner = inner
        self.step = step

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, body, **kwargs):
        if PAUSES[self.step](key):
            if self.step == "part_put":
                self._wait_for(key.replace("/00003.", "/00001."))
            stop_here(self.step)
        return self.inner.put(key, body, **kwargs)

    def _wait_for(self, key: str) -> None:
        """Until ``key`` (put by another thread) has landed, so that the kill
        leaves parts behind; at most ten seconds."""
        for _ in range(1000):
            try:
                self.inner.head(key)
                return
            except NotFound:
                time.sleep(0.01)


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

    if step == "delta_put":
        snapshots.MAX_CHAIN_FRACTION = 1000.0
    if step in ("compaction_put", "part_put"):
        snapshots.MAX_CHAIN = 0
    if step == "part_put":
        snapshotparts.PART_SIZE = 2 * 4096
    warm = sys.argv[3:] == ["warm"]
    kept = keptstate.KeptStates() if warm else None
    if warm:
        cycle.run_cycle(store, "acme", process=processor, holder="warm", now=lambda: T0,
                        lease_seconds=30, emit=lambda line: None, kept=kept)
        save_links(store, "acme", range(20, 40))
    cycle.run_cycle(
        PausingStore(store, step) if step in PAUSES else store,
        "acme",
        process=process,
        holder="doomed",
        now=lambda: T0,
        concurrency=1,
        lease_seconds=30,
        checkpoint=checkpoint,
        emit=lambda line: None,
        kept=kept,
    )
    print("FINISHED", flush=True)


if __name__ == "__main__":
    main()
