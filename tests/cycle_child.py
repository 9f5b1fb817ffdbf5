"""A processor process for the crash tests: runs one cycle over a local
store and, at the step it is told, says so on stdout and waits to be killed.

    python tests/cycle_child.py STORE_DIR STEP [warm]

STEP is a checkpoint of run_cycle ("leased", "started", "processed",
"committed", "snapshot"), "processing" (inside link processing),
"snapshot_put" (inside the store's put of the snapshot object),
"delta_put" (inside the put of a delta; these tiny orgs' deltas are
allowed any size) or "compaction_put" (inside the put of a full
snapshot, with every chain compacted at once). With "warm", it first runs
a cycle to its end keeping the state (chalicelib.keptstate), saves 20 more
links, and stops in the next cycle, which resumes that state.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chalicelib import cycle, keptstate, snapshots  # noqa: E402
from chalicelib.store import LocalStore  # noqa: E402
from clocks import T0  # noqa: E402
from processing_org import FakeProcessor, save_links  # noqa: E402



def stop_here(step: str) -> None:
    print(f"AT {step}", flush=True)
    time.sleep(600)


PAUSES = {
    "snapshot_put": lambda key: "/snapshots/" in key,
    "delta_put": lambda key: "/snapshots/" in key and key.endswith(".delta"),
    "compaction_put": lambda key: "/snapshots/" in key and key.endswith(".sqlite"),
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
            stop_here(self.step)
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

    if step == "delta_put":
        snapshots.MAX_CHAIN_FRACTION = 1000.0
    if step == "compaction_put":
        snapshots.MAX_CHAIN = 0
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
