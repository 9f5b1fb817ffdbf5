"""The local copy of an org, in two SQLite files built by chalicelib.state.

``replica.sqlite`` is the org's state at the version this machine last
pulled, built only by ``apply_commits`` from pulled commits: the same code,
and so the same state, as the server's. ``view.sqlite`` is that state with
the outbox's events applied on top, as if committed next; every read
command reads the view, and a local write applies to it at once. After a
pull the view is rebuilt from the replica and what is still in the outbox,
so an event the server has committed is never applied twice.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

import apsw

from chalicelib.state import apply_commits, new_database, version
from chalicelib.state.schema import SCHEMA_HASH, open_scratch_copy, schema_hash_of


class Replica:
    """The replica and view files in ``home``."""

    def __init__(self, home: Path):
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.base_path = home / "replica.sqlite"
        self.view_path = home / "view.sqlite"
        self.base = self._open_base()
        self._view: apsw.Connection | None = None

    def _open_base(self) -> apsw.Connection:
        db = apsw.Connection(str(self.base_path))
        db.setbusytimeout(10_000)
        if schema_hash_of(db) not in (None, SCHEMA_HASH):
            # A replica of an older schema is a cache like any other: pull it again.
            db.close()
            self.reset()
            db = apsw.Connection(str(self.base_path))
        if schema_hash_of(db) is None:
            with db.backup("main", new_database(), "main") as backup:
                backup.step()
        db.execute("PRAGMA journal_mode = WAL")
        return db

    def reset(self) -> None:
        """Forget the local state (the outbox is kept); the next sync pulls it all again."""
        for path in (self.base_path, self.view_path):
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(str(path) + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        if self._view is not None:
            self._view.close()
        self.base.close()

    @property
    def version(self) -> int:
        """The log version the replica has pulled."""
        return version(self.base)

    def apply_pulled(self, commits: list[dict]):
        """Apply pulled commits (which continue the replica's version) to the replica."""
        return apply_commits(self.base, commits)

    def batch_committed(self, batch_id: str) -> bool:
        """Whether a pulled commit carried ``batch_id``."""
        return self.base.execute("SELECT 1 FROM batches WHERE batch_id = ?", (batch_id,)).get is not None

    def view(self) -> apsw.Connection:
        """The view: the replica plus the outbox (build it with rebuild_view first)."""
        if self._view is None:
            if not self.view_path.exists():
                raise FileNotFoundError(self.view_path)
            self._view = open_scratch_copy(str(self.view_path))
        return self._view

    def rebuild_view(self, pending: list[dict]) -> None:
        """Make the view the replica plus ``pending`` (the outbox's events, in order)."""
        if self._view is not None:
            self._view.close()
            self._view = None
        scratch = self.home / "view.sqlite.new"
        scratch.unlink(missing_ok=True)
        db = apsw.Connection(str(scratch))
        with db.backup("main", self.base, "main") as backup:
            backup.step()
        db.execute("PRAGMA journal_mode = DELETE")
        if pending:
            _apply_local(db, pending)
        db.close()
        os.replace(scratch, self.view_path)

    def apply_local(self, events: list[dict]) -> None:
        """Apply events just queued in the outbox to the view."""
        _apply_local(self.view(), events)

    @contextmanager
    def locked(self):
        """Hold this home's lock: one linklog command changes it at a time."""
        with open(self.home / "lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _apply_local(db: apsw.Connection, events: list[dict]) -> None:
    # Local events act as the next commit; their versions are the view's own
    # and are never compared with the server's.
    apply_commits(db, [{
        "version": version(db) + 1,
        "batch_id": "local",
        "author": {"kind": "client", "id": "local"},
        "events": events,
    }])
