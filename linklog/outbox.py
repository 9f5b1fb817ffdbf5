"""Events written on this machine and not yet confirmed by the server.

An event enters the outbox before anything else happens to it. Before its
first push it is given a batch id, stored with it, so every later attempt
(after a timeout, a crash, a day offline) sends the same batch, which the
server commits at most once; a batch leaves the outbox only once the
server has answered with its version or a pull shows it committed.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import apsw

from chalicelib.events import MAX_BODY_BYTES, MAX_EVENTS_PER_PUSH

# Room under the push limit for the body's envelope and JSON separators.
MAX_BATCH_BYTES = MAX_BODY_BYTES - 16 * 1024

SCHEMA = """
CREATE TABLE IF NOT EXISTS identity (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    event TEXT NOT NULL,
    batch_id TEXT,
    queued_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_batch ON outbox (batch_id, seq);
CREATE TABLE IF NOT EXISTS rejected (
    seq INTEGER PRIMARY KEY,
    event TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    error TEXT NOT NULL,
    rejected_at TEXT NOT NULL
);
"""


def new_id(prefix: str) -> str:
    """A unique id that sorts by creation time: ``prefix``, milliseconds, randomness."""
    return f"{prefix}{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass(frozen=True)
class Batch:
    batch_id: str
    events: list[dict]


class Outbox:
    """The outbox and the client's identity, in ``client.sqlite`` in the home directory."""

    def __init__(self, home: Path):
        home.mkdir(parents=True, exist_ok=True)
        self.db = apsw.Connection(str(home / "client.sqlite"))
        self.db.setbusytimeout(10_000)
        self.db.execute("PRAGMA journal_mode = WAL")
        with self.db:
            self.db.execute(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def identity(self, key: str) -> str | None:
        return self.db.execute("SELECT value FROM identity WHERE key = ?", (key,)).get

    def set_identity(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO identity VALUES (?, ?)", (key, value))

    def client_id(self) -> str:
        """This replica's client id, made once."""
        found = self.identity("client_id")
        if found is None:
            found = new_id("cli-")
            self.set_identity("client_id", found)
        return found

    def add(self, events: list[dict], batch_id: str | None = None) -> None:
        """Queue ``events`` (in order); with ``batch_id`` they are pushed as that batch."""
        queued_at = _now()
        with self.db:
            for event in events:
                self.db.execute(
                    "INSERT INTO outbox (event, batch_id, queued_at) VALUES (?, ?, ?)",
                    (json.dumps(event, ensure_ascii=False), batch_id, queued_at),
                )

    def has_batch(self, batch_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM outbox WHERE batch_id = ? LIMIT 1", (batch_id,)).get is not None

    def pending(self) -> list[dict]:
        """Every queued event, oldest first."""
        return [json.loads(text) for (text,) in self.db.execute("SELECT event FROM outbox ORDER BY seq")]

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM outbox").get

    def assign_batches(self) -> None:
        """Give the events without a batch id one, in order, within the push limits."""
        rows = self.db.execute("SELECT seq, length(CAST(event AS BLOB)) FROM outbox WHERE batch_id IS NULL ORDER BY seq").fetchall()
        with self.db:
            batch_id, events, size = None, 0, 0
            for seq, length in rows:
                if batch_id is None or events == MAX_EVENTS_PER_PUSH or size + length + 2 > MAX_BATCH_BYTES:
                    batch_id, events, size = new_id("b-"), 0, 0
                self.db.execute("UPDATE outbox SET batch_id = ? WHERE seq = ?", (batch_id, seq))
                events += 1
                size += length + 2

    def batches(self) -> list[Batch]:
        """The batches with ids, in the order their first events were queued."""
        grouped: dict[str, list[dict]] = {}
        for batch_id, text in self.db.execute(
            "SELECT batch_id, event FROM outbox WHERE batch_id IS NOT NULL ORDER BY seq"
        ):
            grouped.setdefault(batch_id, []).append(json.loads(text))
        return [Batch(batch_id, events) for batch_id, events in grouped.items()]

    def confirm(self, batch_ids) -> int:
        """Drop batches the server has committed; return how many events left."""
        removed = 0
        with self.db:
            for batch_id in batch_ids:
                self.db.execute("DELETE FROM outbox WHERE batch_id = ?", (batch_id,))
                removed += self.db.changes()
        return removed

    def reject(self, batch_id: str, error: str) -> None:
        """Set aside a batch the server refused for good, with the reason, so it blocks nothing."""
        with self.db:
            self.db.execute(
                """INSERT INTO rejected (event, batch_id, error, rejected_at)
                   SELECT event, batch_id, ?, ? FROM outbox WHERE batch_id = ? ORDER BY seq""",
                (error, _now(), batch_id),
            )
            self.db.execute("DELETE FROM outbox WHERE batch_id = ?", (batch_id,))

    def rejected(self) -> list[tuple[str, str, int]]:
        """The batches set aside: (batch id, error, event count)."""
        return self.db.execute(
            "SELECT batch_id, error, count(*) FROM rejected GROUP BY batch_id ORDER BY min(seq)"
        ).fetchall()
