"""An org's state at the head of its log: newest snapshot plus the commits after it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import apsw

from chalicelib.deltas import PageDigests
from chalicelib.packs import LogReader, PackCache
from chalicelib.snapshots import Chain, Listed, restore_latest
from chalicelib.state.apply import ApplyStats, apply_commits
from chalicelib.state.schema import version
from chalicelib.store.base import ObjectStore

PAGE = 1000


@dataclass
class OrgState:
    """What open_state did: the database, where it came from, what it cost.

    ``timings`` holds seconds for ``snapshot_get``, ``deserialize``,
    ``read_log`` and ``apply``. ``chain`` is the full snapshot and deltas
    restored (None: replayed from the start); ``digests``, when asked for,
    are the restored pages' (before the log was applied); ``listed`` the
    snapshot objects the restore chose from.
    """

    db: apsw.Connection
    version: int
    snapshot_key: str | None
    snapshot_version: int
    snapshot_size: int
    skipped_snapshots: list[tuple[str, str]]
    commits_applied: int
    stats: list[ApplyStats] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    chain: Chain | None = None
    digests: PageDigests | None = None
    listed: Listed | None = None


def open_state(
    store: ObjectStore, org: str, *, with_digests: bool = False, cache: PackCache | None = None
) -> OrgState:
    """Restore the newest usable snapshot and apply every commit after it.

    ``with_digests``: also take the restored pages' digests, so the caller
    can later store only the pages it changed (snapshots.write_next).
    ``cache`` keeps the commits and packs read (see ``apply_rest_of_log``).
    """
    restored = restore_latest(store, org, with_digests=with_digests)
    timings = {
        "snapshot_get": restored.get_seconds,
        "deserialize": restored.deserialize_seconds,
        "read_log": 0.0,
        "apply": 0.0,
    }
    stats = apply_rest_of_log(store, org, restored.db, timings, cache)
    return OrgState(
        db=restored.db,
        version=version(restored.db),
        snapshot_key=restored.key,
        snapshot_version=restored.version,
        snapshot_size=restored.size,
        skipped_snapshots=restored.skipped,
        commits_applied=sum(page.commits for page in stats),
        stats=stats,
        timings=timings,
        chain=restored.chain,
        digests=restored.digests,
        listed=restored.listed,
    )


def load(store: ObjectStore, org: str) -> apsw.Connection:
    """The org's state database at the head of its log."""
    return open_state(store, org).db


def catch_up(store: ObjectStore, org: str, db: apsw.Connection) -> int:
    """Apply the commits after ``db``'s version; return how many were applied."""
    stats = apply_rest_of_log(store, org, db, {"read_log": 0.0, "apply": 0.0})
    return sum(page.commits for page in stats)


def apply_rest_of_log(
    store: ObjectStore,
    org: str,
    db: apsw.Connection,
    timings: dict[str, float],
    cache: PackCache | None = None,
) -> list[ApplyStats]:
    """Apply the commits after ``db``'s version, adding the seconds spent to
    ``timings`` ("read_log", "apply"); the stats of each page applied.
    ``cache`` (None: one of its own) keeps the commits and packs read, for
    a caller that packs them later (a processor cycle).

    One transaction per page of commits: a long log never holds more than
    a page in memory, and what was applied stays applied if a read fails.
    """
    stats: list[ApplyStats] = []
    after = version(db)
    reader = LogReader(store, org, cache)
    while True:
        started = time.perf_counter()
        commits = reader.read(after, limit=PAGE)
        read = time.perf_counter()
        timings["read_log"] += read - started
        if not commits:
            return stats
        page = apply_commits(db, commits)
        timings["apply"] += time.perf_counter() - read
        stats.append(page)
        after = page.version_after
        if len(commits) < PAGE:
            return stats
