"""Log packs: old ranges of the log read in one request instead of one per commit.

A pack is one immutable object holding the stored bytes of a range of
consecutive commits, ``orgs/{org}/packs/{last}-{first}.pack``. Ranges are
aligned and levelled (LEVELS: 8, 32, 128 and 512 commits, each four of the
level below), written put-if-absent once the whole range is committed. When
a larger pack is written, the smaller ones inside it are deleted, so the
packs of an org are a handful of disjoint ranges: one listing names them
all, and reading a 1,500-commit log from the start takes about 15 GETs.

The commit objects stay the truth. A pack that is missing, damaged (bad
checksum, bad header) or names another org or range, or whose commits do
not sit at their positions, is passed over and its range read commit by
commit; a damaged commit copied into a pack reads as the same stand-in as
the commit object (``log.commit_or_stand_in``).

Pack body: one JSON header line, then the commits' stored bytes one after
another, compressed with zlib (the text of saved pages shrinks about 3×)::

    {"format": "linklog-pack/1", "org": ..., "first": ..., "last": ...,
     "lengths": [bytes of each commit], "sha256": of the uncompressed bytes}\\n
    zlib(commit bytes ...)
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass

from chalicelib import fetchers, log
from chalicelib.keys import check_org, log_key, pack_key, pack_prefix, range_of_pack_key
from chalicelib.store.base import NotFound, ObjectStore, PreconditionFailed, StoreError

LEVELS = (8, 32, 128, 512)
FORMAT = "linklog-pack/1"
# Fast compression: a pack is written once by a cycle within its budget,
# and level 1 already gets most of the gain (3.2× against 4× at level 6,
# five times faster).
COMPRESSION_LEVEL = 1
# The bytes of compressed packs one process keeps for the next pages of a
# pull; about three 10,000-link orgs' whole logs.
CACHE_BYTES = 64 << 20
# A pack's header may not promise more than this (a damaged header must
# not make a reader inflate without bound).
MAX_PACK_BYTES = 1 << 30
# Packs written by one call at most: an org that never had packs gets
# them over several cycles instead of one cycle reading its whole log.
MAX_PUTS_PER_CALL = 4

logger = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class Pack:
    """A pack object that a listing named: commits ``first..last``."""

    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


def level_range(size: int, version: int) -> Pack:
    """The aligned range of ``size`` commits holding ``version``."""
    first = (version - 1) // size * size + 1
    return Pack(first, first + size - 1)


def list_packs(store: ObjectStore, org: str, after: int = 0) -> list[Pack]:
    """The packs holding some version above ``after``, in order of their last version.

    Objects under packs/ with other names are passed over.
    """
    check_org(org)
    prefix = pack_prefix(org)
    # "~" sorts after every pack name ending at ``after``.
    start_after = f"{prefix}{after:020d}-~" if after > 0 else None
    found: list[Pack] = []
    while True:
        listed = store.list(prefix, start_after=start_after, limit=1000)
        for info in listed:
            named = range_of_pack_key(info.key)
            if named is not None:
                found.append(Pack(*named))
        if len(listed) < 1000:
            return found
        start_after = listed[-1].key


def encode_pack(org: str, first: int, bodies: list[bytes]) -> bytes:
    """The pack object for the stored commit bodies of versions ``first``..."""
    payload = b"".join(bodies)
    header = {
        "format": FORMAT,
        "org": org,
        "first": first,
        "last": first + len(bodies) - 1,
        "lengths": [len(body) for body in bodies],
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    return json.dumps(header).encode() + b"\n" + zlib.compress(payload, COMPRESSION_LEVEL)


class UnusablePack(Exception):
    """A pack object that must not be read: its range is read commit by commit."""


def decode_pack(org: str, pack: Pack, body: bytes) -> list[bytes]:
    """The stored commit bodies a pack object holds; raises UnusablePack.

    Checked: the header names this org and range, the lengths add up, the
    checksum matches, and every commit that parses sits at its position.
    """
    line, newline, compressed = body.partition(b"\n")
    try:
        header = json.loads(line)
        lengths = header["lengths"]
        named = (header["format"], header["org"], header["first"], header["last"])
        ok = (
            named == (FORMAT, org, pack.first, pack.last)
            and newline
            and isinstance(lengths, list)
            and len(lengths) == pack.size
            and all(type(length) is int and length >= 0 for length in lengths)
            and isinstance(header["sha256"], str)
        )
    except (ValueError, TypeError, KeyError, RecursionError):
        ok = False
    if not ok:
        raise UnusablePack("its header does not name this org and range")
    expected = sum(lengths)
    if expected > MAX_PACK_BYTES:
        raise UnusablePack(f"its header promises {expected} bytes")
    try:
        inflater = zlib.decompressobj()
        payload = inflater.decompress(compressed, expected + 1)
    except zlib.error as error:
        raise UnusablePack(f"not zlib: {error}") from None
    if len(payload) != expected or hashlib.sha256(payload).hexdigest() != header["sha256"]:
        raise UnusablePack("its checksum does not match")
    bodies, offset = [], 0
    for version, length in enumerate(lengths, start=pack.first):
        commit = payload[offset : offset + length]
        offset += length
        _check_position(org, version, commit)
        bodies.append(commit)
    return bodies


def _check_position(org: str, version: int, body: bytes) -> None:
    """A commit that parses must name this org and version; one that does
    not parse is a damaged commit copied as it is, read as its stand-in."""
    try:
        commit = json.loads(body)
    except (ValueError, RecursionError):
        return
    if not isinstance(commit, dict):
        return
    if commit.get("version", version) != version or commit.get("org", org) != org:
        raise UnusablePack(f"version {version} holds another commit")


class PackCache:
    """Checked packs and single commits this process read lately, least recently used out first.

    A pull of a long log asks for one page of commits at a time; the pack
    holding the next page is usually the one the last page came from. The
    compressed bodies are kept (bounded by ``max_bytes``); the last pack
    inflated is kept whole, so consecutive pages inflate it once.
    """

    def __init__(self, max_bytes: int = CACHE_BYTES):
        self.max_bytes = max_bytes
        self._packs: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._inflated: tuple[str, list[bytes]] | None = None
        self._lock = threading.Lock()

    def get_commit(self, org: str, version: int) -> bytes | None:
        """The stored body of a single commit read lately, if kept."""
        key = log_key(org, version)
        with self._lock:
            body = self._packs.get(key)
            if body is not None:
                self._packs.move_to_end(key)
            return body

    def put_commit(self, org: str, version: int, body: bytes) -> None:
        """Keep a single commit's body: a cold pull reads the commits above
        the newest pack once for its index and again for its pages."""
        with self._lock:
            self._keep(log_key(org, version), body)

    def get(self, org: str, pack: Pack) -> list[bytes] | None:
        key = pack_key(org, pack.first, pack.last)
        with self._lock:
            if self._inflated is not None and self._inflated[0] == key:
                return self._inflated[1]
            body = self._packs.get(key)
            if body is None:
                return None
            self._packs.move_to_end(key)
        # It was checked when it came in; only inflating is left.
        bodies = decode_pack(org, pack, body)
        with self._lock:
            self._inflated = (key, bodies)
        return bodies

    def put(self, org: str, pack: Pack, body: bytes, bodies: list[bytes]) -> None:
        key = pack_key(org, pack.first, pack.last)
        with self._lock:
            self._inflated = (key, bodies)
            self._keep(key, body)

    def _keep(self, key: str, body: bytes) -> None:
        """Add ``body`` under ``key`` (hold the lock), dropping the least recently used."""
        if key in self._packs or len(body) > self.max_bytes:
            return
        self._packs[key] = body
        self._bytes += len(body)
        while self._bytes > self.max_bytes:
            _, dropped = self._packs.popitem(last=False)
            self._bytes -= len(dropped)


def read_pack(store: ObjectStore, org: str, pack: Pack, cache: PackCache | None) -> list[bytes] | None:
    """The commit bodies of ``pack``, or None when it is missing or unusable."""
    if cache is not None:
        cached = cache.get(org, pack)
        if cached is not None:
            return cached
    key = pack_key(org, pack.first, pack.last)
    try:
        body = store.get(key).body
    except NotFound:
        return None
    try:
        bodies = decode_pack(org, pack, body)
    except UnusablePack as error:
        logger.error("unusable pack %s: %s", key, error)
        return None
    if cache is not None:
        cache.put(org, pack, body, bodies)
    return bodies


def _commit_body(store: ObjectStore, org: str, version: int, cache: PackCache | None) -> bytes:
    if cache is not None and (kept := cache.get_commit(org, version)) is not None:
        return kept
    key = log_key(org, version)
    try:
        body = store.get(key).body
    except NotFound:
        raise log.CorruptLog(key, "missing below the head of the log") from None
    if cache is not None:
        cache.put_commit(org, version, body)
    return body


def read_bodies(
    store: ObjectStore,
    org: str,
    first: int,
    last: int,
    packs: list[Pack],
    cache: PackCache | None = None,
) -> list[bytes]:
    """The stored bodies of commits ``first..last``, which must all be committed.

    Ranges a listed pack holds come from the largest such pack; the rest,
    and the ranges of packs that turn out missing or unusable, from the
    commit objects. Everything is fetched a few requests at a time.
    Raises CorruptLog when a commit object that no pack holds is missing.
    """
    if last < first:
        return []
    found: dict[int, bytes] = {}
    usable = sorted(set(packs), key=lambda pack: -pack.size)
    while True:
        pending = [version for version in range(first, last + 1) if version not in found]
        if not pending:
            return [found[version] for version in range(first, last + 1)]
        plan: dict[Pack, None] = {}
        singles: list[int] = []
        for version in pending:
            holder = next((pack for pack in usable if pack.first <= version <= pack.last), None)
            if holder is None:
                singles.append(version)
            else:
                plan[holder] = None
        # Both maps are submitted before either is waited on.
        pack_reads = fetchers.pool.map(lambda pack: read_pack(store, org, pack, cache), plan)
        commit_reads = fetchers.pool.map(lambda version: _commit_body(store, org, version, cache), singles)
        from_packs = dict(zip(plan, pack_reads))
        found.update(zip(singles, commit_reads))
        for pack, bodies in from_packs.items():
            if bodies is None:
                # Read its range again without it: smaller packs or commits.
                usable.remove(pack)
                continue
            for version in range(max(first, pack.first), min(last, pack.last) + 1):
                found.setdefault(version, bodies[version - pack.first])


def decode_bodies(org: str, first: int, bodies: list[bytes]) -> list[dict]:
    """The commits of versions ``first``... from their stored bodies (stand-ins for damaged ones)."""
    return [log.commit_or_stand_in(org, version, body) for version, body in enumerate(bodies, start=first)]


def read_commits(
    store: ObjectStore,
    org: str,
    after: int,
    upto: int,
    packs: list[Pack],
    cache: PackCache | None = None,
) -> list[dict]:
    """Commits ``after + 1..upto`` (all committed), checked as ``log.read_commits`` checks them."""
    bodies = read_bodies(store, org, after + 1, upto, packs, cache)
    return decode_bodies(org, after + 1, bodies)


def find_head(store: ObjectStore, org: str) -> tuple[int, list[Pack]]:
    """The head of ``org``'s log and its packs, in two listings when packs exist.

    The newest pack's last version is committed, so the log is listed
    from there rather than galloped to from the start.
    """
    packs = list_packs(store, org)
    known = max((pack.last for pack in packs), default=0)
    return log.find_head(store, org, known), packs


class LogReader:
    """Reads an org's log forward from any version, packs first.

    For callers that read the log page by page (a replay): the packs are
    listed once, and the head is learnt from them and one listing of the
    commits above the newest pack.
    """

    def __init__(self, store: ObjectStore, org: str, cache: PackCache | None = None):
        self.store = store
        self.org = check_org(org)
        self.cache = cache if cache is not None else PackCache()
        self._head: int | None = None
        self._packs: list[Pack] = []

    def read(self, after: int, limit: int = log.LIST_PAGE) -> list[dict]:
        """Up to ``limit`` commits after ``after``, as ``log.read_commits`` returns them."""
        if self._head is None and after == 0:
            self._head, self._packs = find_head(self.store, self.org)
        elif self._head is None:
            # As read_commits would: one listing from ``after``. The packs
            # are listed only when they can save more than that listing.
            self._head = log.find_head(self.store, self.org, after)
            if worth_listing_packs(after, self._head):
                self._packs = list_packs(self.store, self.org, after)
        elif after + limit > self._head:
            # The head may have moved since we looked.
            self._head = log.find_head(self.store, self.org, self._head)
        upto = min(self._head, after + limit)
        return read_commits(self.store, self.org, after, upto, self._packs, self.cache)


def worth_listing_packs(after: int, upto: int) -> bool:
    """Whether versions ``after + 1..upto`` hold a whole range of the smallest level."""
    smallest = LEVELS[0]
    first_whole_range_ends = -(-after // smallest) * smallest + smallest
    return first_whole_range_ends <= upto


def missing_packs(head: int, packs: list[Pack]) -> list[Pack]:
    """The complete ranges no listed pack of their size or larger holds, largest first.

    Largest first: a long log that never had packs is packed at 512
    commits, not eight at a time and then again in larger packs.
    """
    covered = set(packs)
    wanted: list[Pack] = []
    for size in sorted(LEVELS, reverse=True):
        larger = [other for other in LEVELS if other >= size]
        for end in range(size, head + 1, size):
            pack = Pack(end - size + 1, end)
            # Levels nest, so only the aligned ranges holding this one can cover it.
            if not any(level_range(other, end) in covered for other in larger):
                wanted.append(pack)
                covered.add(pack)
    return wanted


def write_packs(
    store: ObjectStore,
    org: str,
    head: int,
    *,
    max_puts: int = MAX_PUTS_PER_CALL,
    cache: PackCache | None = None,
) -> list[Pack]:
    """Write the packs of complete ranges up to ``head`` that are missing; return them.

    Each pack is put if absent (a pack already there was written by
    another writer from the same commits, so it is as good as ours), then
    the smaller packs inside it are deleted. Commits are read through the
    packs that exist, so a pack of 512 reads four packs of 128. A range
    with a missing commit is not packed. At most ``max_puts`` packs.
    ``cache`` holds commits and packs the caller read or wrote already (a
    processor cycle's): only what it lacks is read, and the packs written
    go into it.
    """
    packs = list_packs(store, org)
    # Left behind by a writer that stopped between a put and its deletes.
    for pack in packs:
        packs = _delete_inside(store, org, pack, packs)
    written: list[Pack] = []
    for pack in missing_packs(head, packs)[:max_puts]:
        try:
            bodies = read_bodies(store, org, pack.first, pack.last, packs, cache)
        except log.CorruptLog as error:
            logger.error("not packing %s..%s: %s", pack.first, pack.last, error)
            break
        key = pack_key(org, pack.first, pack.last)
        body = encode_pack(org, pack.first, bodies)
        try:
            store.put(key, body, if_absent=True)
        except PreconditionFailed:
            pass
        if cache is not None:
            cache.put(org, pack, body, bodies)
        written.append(pack)
        packs = _delete_inside(store, org, pack, packs + [pack])
    return written


def _delete_inside(store: ObjectStore, org: str, pack: Pack, packs: list[Pack]) -> list[Pack]:
    """Delete the listed packs strictly inside ``pack``; the packs left."""
    inside = [other for other in packs if other != pack and pack.first <= other.first and other.last <= pack.last]
    for other in inside:
        try:
            store.delete(pack_key(org, other.first, other.last))
        except StoreError as error:
            # Left behind it costs a listing entry, nothing else.
            logger.warning("pack %s..%s not deleted: %s", other.first, other.last, error)
    return [other for other in packs if other not in inside]
