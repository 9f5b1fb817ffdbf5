"""Snapshot deltas: the database pages one cycle changed, as an immutable object.

A delta sits on a full snapshot (its base) or on an earlier delta of the
same base (its parent), and turns the parent's database into the one at
its own version. Restoring is writing its pages into a copy of the
parent's file (chalicelib.snapshots puts base and deltas together).

Which pages changed is found by comparing page digests: the restore takes
the digest of every page of the database it produced (``PageDigests``),
and after the cycle the pages whose digest differs, or that are new, are
the delta. SHA-1 per 4 KiB page: the fastest digest hashlib has here
(about 0.3 s for 90 MB, where BLAKE2b takes 0.56), and a digest, unlike
CRC-32, does not let a changed page pass for unchanged once in four
billion pages. docs/decisions.md has the figures and the other designs
weighed.

Body format: one ASCII header line, then ``pages`` records of a 4-byte
big-endian page number (from 1) and the page's bytes, compressed as one
zstd frame (chalicelib.compression)::

    linklog-delta 2 schema=<SCHEMA_HASH> base=<n> parent=<n> version=<n> page_size=<bytes> db_pages=<n> pages=<n> crc32=<8 hex>\\n

``db_pages`` is the database's length in pages at ``version`` (a database
can shrink). The CRC-32 covers everything after the header. Format 1 is
the same with the records stored as they are: what deployments wrote
before snapshots were compressed, and what a store whose codec is none
(the local store, chalicelib.compression) writes now.
"""

from __future__ import annotations

import hashlib
import os
import re
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import apsw

from chalicelib import compression
from chalicelib.state.schema import SCHEMA_HASH

FORMAT_VERSION = 2
# Format 1: the records stored uncompressed.
READABLE_FORMATS = (1, 2)
MAX_HEADER = 512
_PAGE_NUMBER_BYTES = 4

_HEADER = re.compile(
    rb"^linklog-delta (?P<format>[0-9]+) schema=(?P<schema>[0-9a-f]+) base=(?P<base>[0-9]+) "
    rb"parent=(?P<parent>[0-9]+) version=(?P<version>[0-9]+) page_size=(?P<page_size>[0-9]+) "
    rb"db_pages=(?P<db_pages>[0-9]+) pages=(?P<pages>[0-9]+) crc32=(?P<crc32>[0-9a-f]{8})$"
)


class UnusableDelta(Exception):
    """A delta object that cannot be trusted; the message says why."""


@dataclass(frozen=True)
class PageDigests:
    """The digest of every page of a database, as a restore produced it.

    ``source``, when there is one, is the database's own file open for
    reading: the pages as the connection has committed them, read without
    a serialized copy. Close it (``close``) when the database is done.
    """

    page_size: int
    digests: tuple[bytes, ...]
    source: BinaryIO | None = None

    def close(self) -> None:
        if self.source is not None:
            self.source.close()


@dataclass(frozen=True)
class Delta:
    """A checked delta: the pages to write over its parent's database."""

    base: int
    parent: int
    version: int
    page_size: int
    db_pages: int
    pages: tuple[tuple[int, memoryview], ...]


def page_size_of(data: bytes) -> int:
    """The page size a SQLite database file's header names."""
    size = int.from_bytes(data[16:18], "big")
    # The header stores 65536 as 1, which fits in two bytes.
    return 65536 if size == 1 else size


def page_digest(page) -> bytes:
    """One page's digest: what tells a changed page from the base's."""
    return hashlib.sha1(page).digest()


def digest_pages(data, page_size: int) -> list[bytes]:
    """The digest of each page of ``data`` (whole pages), in order."""
    view = memoryview(data)
    return [page_digest(view[at : at + page_size]) for at in range(0, len(data), page_size)]


def _pieces(file: BinaryIO, page_size: int):
    """The file from its start in pieces of whole pages (one buffer, reused)."""
    file.seek(0)
    piece = bytearray(page_size * 256)
    while read := file.readinto(piece):
        yield memoryview(piece)[:read]


def digests_of_file(file: BinaryIO, page_size: int) -> PageDigests:
    """The digests of the pages of the database in ``file``, which becomes
    their ``source``. Read in pieces rather than from a serialized copy,
    which would cost fresh memory for the whole database."""
    found: list[bytes] = []
    for piece in _pieces(file, page_size):
        found.extend(digest_pages(piece, page_size))
    return PageDigests(page_size=page_size, digests=tuple(found), source=file)


@dataclass(frozen=True)
class Changes:
    """What changed_pages found: the pages that differ, ``(page number,
    bytes)`` from 1, the database's length in pages, and ``after``, the
    digests of every page now (the next delta's ``before``)."""

    page_size: int
    db_pages: int
    pages: list[tuple[int, bytes]]
    after: PageDigests


def changed_pages(before: PageDigests, db: apsw.Connection) -> Changes | None:
    """The pages of ``db`` that differ from ``before``; None when the page
    size changed (only a full snapshot can say that). Read from
    ``before.source`` when there is one, else from a serialized copy of ``db``."""
    page_size = before.page_size
    if before.source is not None:
        pieces = _pieces(before.source, page_size)
    else:
        pieces = iter([memoryview(db.serialize("main"))])
    changed: list[tuple[int, bytes]] = []
    now: list[bytes] = []
    for piece in pieces:
        if len(piece) % page_size or (not now and page_size_of(piece) != page_size):
            return None
        for at, digest in zip(range(0, len(piece), page_size), digest_pages(piece, page_size)):
            number = len(now)
            if number >= len(before.digests) or digest != before.digests[number]:
                changed.append((number + 1, bytes(piece[at : at + page_size])))
            now.append(digest)
    after = PageDigests(page_size=page_size, digests=tuple(now), source=before.source)
    return Changes(page_size=page_size, db_pages=len(now), pages=changed, after=after)


def digests_of_data(data, source: BinaryIO | None = None) -> PageDigests:
    """The digests of the pages of the serialized database ``data``, with
    ``source`` (the file the database lives in, if any) to read them from later."""
    page_size = page_size_of(data)
    return PageDigests(page_size=page_size, digests=tuple(digest_pages(data, page_size)),
                       source=source)


def encode(
    *, base: int, parent: int, at_version: int, page_size: int, db_pages: int,
    pages: list[tuple[int, bytes]], codec: str = compression.ZSTD,
) -> bytes:
    """The delta body for ``pages`` (from changed_pages) on top of ``parent``,
    with the store's ``codec``: zstd is format 2; none is format 1, whose
    records are stored as they are (so a chain's bytes weigh against its
    base's alike whichever codec the store chose, for the compaction bound)."""
    records = bytearray()
    for number, page in pages:
        records += number.to_bytes(_PAGE_NUMBER_BYTES, "big")
        records += page
    body = compression.compress(records, codec)
    format_version = 1 if codec == compression.NONE else FORMAT_VERSION
    header = (
        f"linklog-delta {format_version} schema={SCHEMA_HASH} base={base} parent={parent} "
        f"version={at_version} page_size={page_size} db_pages={db_pages} pages={len(pages)} "
        f"crc32={zlib.crc32(body):08x}\n"
    )
    return header.encode("ascii") + body


def decode(body: bytes, *, base: int, at_version: int) -> Delta:
    """The delta a body holds, checked against the base and version its key
    names; raises UnusableDelta."""
    end = body.find(b"\n", 0, MAX_HEADER)
    if end < 0:
        raise UnusableDelta("no delta header")
    header = _HEADER.fullmatch(body[:end])
    if header is None:
        raise UnusableDelta("malformed delta header")
    if int(header["format"]) not in READABLE_FORMATS:
        raise UnusableDelta(f"delta format {int(header['format'])} is not one of {READABLE_FORMATS}")
    if header["schema"].decode() != SCHEMA_HASH:
        raise UnusableDelta(f"header names schema {header['schema'].decode()}")
    fields = {name: int(header[name]) for name in
              ("base", "parent", "version", "page_size", "db_pages", "pages")}
    if (fields["base"], fields["version"]) != (base, at_version):
        raise UnusableDelta(f"header names base {fields['base']} and version {fields['version']}")
    if not fields["base"] <= fields["parent"] < fields["version"]:
        raise UnusableDelta(f"parent {fields['parent']} is not between base and version")
    page_size = fields["page_size"]
    if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        raise UnusableDelta(f"page size {page_size}")
    stored = memoryview(body)[end + 1 :]
    if zlib.crc32(stored) != int(header["crc32"], 16):
        raise UnusableDelta("checksum mismatch")
    record = _PAGE_NUMBER_BYTES + page_size
    if int(header["format"]) == 1:
        records = stored
    else:
        try:
            records = memoryview(compression.decompress(stored, fields["pages"] * record))
        except compression.Undecodable as error:
            raise UnusableDelta(f"records: {error}") from None
    if len(records) != fields["pages"] * record:
        raise UnusableDelta(f"{len(records)} bytes where the header says {fields['pages']} pages")
    pages = []
    for at in range(0, len(records), record):
        number = int.from_bytes(records[at : at + _PAGE_NUMBER_BYTES], "big")
        if not 1 <= number <= fields["db_pages"]:
            raise UnusableDelta(f"page {number} outside a database of {fields['db_pages']} pages")
        pages.append((number, records[at + _PAGE_NUMBER_BYTES : at + record]))
    return Delta(
        base=fields["base"],
        parent=fields["parent"],
        version=fields["version"],
        page_size=page_size,
        db_pages=fields["db_pages"],
        pages=tuple(pages),
    )


def write_into(chain: list[Delta], file: BinaryIO, page_size: int) -> dict[int, memoryview]:
    """Write the pages of ``chain`` (checked deltas, in order) over the
    parent's database in ``file`` and cut it to the last delta's length;
    return the pages written, by number. Raises UnusableDelta for another
    page size. A page several deltas changed is written once, as the last
    of them left it."""
    if any(delta.page_size != page_size for delta in chain):
        raise UnusableDelta(f"a delta of another page size on a database of {page_size}")
    newest: dict[int, memoryview] = {}
    for delta in chain:
        newest.update(delta.pages)
    file.flush()
    fd = file.fileno()
    for number in sorted(newest):
        os.pwrite(fd, newest[number], (number - 1) * page_size)
    if chain:
        os.ftruncate(fd, chain[-1].db_pages * page_size)
    return newest


def updated_digests(digests: list[bytes], chain: list[Delta], written: dict[int, memoryview]) -> list[bytes]:
    """The digests of a database's pages after write_into wrote ``written``
    (the pages of ``chain``) over the pages ``digests`` describe."""
    if not chain:
        return digests
    page_size = chain[-1].page_size
    updated = digests[: chain[-1].db_pages]
    updated += [b""] * (chain[-1].db_pages - len(updated))
    for number, page in written.items():
        if number <= len(updated):
            updated[number - 1] = page_digest(page)
    if any(digest == b"" for digest in updated):
        # A page past the base's end that no delta wrote: it reads as zeros.
        zeros = page_digest(bytes(page_size))
        updated = [digest or zeros for digest in updated]
    return updated
