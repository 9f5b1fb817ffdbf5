"""Snapshots: an org's state database at one version, as an immutable object.

A snapshot is a cache of the log (DESIGN §5), so every failure here is
logged and answered with an older snapshot or an empty database, never
raised: losing a snapshot costs time, not data.

Body format: one ASCII header line, then the SQLite database bytes::

    linklog-snapshot 1 schema=<SCHEMA_HASH> version=<n> size=<bytes> crc32=<8 hex>\\n

The checksum (CRC-32, as S3's own object checksums) covers the database
bytes. It is there to catch damage, not forgery: whoever can write the
bucket can write any snapshot. CRC-32 checks 90 MB in about 20 ms, where
SHA-256 takes 50, and a restore is mostly moving bytes.

A header that does not match the key, a wrong size or checksum, bytes
SQLite cannot open, or a meta table naming another schema or version make
the snapshot unusable.

Restoring streams the body to a scratch file (chalicelib.scratch) and
opens it there, rather than deserializing a body held in memory.
"""

from __future__ import annotations

import logging
import re
import time
import zlib
from dataclasses import dataclass, field

import apsw

from chalicelib import scratch
from chalicelib.keys import snapshot_key, snapshot_prefix, version_of_snapshot_key
from chalicelib.state.schema import (
    SCHEMA_HASH,
    new_database,
    open_scratch_copy,
    schema_hash_of,
    version,
)
from chalicelib.store.base import ObjectInfo, ObjectStore, PreconditionFailed, StoreError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Trying more than a few older snapshots costs more than a full replay
# would save; pruning keeps three anyway.
MAX_RESTORE_ATTEMPTS = 3
MAX_HEADER = 512

_SNAPSHOT_NAME = re.compile(r"^[0-9]{20}\.sqlite$")
_HEADER = re.compile(
    rb"^linklog-snapshot (?P<format>[0-9]+) schema=(?P<schema>[0-9a-f]+) "
    rb"version=(?P<version>[0-9]+) size=(?P<size>[0-9]+) crc32=(?P<crc32>[0-9a-f]{8})$"
)


class UnusableSnapshot(Exception):
    """A snapshot object that cannot be trusted; the message says why."""


@dataclass
class Restored:
    """The state restore_latest produced, and how.

    ``key`` is None when no snapshot could be used (``db`` is then empty, at
    version 0); ``skipped`` lists ``(key, reason)`` for every snapshot or
    listing that failed on the way. ``get_seconds`` is the download (with
    the checksum, added up as it arrives); ``deserialize_seconds``, named
    as in DESIGN §10, is opening and checking the scratch copy.
    """

    db: apsw.Connection
    version: int
    key: str | None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    size: int = 0
    get_seconds: float = 0.0
    deserialize_seconds: float = 0.0


def encode(db: apsw.Connection) -> bytes:
    """The snapshot body for ``db``: header line and serialized database."""
    # A WAL header in the bytes would make the restored copy look for a
    # write-ahead log that does not exist (DESIGN §5).
    if str(db.execute("PRAGMA journal_mode").get).lower() == "wal":
        db.execute("PRAGMA journal_mode = DELETE")
    data = db.serialize("main")
    header = (
        f"linklog-snapshot {FORMAT_VERSION} schema={SCHEMA_HASH} version={version(db)} "
        f"size={len(data)} crc32={zlib.crc32(data):08x}\n"
    )
    return header.encode("ascii") + data


def decode(body: bytes, expected_version: int) -> apsw.Connection:
    """The database a snapshot body holds; raises UnusableSnapshot."""
    with _ReceivedSnapshot(expected_version) as received:
        received.write(body)
        return received.open()


def read_snapshot(store: ObjectStore, key: str) -> tuple[apsw.Connection, int, float]:
    """The database the snapshot at ``key`` holds, its size in bytes, and
    the seconds the download took; raises StoreError or UnusableSnapshot."""
    started = time.perf_counter()
    with _ReceivedSnapshot(version_of_snapshot_key(key)) as received:
        info = store.download(key, received)
        downloaded = time.perf_counter() - started
        return received.open(), info.size, downloaded


class _ReceivedSnapshot:
    """A snapshot body arriving piece by piece (a download's ``into``).

    The header is checked as soon as it has arrived; the database bytes go
    straight to a scratch file, their size and checksum added up on the
    way. Opening that file instead of deserializing a body held in memory
    keeps one copy of the database instead of two (the body and SQLite's
    copy of it), and filling fresh memory with those copies was most of a
    restore's time. The file is unlinked once SQLite has it open, or when
    the snapshot turns out unusable.
    """

    def __init__(self, expected_version: int):
        self.expected_version = expected_version
        self.expected_size: int | None = None
        self.expected_crc32 = 0
        self.size = 0
        self.crc32 = 0
        self._head = b""
        self._file, self._path = scratch.new_scratch_file()

    def __enter__(self) -> _ReceivedSnapshot:
        return self

    def __exit__(self, *exc_info) -> None:
        self._file.close()
        scratch.remove(self._path)

    def write(self, piece) -> None:
        if self.expected_size is None:
            piece = self._take_header(piece)
            if piece is None:
                return
        self.size += len(piece)
        if self.size > self.expected_size:
            raise UnusableSnapshot(f"more than the {self.expected_size} bytes the header says")
        self.crc32 = zlib.crc32(piece, self.crc32)
        self._file.write(piece)

    def _take_header(self, piece) -> memoryview | None:
        """Check the header once its line is complete and return the bytes
        after it; None while the line is still incomplete."""
        head = self._head + bytes(piece)
        end = head.find(b"\n", 0, MAX_HEADER)
        if end < 0:
            if len(head) >= MAX_HEADER:
                raise UnusableSnapshot("no snapshot header")
            self._head = head
            return None
        header = _HEADER.fullmatch(head[:end])
        if header is None:
            raise UnusableSnapshot("malformed snapshot header")
        if int(header["format"]) != FORMAT_VERSION:
            raise UnusableSnapshot(f"snapshot format {int(header['format'])} is not {FORMAT_VERSION}")
        if header["schema"].decode() != SCHEMA_HASH:
            raise UnusableSnapshot(f"header names schema {header['schema'].decode()}")
        if int(header["version"]) != self.expected_version:
            raise UnusableSnapshot(f"header names version {int(header['version'])}")
        self.expected_size = int(header["size"])
        self.expected_crc32 = int(header["crc32"], 16)
        return memoryview(head)[end + 1 :]

    def open(self) -> apsw.Connection:
        """The database received, checked; raises UnusableSnapshot."""
        if self.expected_size is None:
            raise UnusableSnapshot("no snapshot header")
        if self.size != self.expected_size:
            raise UnusableSnapshot(f"{self.size} bytes where the header says {self.expected_size}")
        if self.crc32 != self.expected_crc32:
            raise UnusableSnapshot("checksum mismatch")
        self._file.close()
        try:
            db = open_scratch_copy(self._path)
        except apsw.Error as error:
            raise UnusableSnapshot(f"SQLite cannot open it: {error}") from None
        try:
            # Reading the meta table also makes SQLite hold the file open
            # before it is unlinked.
            found_schema = schema_hash_of(db)
            found_version = version(db) if found_schema else None
        except apsw.Error as error:
            db.close()
            raise UnusableSnapshot(f"SQLite cannot open it: {error}") from None
        if found_schema != SCHEMA_HASH or found_version != self.expected_version:
            db.close()
            raise UnusableSnapshot(
                f"database holds schema {found_schema} at version {found_version}"
            )
        return db


def write_snapshot(store: ObjectStore, org: str, db: apsw.Connection) -> str | None:
    """Store ``db`` as the snapshot of its version; return its key.

    Put-if-absent: snapshots are immutable, and two snapshots of one version
    are equal (the state is a function of the log), so finding one already
    there is success. An empty database (version 0) is not stored. Returns
    None, after logging, when the put fails. Whether a snapshot of this
    version is still worth writing (a newer one may exist) is the caller's
    decision.
    """
    at_version = version(db)
    if at_version == 0:
        return None
    key = snapshot_key(org, SCHEMA_HASH, at_version)
    try:
        store.put(key, encode(db), if_absent=True)
    except PreconditionFailed:
        return key
    except StoreError as error:
        log.warning("snapshot %s not written: %s: %s", key, type(error).__name__, error)
        return None
    return key


def list_snapshots(store: ObjectStore, org: str) -> list[ObjectInfo]:
    """The org's snapshots of this schema, oldest first (pages through the listing)."""
    prefix = snapshot_prefix(org, SCHEMA_HASH)
    found: list[ObjectInfo] = []
    start_after = None
    while True:
        page = store.list(prefix, start_after=start_after)
        found.extend(info for info in page if _SNAPSHOT_NAME.fullmatch(info.key[len(prefix):]))
        if len(page) < 1000:
            return found
        start_after = page[-1].key


def restore_latest(store: ObjectStore, org: str) -> Restored:
    """The newest usable snapshot of this schema, else an empty database.

    Tries the newest, then older ones (at most MAX_RESTORE_ATTEMPTS), and
    records why each was skipped. Never raises for a store failure or a
    damaged snapshot.
    """
    skipped: list[tuple[str, str]] = []
    try:
        candidates = list_snapshots(store, org)
    except StoreError as error:
        reason = f"listing failed: {type(error).__name__}: {error}"
        log.warning("snapshots of %s: %s", org, reason)
        skipped.append((snapshot_prefix(org, SCHEMA_HASH), reason))
        candidates = []
    for info in reversed(candidates[-MAX_RESTORE_ATTEMPTS:]):
        started = time.perf_counter()
        try:
            db, size, downloaded = read_snapshot(store, info.key)
        except (StoreError, UnusableSnapshot, OSError) as error:
            # OSError: no room for the scratch copy; a replay, in memory,
            # may still do.
            reason = f"{type(error).__name__}: {error}"
            log.warning("snapshot %s skipped: %s", info.key, reason)
            skipped.append((info.key, reason))
            continue
        return Restored(
            db=db,
            version=version(db),
            key=info.key,
            skipped=skipped,
            size=size,
            get_seconds=downloaded,
            deserialize_seconds=time.perf_counter() - started - downloaded,
        )
    return Restored(db=new_database(), version=0, key=None, skipped=skipped)


def newest_version(store: ObjectStore, org: str) -> int:
    """The version of the org's newest snapshot of this schema, 0 if none."""
    found = list_snapshots(store, org)
    return version_of_snapshot_key(found[-1].key) if found else 0


def prune(store: ObjectStore, org: str, keep: int = 3) -> list[str]:
    """Delete all but the newest ``keep`` snapshots of this schema; return the deleted keys.

    Snapshots of other schema hashes are left alone: an older deployment
    may still be reading them. Failures are logged, not raised.
    """
    if keep < 1:
        raise ValueError(f"keep at least one snapshot, not {keep}")
    try:
        existing = list_snapshots(store, org)
    except StoreError as error:
        log.warning("snapshots of %s not pruned: %s", org, error)
        return []
    return delete_snapshots(store, existing[:-keep])


def delete_snapshots(store: ObjectStore, listed: list[ObjectInfo]) -> list[str]:
    """Delete these listed snapshots, each only if its etag is still the
    listed one; return the deleted keys. Failures are logged, not raised."""
    deleted = []
    for info in listed:
        try:
            store.delete(info.key, if_match=info.etag)
        except StoreError as error:
            log.warning("snapshot %s not pruned: %s: %s", info.key, type(error).__name__, error)
            continue
        deleted.append(info.key)
    return deleted
