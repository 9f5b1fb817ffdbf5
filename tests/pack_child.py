"""A pack writer for the crash tests: writes an org's missing packs over a
local store and, at the step it is told, says so on stdout and waits to be
killed.

    python tests/pack_child.py STORE_DIR ORG HEAD STEP

STEP is "pack_put" (inside the put of the first pack, before it lands) or
"pack_delete" (the pack landed; inside the delete of the first smaller
pack it replaces).
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chalicelib import packs  # noqa: E402
from chalicelib.store import LocalStore  # noqa: E402


def stop_here(step: str) -> None:
    print(f"AT {step}", flush=True)
    time.sleep(600)


class PausingStore:
    """Pauses at the first pack put or delete, as STEP says."""

    def __init__(self, inner, step: str):
        self.inner = inner
        self.step = step

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, body, **kwargs):
        if self.step == "pack_put" and "/packs/" in key:
            stop_here("pack_put")
        return self.inner.put(key, body, **kwargs)

    def delete(self, key, **kwargs):
        if self.step == "pack_delete" and "/packs/" in key:
            stop_here("pack_delete")
        return self.inner.delete(key, **kwargs)


def main() -> None:
    store_dir, org, head, step = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    packs.write_packs(PausingStore(LocalStore(store_dir), step), org, head)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
