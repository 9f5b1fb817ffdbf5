"""`make bench`: run every bench/bench_*.py and print one JSON document.

Each bench module has ``main() -> dict``. A bench that fails is reported
with its error and the others still run, so one broken bench does not hide
the figures of the rest.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def bench_modules() -> list[str]:
    """Names of the bench modules, in alphabetical order."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(BENCH_DIR)])
        if info.name.startswith("bench_")
    )


def run_all(names: list[str]) -> dict:
    """Every named bench's figures (or its error), with how long it took."""
    results = {}
    for name in names:
        started = time.perf_counter()
        try:
            figures = importlib.import_module(f"bench.{name}").main()
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            figures = {"error": f"{type(error).__name__}: {error}"}
        results[name.removeprefix("bench_")] = {
            "seconds": round(time.perf_counter() - started, 1),
            "figures": figures,
        }
    return results


def main() -> None:
    chosen = sys.argv[1:] or bench_modules()
    print(json.dumps(run_all([f"bench_{n.removeprefix('bench_')}" for n in chosen]), indent=2))


if __name__ == "__main__":
    main()
