"""Snapshots: an org's state database at one version, as an immutable object.

A snapshot is a cache of the log (DESIGN §5), so every failure here is
logged and answered with an older snapshot or an empty database, never
raised: losing a snapshot costs time, not data.

A full snapshot is written in parts (format 2, chalicelib.snapshotparts:
an object holding a manifest and part 0, and an object per further part),
compressed or not as the store chooses (chalicelib.compression), fetched
at once and unpacked in threads.
Format 1, one object, is what earlier deployments wrote and is still
read: one ASCII header line, then the SQLite database bytes::

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

Incremental snapshots: a full snapshot is the base of a chain of deltas
(chalicelib.deltas), each holding the pages one cycle changed. A cycle
writes a delta on the chain it restored from while that chain is the
newest and short; otherwise it writes a full snapshot, which starts a new
chain (compaction). Restoring fetches the base and its deltas at once,
follows the deltas from the base parent by parent, and stops at the first
one missing or damaged: the longest valid prefix, plus the log after it.
Keys::

    orgs/<org>/snapshots/<schema>/<base version>.sqlite
    orgs/<org>/snapshots/<schema>/<base version>.parts/<writer>/<i>.zst (or .raw)
    orgs/<org>/snapshots/<schema>/<base version>.deltas/<version>.delta
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
import zlib
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import BinaryIO

import apsw

from chalicelib import compression, deltas, fetchers, scratch, snapshotparts
from chalicelib.keys import (
    delta_key,
    part_key,
    snapshot_key,
    snapshot_prefix,
    version_of_delta_key,
    version_of_snapshot_key,
)
from chalicelib.state.schema import (
    SCHEMA_HASH,
    new_database,
    open_scratch_copy,
    schema_hash_of,
    version,
)
from chalicelib.store.base import (
    Conflict,
    ObjectInfo,
    ObjectStore,
    PreconditionFailed,
    StoreError,
    Transient,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Trying more than a few older snapshots costs more than a full replay
# would save; pruning keeps three anyway.
MAX_RESTORE_ATTEMPTS = 3
MAX_HEADER = 512
# Compaction bounds (docs/decisions.md): a chain's deltas may add up to
# this fraction of its base's bytes, and number at most MAX_CHAIN, before
# the next cycle writes a full snapshot instead. Both keep a restore
# through the longest chain within 1.3 times a restore of the base alone.
MAX_CHAIN_FRACTION = 0.08
MAX_CHAIN = 12
# Parts and deltas are fetched (and parts unpacked, compressed and put)
# on the process's store fetchers (chalicelib.fetchers), threads kept for
# the life of the process: starting threads for each restore cost more
# than a whole restore of a 10,000-link org from a local disk.
# A format-2 snapshot object (manifest and part 0) is read into memory:
# far more than any real one needs, far less than a damaged header could ask.
MAX_OBJECT_IN_MEMORY = 256 << 20
# Tries of one part's put (snapshotparts): see _put_part.
PART_PUT_ATTEMPTS = 3

_SNAPSHOT_NAME = re.compile(r"^[0-9]{20}\.sqlite$")
_DELTA_NAME = re.compile(r"^(?P<base>[0-9]{20})\.deltas/(?P<version>[0-9]{20})\.delta$")
# The base version a delta's or a part's key names.
_BASE_OF = re.compile(r"/(?P<base>[0-9]{20})\.(?:deltas|parts)/")
_PART_NAME = re.compile(
    r"(?:^|/)(?P<base>[0-9]{20})\.parts/(?P<writer>[0-9a-f]{16})/(?P<index>[0-9]{5})"
    r"\.(?:" + "|".join(compression.EXTENSIONS.values()) + r")$")
_HEADER = re.compile(
    rb"^linklog-snapshot (?P<format>[0-9]+) schema=(?P<schema>[0-9a-f]+) "
    rb"version=(?P<version>[0-9]+) size=(?P<size>[0-9]+) crc32=(?P<crc32>[0-9a-f]{8})$"
)


class UnusableSnapshot(Exception):
    """A snapshot object that cannot be trusted; the message says why."""


@dataclass(frozen=True)
class Listed:
    """An org's snapshot objects of this schema, from one listing.

    ``bases``: the full snapshots, oldest first. ``deltas``: base version →
    that base's deltas, oldest first; ``parts``: base version → the part
    objects listed for it (snapshotparts), by any writer. ``orphans``: the
    deltas and parts whose base is not listed (a writer that died before
    putting its snapshot object, or a prune that died half-way).
    """

    bases: list[ObjectInfo]
    deltas: dict[int, list[ObjectInfo]]
    parts: dict[int, list[ObjectInfo]] = field(default_factory=dict)
    orphans: list[ObjectInfo] = field(default_factory=list)

    def newest_version(self) -> int:
        """The newest version any full snapshot or delta holds, 0 if none."""
        newest = 0
        for base in self.bases:
            on_it = self.deltas_on(base)
            newest = max(
                newest,
                version_of_delta_key(on_it[-1].key) if on_it else version_of_snapshot_key(base.key),
            )
        return newest

    def deltas_on(self, base: ObjectInfo) -> list[ObjectInfo]:
        return self.deltas.get(version_of_snapshot_key(base.key), [])

    def parts_of(self, base: ObjectInfo) -> list[ObjectInfo]:
        return self.parts.get(version_of_snapshot_key(base.key), [])

    def with_delta(self, base_version: int, delta: ObjectInfo) -> Listed:
        """This listing with one more delta, newest, on the base at ``base_version``."""
        on_it = self.deltas.get(base_version, []) + [delta]
        return replace(self, deltas={**self.deltas, base_version: on_it})

    def without(self, keys: list[str]) -> Listed:
        """This listing less the objects named by ``keys`` (deleted ones)."""
        gone = set(keys)
        bases = [base for base in self.bases if base.key not in gone]
        kept = {version_of_snapshot_key(base.key) for base in bases}

        def left(by_base: dict[int, list[ObjectInfo]]) -> dict[int, list[ObjectInfo]]:
            return {
                version: [info for info in on_it if info.key not in gone]
                for version, on_it in by_base.items()
                if version in kept
            }

        return Listed(
            bases=bases,
            deltas=left(self.deltas),
            parts=left(self.parts),
            orphans=[info for info in self.orphans if info.key not in gone],
        )


@dataclass(frozen=True)
class Chain:
    """Where a restored database came from: a full snapshot and the deltas on it.

    ``tip_version`` is the version base plus ``deltas`` give; ``complete``
    is False when a delta of the base was left out (missing, damaged, or
    on another branch), which the next write heals with a full snapshot.
    """

    base_key: str
    base_version: int
    base_size: int
    tip_version: int
    deltas: tuple[str, ...] = ()
    delta_bytes: int = 0
    complete: bool = True

    def as_dict(self) -> dict:
        """The figures ``GET /v1/stats`` shows."""
        return {
            "base_key": self.base_key,
            "base_version": self.base_version,
            "base_size": self.base_size,
            "tip_version": self.tip_version,
            "deltas": len(self.deltas),
            "delta_bytes": self.delta_bytes,
            "complete": self.complete,
        }


@dataclass(frozen=True)
class Written:
    """What write_next stored: ``kind`` "full" or "delta", the chain length
    (deltas on the base) after it, the delta's bytes and pages.

    ``object`` is the stored object when our own put wrote it; None when an
    object of that key was there already (another writer's, whose pages
    may be laid out differently from ours). Then, and only then, ``chain``
    is the chain the database is now the tip of, and ``digests`` (when
    asked for, or for a delta) its pages', for the next delta on it.
    """

    kind: str
    key: str
    chain_length: int
    delta_bytes: int = 0
    pages_changed: int | None = None
    object: ObjectInfo | None = None
    chain: Chain | None = None
    digests: deltas.PageDigests | None = None


@dataclass
class Restored:
    """The state restore_latest produced, and how.

    ``key`` (the full snapshot's) is None when no snapshot could be used
    (``db`` is then empty, at version 0); ``skipped`` lists ``(key,
    reason)`` for every snapshot, delta or listing that failed on the way.
    ``get_seconds`` is the download of base and deltas (with the checksum,
    added up as it arrives); ``deserialize_seconds``, named as in DESIGN
    §10, is writing the deltas' pages and opening and checking the scratch
    copy. ``digests`` (when asked for) are the restored pages', to find the
    pages a cycle changes.
    """

    db: apsw.Connection
    version: int
    key: str | None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    size: int = 0
    get_seconds: float = 0.0
    deserialize_seconds: float = 0.0
    chain: Chain | None = None
    digests: deltas.PageDigests | None = None
    # The snapshot objects the restore listed (empty when the listing failed).
    listed: Listed = field(default_factory=lambda: Listed(bases=[], deltas={}))


def _serialized(db: apsw.Connection) -> bytes:
    """The database's bytes, as a snapshot stores them."""
    # A WAL header in the bytes would make the restored copy look for a
    # write-ahead log that does not exist (DESIGN §5).
    if str(db.execute("PRAGMA journal_mode").get).lower() == "wal":
        db.execute("PRAGMA journal_mode = DELETE")
    return db.serialize("main")


def encode(db: apsw.Connection) -> bytes:
    """The format-1 snapshot body for ``db`` (one object: header line and
    database bytes), as deployments before snapshot parts wrote it."""
    data = _serialized(db)
    header = (
        f"linklog-snapshot {FORMAT_VERSION} schema={SCHEMA_HASH} version={version(db)} "
        f"size={len(data)} crc32={zlib.crc32(data):08x}\n"
    )
    return header.encode("ascii") + data


def decode(body: bytes, expected_version: int) -> apsw.Connection:
    """The database a format-1 snapshot body holds; raises UnusableSnapshot."""
    with _ReceivedSnapshot(expected_version) as received:
        received.write(body)
        return received.open()


class _ReceivedSnapshot:
    """A snapshot object arriving piece by piece (a download's ``into``),
    and the scratch file the database is put together in.

    Format 1 (one object: header and database): the header is checked as
    soon as it has arrived; the database bytes go straight to the scratch
    file, their size and checksum added up on the way. Opening that file
    instead of deserializing a body held in memory keeps one copy of the
    database instead of two (the body and SQLite's copy of it), and filling
    fresh memory with those copies was most of a restore's time.

    Format 2 (snapshotparts): the object, a manifest and part 0, is kept
    in memory, and ``unpack_parts`` writes every part into the file.

    The file is unlinked once SQLite has it open, or when the snapshot
    turns out unusable.
    """

    def __init__(self, expected_version: int):
        self.expected_version = expected_version
        self.expected_size: int | None = None
        self.expected_crc32 = 0
        self.size = 0
        self.crc32 = 0
        self._head = b""
        # Format 2: the whole object, then its manifest once decoded.
        self.in_memory: bytearray | None = None
        self.manifest: snapshotparts.Manifest | None = None
        # The database's first bytes: its header names the page size.
        self._start = b""
        self._file, self._path = scratch.new_scratch_file()

    def __enter__(self) -> _ReceivedSnapshot:
        return self

    def __exit__(self, *exc_info) -> None:
        self._file.close()
        scratch.remove(self._path)

    def write(self, piece) -> None:
        if self.in_memory is not None:
            if len(self.in_memory) + len(piece) > MAX_OBJECT_IN_MEMORY:
                raise UnusableSnapshot(f"a format-2 snapshot object over {MAX_OBJECT_IN_MEMORY} bytes")
            self.in_memory += piece
            return
        if self.expected_size is None:
            piece = self._take_header(piece)
            if piece is None:
                return
        self.size += len(piece)
        if self.size > self.expected_size:
            raise UnusableSnapshot(f"more than the {self.expected_size} bytes the header says")
        self.crc32 = zlib.crc32(piece, self.crc32)
        if len(self._start) < 100:
            self._start += bytes(piece[: 100 - len(self._start)])
        self._file.write(piece)

    def _take_header(self, piece) -> memoryview | None:
        """Check the header once its line is complete and return the bytes
        after it; None while the line is still incomplete, or when the
        object is a format-2 one (kept whole in memory from then on)."""
        head = self._head + bytes(piece)
        end = head.find(b"\n", 0, MAX_HEADER)
        if end < 0:
            if len(head) >= MAX_HEADER:
                raise UnusableSnapshot("no snapshot header")
            self._head = head
            return None
        if head.startswith(b"linklog-snapshot %d " % snapshotparts.FORMAT_VERSION):
            self.in_memory = bytearray(head)
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

    def check(self) -> None:
        """Raise UnusableSnapshot unless the whole body arrived intact."""
        if self.manifest is not None:
            return  # unpack_parts checked every part
        if self.in_memory is not None:
            raise UnusableSnapshot("its parts were not unpacked")
        if self.expected_size is None:
            raise UnusableSnapshot("no snapshot header")
        if self.size != self.expected_size:
            raise UnusableSnapshot(f"{self.size} bytes where the header says {self.expected_size}")
        if self.crc32 != self.expected_crc32:
            raise UnusableSnapshot("checksum mismatch")

    def page_size(self) -> int:
        if self.manifest is not None:
            return self.manifest.page_size
        return deltas.page_size_of(self._start)

    def unpack_parts(
        self, store: ObjectStore, org: str, prefetched: dict[int, Future], manifest: Future,
        with_digests: bool,
    ) -> list[bytes]:
        """Write every part of the format-2 object received into the file;
        the pages' digests when ``with_digests``, else [].

        ``prefetched``: part index → the job (``_part_job``) already
        fetching it, waiting for ``manifest``, which this resolves.
        Raises UnusableParts or StoreError for a missing, damaged or
        foreign part; returns only once every job has ended, since each
        writes into the file.
        """
        jobs = dict(prefetched)
        try:
            found, part_zero = snapshotparts.decode(self.in_memory, self.expected_version)
            manifest.set_result(found)
            fd = self.fileno()
            for part in found.parts[1:]:
                if part.index not in jobs:
                    jobs[part.index] = fetchers.pool.submit(
                        _part_job, store, org, part.index, manifest, fd, with_digests)
            digests = _unpack_into(found, found.parts[0], part_zero, fd, with_digests)
            for index in sorted(jobs):
                digests += jobs[index].result()
        finally:
            if not manifest.done():
                manifest.set_exception(UnusableSnapshot("snapshot object unusable"))
            for job in jobs.values():
                job.exception()
        self.manifest = found
        return digests

    def write_deltas(self, chain: list[deltas.Delta]) -> dict[int, memoryview]:
        """Write checked deltas' pages, in order, over the (checked) database
        received; the pages written, by number."""
        written = deltas.write_into(chain, self._file, self.page_size())
        if chain:
            self.expected_version = chain[-1].version
        return written

    def fileno(self) -> int:
        """The scratch file's descriptor, for writing parts at their offsets."""
        return self._file.fileno()

    def source(self) -> BinaryIO:
        """The database's file open for reading (before it is unlinked)."""
        return open(self._path, "rb")

    def digests(self) -> deltas.PageDigests:
        """The digests of the pages of the database opened (before it is
        unlinked), with the file kept open for reading as their source."""
        return deltas.digests_of_file(self.source(), self.page_size())

    def open(self) -> apsw.Connection:
        """The database received (with any deltas written), checked; raises UnusableSnapshot."""
        self.check()
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


def _part_job(
    store: ObjectStore, org: str, index: int, manifest: Future, fd: int, with_digests: bool,
    key: str | None = None,
) -> list[bytes]:
    """Fetch part ``index`` (from ``key`` when the listing named it, so the
    GET need not wait for the manifest), then check it against the
    manifest and write it into ``fd``; its pages' digests when asked.

    A part job holds a thread of the fetchers pool while it waits for
    ``manifest``, yet no number of them (of any number of restores) can
    deadlock the pool: ``manifest`` is settled only by the thread running
    _restore_chain, which is never a pool thread (restores run on request
    and cycle threads; no pool task restores), and which waits for no pool
    task before settling it: it submits its jobs, downloads the base object
    itself, then sets the manifest (unpack_parts) or its failure
    (_restore_chain's ``finally``) before waiting for any job. Every other
    pool task waits for nothing. So each waiting part job is released by a
    thread that keeps running, and the jobs queued behind it then run.
    """
    if key is not None:
        stored = store.get(key).body
    found = manifest.result()
    expected = part_key(org, SCHEMA_HASH, found.version, found.writer, index,
                        compression.EXTENSIONS[found.codec])
    if key is None:
        stored = store.get(expected).body
    elif key != expected:
        raise snapshotparts.UnusableParts(f"{key} is not a part the snapshot object names")
    if index >= len(found.parts):
        raise snapshotparts.UnusableParts(f"part {index} of a snapshot of {len(found.parts)} parts")
    return _unpack_into(found, found.parts[index], stored, fd, with_digests)


def _unpack_into(
    manifest: snapshotparts.Manifest, part: snapshotparts.Part, stored, fd: int, with_digests: bool
) -> list[bytes]:
    data = snapshotparts.unpack(part, stored, manifest.codec)
    os.pwrite(fd, data, part.offset)
    return deltas.digest_pages(data, manifest.page_size) if with_digests else []


def write_snapshot(store: ObjectStore, org: str, db: apsw.Connection) -> str | None:
    """Store ``db`` as the full snapshot of its version, in parts
    (snapshotparts); return the snapshot object's key.

    The parts are compressed in threads (with the store's codec,
    chalicelib.compression) and put at once, each under this writer's
    random id, and the snapshot object (manifest and part 0)
    last, put-if-absent: snapshots are immutable, and two snapshots of one
    version hold equal states (the state is a function of the log), so
    finding one already there is success; our parts, which nothing names
    then, are deleted. An empty database (version 0) is not stored.
    Returns None, after logging, when a put fails. Whether a snapshot of
    this version is still worth writing (a newer one may exist) is the
    caller's decision.
    """
    written = _write_full(store, org, db, with_digests=False)
    return None if written is None else written.key


def _write_full(
    store: ObjectStore, org: str, db: apsw.Connection, *, with_digests: bool,
    source=None,
) -> Written | None:
    """The full snapshot of ``db``'s version, put if absent (None: not
    written, logged). ``with_digests``: also the digests of the pages
    stored, with ``source`` as their file, when our put wrote it."""
    at_version = version(db)
    if at_version == 0:
        return None
    key = snapshot_key(org, SCHEMA_HASH, at_version)
    data = _serialized(db)
    writer = os.urandom(8).hex()
    part_size = snapshotparts.PART_SIZE
    codec = compression.codec_of(store)
    stored = list(fetchers.pool.map(functools.partial(compression.compress, codec=codec),
                                    snapshotparts.split(data, part_size)))
    part_keys = [part_key(org, SCHEMA_HASH, at_version, writer, index, compression.EXTENSIONS[codec])
                 for index in range(1, len(stored))]
    puts = [fetchers.pool.submit(_put_part, store, part, body)
            for part, body in zip(part_keys, stored[1:])]
    failed = [future.exception() for future in puts if future.exception() is not None]
    if failed:
        log.warning("snapshot %s not written: a part's put failed: %s: %s",
                    key, type(failed[0]).__name__, failed[0])
        _delete_quietly(store, [part for part, future in zip(part_keys, puts)
                                if future.exception() is None])
        return None
    body = snapshotparts.encode(
        at_version=at_version, size=len(data), page_size=deltas.page_size_of(data[:100]),
        part_size=part_size, writer=writer, stored=stored, codec=codec,
    )
    # A failed put may have landed all the same (a lost answer): its parts stay.
    put = _put_once(store, key, body)
    if put is None:
        return None
    if put is _THERE:
        # Another writer's snapshot of this version is there: ours is not needed.
        _delete_quietly(store, part_keys)
        return Written(kind="full", key=key, chain_length=0)
    stored_size = len(body) + sum(len(part) for part in stored[1:])
    return Written(
        kind="full", key=key, chain_length=0,
        object=put,
        chain=Chain(base_key=key, base_version=at_version, base_size=stored_size,
                    tip_version=at_version),
        digests=deltas.digests_of_data(data, source) if with_digests else None,
    )


def _put_part(store: ObjectStore, key: str, body: bytes) -> None:
    """Put one part under this writer's own key, trying a failed put again.

    A snapshot of many parts is lost if any one put fails, so a part is
    worth a retry where a single object would not be. The key is ours
    alone (the writer id is random), so a 412 after a put whose answer was
    lost means that put landed.
    """
    for attempt in range(PART_PUT_ATTEMPTS):
        try:
            store.put(key, body, if_absent=True)
            return
        except PreconditionFailed:
            if attempt == 0:
                raise
            return
        except (Transient, Conflict):
            if attempt == PART_PUT_ATTEMPTS - 1:
                raise


def _delete_quietly(store: ObjectStore, keys: list[str]) -> None:
    """Delete objects nothing will read; what fails is left for pruning."""
    for key in keys:
        try:
            store.delete(key)
        except StoreError as error:
            log.warning("%s not deleted: %s: %s", key, type(error).__name__, error)


# _put_once's answer when an object of the key was there already.
_THERE = ObjectInfo(key="", etag="", size=0)


def _put_once(store: ObjectStore, key: str, body: bytes) -> ObjectInfo | None:
    """Put-if-absent: the object our put stored; ``_THERE`` when one was
    there already; None (logged) when the put failed.

    Not tried again, unlike a part (_put_part): this key is every writer's
    of the version, so a 412 after a put whose answer was lost could be
    our object or another writer's, and answering ``_THERE`` for our own
    would have the caller delete the parts it names."""
    try:
        etag = store.put(key, body, if_absent=True)
    except PreconditionFailed:
        return _THERE
    except StoreError as error:
        log.warning("snapshot %s not written: %s: %s", key, type(error).__name__, error)
        return None
    return ObjectInfo(key=key, etag=etag, size=len(body))


def write_next(
    store: ObjectStore,
    org: str,
    db: apsw.Connection,
    chain: Chain | None,
    digests: deltas.PageDigests | None,
    listed: Listed,
    *,
    max_chain: int | None = None,
    max_fraction: float | None = None,
    with_digests: bool = False,
) -> Written | None:
    """Store ``db``'s version as the cheapest object a restore can use.

    A delta on ``chain``, the one ``db`` was restored from (its pages then
    had ``digests``), when that chain is whole, its base is still the
    newest in ``listed`` (the snapshot objects the caller knows of), its tip
    is still the newest version there, and the chain stays within
    ``max_chain`` deltas and ``max_fraction`` of the base's bytes (MAX_CHAIN
    and MAX_CHAIN_FRACTION by default); otherwise a full snapshot, which
    starts a new chain. None, logged, when the put failed. Which version
    is worth writing at all is the caller's decision. ``with_digests``:
    a full snapshot also returns its pages' digests (a delta always does).
    """
    max_chain = MAX_CHAIN if max_chain is None else max_chain
    max_fraction = MAX_CHAIN_FRACTION if max_fraction is None else max_fraction
    on_newest = (
        chain is not None
        and digests is not None
        and chain.complete
        and listed.bases
        and listed.bases[-1].key == chain.base_key
        and listed.newest_version() == chain.tip_version
        and len(chain.deltas) < max_chain
    )
    if on_newest:
        changes = deltas.changed_pages(digests, db)
        if changes is not None:
            at_version = version(db)
            body = deltas.encode(
                base=chain.base_version, parent=chain.tip_version, at_version=at_version,
                page_size=changes.page_size, db_pages=changes.db_pages, pages=changes.pages,
                codec=compression.codec_of(store),
            )
            if chain.delta_bytes + len(body) <= max_fraction * chain.base_size:
                key = delta_key(org, SCHEMA_HASH, chain.base_version, at_version)
                put = _put_once(store, key, body)
                if put is None:
                    return None
                written = Written(kind="delta", key=key, chain_length=len(chain.deltas) + 1,
                                  delta_bytes=len(body), pages_changed=len(changes.pages))
                if put is _THERE:
                    return written
                return replace(
                    written, object=put, digests=changes.after,
                    chain=replace(chain, tip_version=at_version, deltas=chain.deltas + (key,),
                                  delta_bytes=chain.delta_bytes + len(body)),
                )
    source = digests.source if digests is not None else None
    return _write_full(store, org, db, with_digests=with_digests, source=source)


def list_objects(store: ObjectStore, org: str) -> Listed:
    """The org's full snapshots and deltas of this schema (pages through the listing)."""
    prefix = snapshot_prefix(org, SCHEMA_HASH)
    bases: list[ObjectInfo] = []
    found: dict[str, dict[int, list[ObjectInfo]]] = {"deltas": {}, "parts": {}}
    start_after = None
    while True:
        page = store.list(prefix, start_after=start_after)
        for info in page:
            name = info.key[len(prefix):]
            if _SNAPSHOT_NAME.fullmatch(name):
                bases.append(info)
            elif (named := _DELTA_NAME.fullmatch(name) or _PART_NAME.fullmatch(name)) is not None:
                kind = "deltas" if named.re is _DELTA_NAME else "parts"
                found[kind].setdefault(int(named["base"]), []).append(info)
        if len(page) < 1000:
            break
        start_after = page[-1].key
    listed = {version_of_snapshot_key(base.key) for base in bases}
    kept = {kind: {base: on_it for base, on_it in by_base.items() if base in listed}
            for kind, by_base in found.items()}
    orphans = [info for by_base in found.values() for base, on_it in by_base.items()
               if base not in listed for info in on_it]
    return Listed(bases=bases, deltas=kept["deltas"], parts=kept["parts"], orphans=orphans)


def list_snapshots(store: ObjectStore, org: str) -> list[ObjectInfo]:
    """The org's full snapshots of this schema, oldest first (pages through the listing)."""
    return list_objects(store, org).bases


def restore_latest(store: ObjectStore, org: str, *, with_digests: bool = False) -> Restored:
    """The newest usable snapshot (full plus deltas) of this schema, else an empty database.

    Tries the newest full snapshot with the longest valid prefix of its
    chain, then (if base and deltas together fail their checks) that base
    alone, then older bases (at most MAX_RESTORE_ATTEMPTS), and records why
    each was skipped. ``with_digests``: also take the restored pages'
    digests, for write_next. Never raises for a store failure or a damaged
    snapshot or delta.
    """
    skipped: list[tuple[str, str]] = []
    try:
        listed = list_objects(store, org)
    except StoreError as error:
        reason = f"listing failed: {type(error).__name__}: {error}"
        log.warning("snapshots of %s: %s", org, reason)
        skipped.append((snapshot_prefix(org, SCHEMA_HASH), reason))
        listed = Listed(bases=[], deltas={})
    attempts = []
    for base in reversed(listed.bases[-MAX_RESTORE_ATTEMPTS:]):
        on_it = listed.deltas_on(base)
        attempts.append((base, on_it))
        if on_it:
            attempts.append((base, []))
    for base, on_it in attempts:
        try:
            restored = _restore_chain(store, org, base, on_it, listed.parts_of(base), skipped,
                                      with_digests)
            restored.listed = listed
        except (StoreError, UnusableSnapshot, snapshotparts.UnusableParts, deltas.UnusableDelta,
                OSError) as error:
            # OSError: no room for the scratch copy; a replay, in memory,
            # may still do.
            reason = f"{type(error).__name__}: {error}"
            log.warning("snapshot %s skipped: %s", base.key, reason)
            skipped.append((base.key, reason))
            continue
        return restored
    return Restored(db=new_database(), version=0, key=None, skipped=skipped, listed=listed)


def _restore_chain(
    store: ObjectStore,
    org: str,
    base: ObjectInfo,
    on_it: list[ObjectInfo],
    parts: list[ObjectInfo],
    skipped: list[tuple[str, str]],
    with_digests: bool,
) -> Restored:
    """The base at ``base`` (its listed ``parts`` fetched at once with it)
    with the longest valid chain of ``on_it`` written into it; adds the
    deltas left out to ``skipped``."""
    started = time.perf_counter()
    base_version = version_of_snapshot_key(base.key)
    fetches = [(info, fetchers.pool.submit(_fetch_delta, store, info, base_version)) for info in on_it]
    with _ReceivedSnapshot(base_version) as received:
        manifest: Future = Future()
        prefetched = _prefetch_parts(store, org, parts, manifest, received, with_digests)
        try:
            info = store.download(base.key, received)
            if received.in_memory is not None:
                digests = received.unpack_parts(store, org, prefetched, manifest, with_digests)
        finally:
            if not manifest.done():
                manifest.set_exception(UnusableSnapshot("not a format-2 snapshot object"))
                for job in prefetched.values():
                    job.exception()
        received.check()
        fetched = []
        for delta_info, fetch in fetches:
            try:
                fetched.append((delta_info, fetch.result()))
            except (StoreError, deltas.UnusableDelta) as error:
                reason = f"{type(error).__name__}: {error}"
                log.warning("delta %s skipped: %s", delta_info.key, reason)
                skipped.append((delta_info.key, reason))
        downloaded = time.perf_counter() - started
        path = _longest_path(base_version, fetched)
        chain = [delta for _, delta in path]
        written = received.write_deltas(chain)
        db = received.open()
        if not with_digests:
            page_digests = None
        elif received.manifest is None:
            page_digests = received.digests()
        else:
            page_digests = deltas.PageDigests(
                page_size=received.page_size(),
                digests=tuple(deltas.updated_digests(digests, chain, written)),
                source=received.source(),
            )
    tip = path[-1][1].version if path else base_version
    stored_size = info.size + sum(part.size for part in parts)
    return Restored(
        db=db,
        version=tip,
        key=base.key,
        skipped=skipped,
        size=stored_size,
        get_seconds=downloaded,
        deserialize_seconds=time.perf_counter() - started - downloaded,
        digests=page_digests,
        chain=Chain(
            base_key=base.key,
            base_version=base_version,
            base_size=stored_size,
            tip_version=tip,
            deltas=tuple(delta_info.key for delta_info, _ in path),
            delta_bytes=sum(delta_info.size for delta_info, _ in path),
            complete=len(path) == len(on_it),
        ),
    )


def _prefetch_parts(
    store: ObjectStore, org: str, parts: list[ObjectInfo], manifest: Future,
    received: _ReceivedSnapshot, with_digests: bool,
) -> dict[int, Future]:
    """Start fetching the listed parts of a base before its object (and the
    manifest naming its writer) has arrived: index → job. Only when one
    writer's parts are listed; parts of several writers (one died, or
    lost the race) wait for the manifest to say whose to fetch."""
    named = [(_PART_NAME.search(info.key), info) for info in parts]
    if len({match["writer"] for match, _ in named}) != 1:
        return {}
    fd = received.fileno()
    return {
        int(match["index"]): fetchers.pool.submit(
            _part_job, store, org, int(match["index"]), manifest, fd, with_digests, info.key)
        for match, info in named
    }


def _fetch_delta(store: ObjectStore, info: ObjectInfo, base_version: int) -> deltas.Delta:
    body = store.get(info.key).body
    return deltas.decode(body, base=base_version, at_version=version_of_delta_key(info.key))


def _longest_path(
    base_version: int, fetched: list[tuple[ObjectInfo, deltas.Delta]]
) -> list[tuple[ObjectInfo, deltas.Delta]]:
    """The deltas to write, in order: from the base, each step the newest
    delta whose parent is the version reached so far. (Racing writers can
    leave two deltas on one parent; either gives a correct database.)"""
    path = []
    tip = base_version
    while True:
        children = [(info, delta) for info, delta in fetched if delta.parent == tip]
        if not children:
            return path
        step = max(children, key=lambda child: child[1].version)
        path.append(step)
        tip = step[1].version


def newest_version(store: ObjectStore, org: str) -> int:
    """The newest version the org's full snapshots and deltas of this schema hold, 0 if none."""
    return list_objects(store, org).newest_version()


def prune(store: ObjectStore, org: str, keep: int = 3) -> list[str]:
    """Delete all but the newest ``keep`` full snapshots of this schema, with
    their deltas, and the deltas whose base is gone; return the deleted keys.

    Snapshots of other schema hashes are left alone: an older deployment
    may still be reading them. Failures are logged, not raised.
    """
    if keep < 1:
        raise ValueError(f"keep at least one snapshot, not {keep}")
    try:
        listed = list_objects(store, org)
    except StoreError as error:
        log.warning("snapshots of %s not pruned: %s", org, error)
        return []
    return delete_snapshots(store, listed.bases[:-keep], listed)


def delete_snapshots(
    store: ObjectStore, bases: list[ObjectInfo], listed: Listed | None = None
) -> list[str]:
    """Delete these listed full snapshots, each only if its etag is still
    the listed one, with the deltas and parts on them ``listed`` names;
    return the deleted keys. Failures are logged, not raised.

    Deltas go first, so a delta is never left without its base, and parts
    last, so a snapshot object never names parts already gone. ``listed``'s
    orphans (parts and deltas whose base is gone) older than every base
    kept go too: they are what a writer or a prune killed half-way left.
    """
    doomed: list[ObjectInfo] = []
    for base in bases:
        doomed += listed.deltas_on(base) + [base] + listed.parts_of(base) if listed else [base]
    if listed is not None:
        kept = [version_of_snapshot_key(base.key) for base in listed.bases if base not in bases]
        oldest_kept = min(kept, default=0)
        doomed += [orphan for orphan in listed.orphans
                   if int(_BASE_OF.search(orphan.key)["base"]) < oldest_kept]
    deleted = []
    for info in doomed:
        try:
            store.delete(info.key, if_match=info.etag)
        except StoreError as error:
            log.warning("snapshot %s not pruned: %s: %s", info.key, type(error).__name__, error)
            continue
        deleted.append(info.key)
    return deleted
