"""Scratch files: local copies of state databases that leave nothing behind.

A restored snapshot is written to a file and opened there instead of being
deserialized from memory (see chalicelib.snapshots). The file is unlinked
as soon as SQLite has it open: the open descriptor keeps it alive exactly
as long as the connection, with no clean-up to remember. (A state database
opened with chalicelib.state.schema.open_scratch_copy journals in memory,
so writes keep working on an unlinked file.)

Only a process killed between creating a file and unlinking it leaves one
behind, and on Lambda a timeout restarts the runtime in the same sandbox,
/tmp and all. So the first scratch file a process makes in a directory
removes the ones nobody has written to for a minute: a live download
writes every few milliseconds, and a stalled one times out long before.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

PREFIX = "linklog-state-"
SUFFIX = ".sqlite"
ABANDONED_AFTER_SECONDS = 60.0

_cleaned: set[str] = set()
_cleaned_lock = threading.Lock()


def new_scratch_file(directory: str | None = None) -> tuple[BinaryIO, str]:
    """A new empty scratch file open for writing, and its path.

    ``directory`` is the system temp dir (TMPDIR, /tmp on Lambda) by default.
    """
    directory = directory or tempfile.gettempdir()
    with _cleaned_lock:
        first = directory not in _cleaned
        _cleaned.add(directory)
    if first:
        remove_abandoned(directory)
    fd, path = tempfile.mkstemp(prefix=PREFIX, suffix=SUFFIX, dir=directory)
    return os.fdopen(fd, "wb"), path


def remove(path: str) -> None:
    """Unlink a scratch file; harmless if it is gone already."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def remove_abandoned(directory: str, now: Callable[[], float] = time.time) -> list[str]:
    """Delete the scratch files in ``directory`` untouched for a minute; their paths."""
    removed = []
    for name in sorted(os.listdir(directory)):
        if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
            continue
        path = os.path.join(directory, name)
        try:
            if now() - os.stat(path).st_mtime < ABANDONED_AFTER_SECONDS:
                continue
            os.unlink(path)
        except OSError:
            continue
        removed.append(path)
    return removed
