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

Incremental snapshots: a full snapshot is the base of a chain of deltas
(chalicelib.deltas), each holding the pages one cycle changed. A cycle
writes a delta on the chain it restored from while that chain is the
newest and short; otherwise it writes a full snapshot, which starts a new
chain (compaction). Restoring fetches the base and its deltas at once,
follows the deltas from the base parent by parent, and stops at the first
one missing or damaged: the longest valid prefix, plus the log after it.
Keys::

    orgs/<org>/snapshots/<schema>/<base version>.sqlite
    orgs/<org>/snapshots/<schema>/<base version>.deltas/<version>.delta
"""

from __future__ import annotations

import logging
import re
import time
import zlib
from dataclasses import dataclass, field, replace

import apsw

from chalicelib import deltas, fetchers, scratch
from chalicelib.keys import (
    delta_key,
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
from chalicelib.store.base import ObjectInfo, ObjectStore, PreconditionFailed, StoreError

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

_SNAPSHOT_NAME = re.compile(r"^[0-9]{20}\.sqlite$")
_DELTA_NAME = re.compile(r"^(?P<base>[0-9]{20})\.deltas/(?P<version>[0-9]{20})\.delta$")
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
    that base's deltas, oldest first (deltas whose base is gone are left out).
    ``orphans``: the deltas whose base is gone, which no restore can use.
    """

    bases: list[ObjectInfo]
    deltas: dict[int, list[ObjectInfo]]
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

    def with_delta(self, base_version: int, delta: ObjectInfo) -> Listed:
        """This listing with one more delta, newest, on the base at ``base_version``."""
        on_it = self.deltas.get(base_version, []) + [delta]
        return Listed(bases=self.bases, deltas={**self.deltas, base_version: on_it})

    def without(self, keys: list[str]) -> Listed:
        """This listing less the objects named by ``keys`` (deleted ones)."""
        gone = set(keys)
        bases = [base for base in self.bases if base.key not in gone]
        kept = {version_of_snapshot_key(base.key) for base in bases}
        return Listed(
            bases=bases,
            deltas={
                version: [info for info in on_it if info.key not in gone]
                for version, on_it in self.deltas.items()
                if version in kept
            },
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
        # The database's first bytes: its header names the page size.
        self._start = b""
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
        if len(self._start) < 100:
            self._start += bytes(piece[: 100 - len(self._start)])
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

    def check(self) -> None:
        """Raise UnusableSnapshot unless the whole body arrived intact."""
        if self.expected_size is None:
            raise UnusableSnapshot("no snapshot header")
        if self.size != self.expected_size:
            raise UnusableSnapshot(f"{self.size} bytes where the header says {self.expected_size}")
        if self.crc32 != self.expected_crc32:
            raise UnusableSnapshot("checksum mismatch")

    def write_deltas(self, chain: list[deltas.Delta]) -> None:
        """Write checked deltas' pages, in order, over the (checked) database received."""
        deltas.write_into(chain, self._file, deltas.page_size_of(self._start))
        if chain:
            self.expected_version = chain[-1].version

    def digests(self) -> deltas.PageDigests:
        """The digests of the pages of the database opened (before it is
        unlinked), with the file kept open for reading as their source."""
        return deltas.digests_of_file(open(self._path, "rb"), deltas.page_size_of(self._start))

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


def write_snapshot(store: ObjectStore, org: str, db: apsw.Connection) -> str | None:
    """Store ``db`` as the full snapshot of its version; return its key.

    Put-if-absent: snapshots are immutable, and two snapshots of one version
    are equal (the state is a function of the log), so finding one already
    there is success. An empty database (version 0) is not stored. Returns
    None, after logging, when the put fails. Whether a snapshot of this
    version is still worth writing (a newer one may exist) is the caller's
    decision.
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
    body = encode(db)
    put = _put_once(store, key, body)
    if put is None:
        return None
    if put is _THERE:
        return Written(kind="full", key=key, chain_length=0)
    data = memoryview(body)[body.index(b"\n") + 1 :]
    return Written(
        kind="full", key=key, chain_length=0,
        object=put,
        chain=Chain(base_key=key, base_version=at_version, base_size=len(body),
                    tip_version=at_version),
        digests=deltas.digests_of_data(data, source) if with_digests else None,
    )


# _put_once's answer when an object of the key was there already.
_THERE = ObjectInfo(key="", etag="", size=0)


def _put_once(store: ObjectStore, key: str, body: bytes) -> ObjectInfo | None:
    """Put-if-absent: the object our put stored; ``_THERE`` when one was
    there already; None (logged) when the put failed."""
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
    found_deltas: dict[int, list[ObjectInfo]] = {}
    start_after = None
    while True:
        page = store.list(prefix, start_after=start_after)
        for info in page:
            name = info.key[len(prefix):]
            if _SNAPSHOT_NAME.fullmatch(name):
                bases.append(info)
            elif (delta := _DELTA_NAME.fullmatch(name)) is not None:
                found_deltas.setdefault(int(delta["base"]), []).append(info)
        if len(page) < 1000:
            break
        start_after = page[-1].key
    listed = {version_of_snapshot_key(base.key) for base in bases}
    return Listed(
        bases=bases,
        deltas={base: on_it for base, on_it in found_deltas.items() if base in listed},
        orphans=[info for base, on_it in found_deltas.items() if base not in listed for info in on_it],
    )


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
            restored = _restore_chain(store, base, on_it, skipped, with_digests)
            restored.listed = listed
        except (StoreError, UnusableSnapshot, deltas.UnusableDelta, OSError) as error:
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
    base: ObjectInfo,
    on_it: list[ObjectInfo],
    skipped: list[tuple[str, str]],
    with_digests: bool,
) -> Restored:
    """The base at ``base`` with the longest valid chain of ``on_it`` written
    into it; adds the deltas left out to ``skipped``."""
    started = time.perf_counter()
    base_version = version_of_snapshot_key(base.key)
    fetches = [(info, fetchers.pool.submit(_fetch_delta, store, info, base_version)) for info in on_it]
    with _ReceivedSnapshot(base_version) as received:
        info = store.download(base.key, received)
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
        received.write_deltas([delta for _, delta in path])
        db = received.open()
        digests = received.digests() if with_digests else None
    tip = path[-1][1].version if path else base_version
    return Restored(
        db=db,
        version=tip,
        key=base.key,
        skipped=skipped,
        size=info.size,
        get_seconds=downloaded,
        deserialize_seconds=time.perf_counter() - started - downloaded,
        digests=digests,
        chain=Chain(
            base_key=base.key,
            base_version=base_version,
            base_size=info.size,
            tip_version=tip,
            deltas=tuple(delta_info.key for delta_info, _ in path),
            delta_bytes=sum(delta_info.size for delta_info, _ in path),
            complete=len(path) == len(on_it),
        ),
    )


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
    the listed one, and the deltas on them ``listed`` names (first, so a
    restore never finds deltas without their base); return the deleted
    keys. Failures are logged, not raised.

    The deltas ``listed`` found without a base are deleted too (a failed
    delete of an earlier pruning leaves them, or a stale processor's delta
    on a base being pruned): a base is written before any delta on it, so
    one missing from the listing is gone for good, and no restore can use
    its deltas.
    """
    doomed: list[ObjectInfo] = []
    for base in bases:
        doomed += (listed.deltas_on(base) if listed else []) + [base]
    doomed += listed.orphans if listed else []
    deleted = []
    for info in doomed:
        try:
            store.delete(info.key, if_match=info.etag)
        except StoreError as error:
            log.warning("snapshot %s not pruned: %s: %s", info.key, type(error).__name__, error)
            continue
        deleted.append(info.key)
    return deleted
