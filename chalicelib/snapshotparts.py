"""A full snapshot as compressed parts: the database's bytes cut into pieces
that are fetched at once and decompressed in threads.

One GET of a 90 MB snapshot takes over a second at the 80 MB/s a single
connection to S3 carries; the same bytes as a dozen parts fetched at once,
each compressed with zstd (2.6× on the bench org's prose), arrive in a
fraction of that. Decompressing, checksumming and hashing pages all
release the GIL, so each part is finished in the thread that fetched it.

The snapshot object itself (``<version>.sqlite``, snapshot format 2)
holds a header line, the manifest (one line per part) and part 0; parts
1 … n-1 are objects of their own, named with the writer's random id so
that two writers of one version never mix their parts::

    linklog-snapshot 2 schema=<SCHEMA_HASH> version=<n> size=<database bytes> page_size=<bytes> part_size=<bytes> parts=<n> writer=<16 hex> crc32=<8 hex>\\n
    <stored bytes of part i> <crc32 of part i, 8 hex>\\n     (one line per part)
    <part 0, compressed>

    orgs/<org>/snapshots/<schema>/<version>.parts/<writer>/<i>.zst

The header's CRC-32 covers the manifest lines; each manifest line's covers
its part's stored (compressed) bytes, and each part is a zstd frame with
its own content checksum and size. Part i holds database bytes
``[i * part_size, (i + 1) * part_size)``. The parts are put first and the
snapshot object last, so a listed snapshot object names parts that were
all written; a writer killed before that leaves parts no snapshot names,
which pruning deletes.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from chalicelib import compression
from chalicelib.state.schema import SCHEMA_HASH

FORMAT_VERSION = 2
# 8 MiB of database per part: 12 parts for the bench's 90 MB org, each a
# few MB compressed, so the round trip stays small beside the transfer;
# an org under 8 MB is one object, as before parts.
PART_SIZE = 8 << 20
# Bounds a hostile or damaged header cannot push memory past.
MAX_PARTS = 100_000
MAX_HEADER = 512

_HEADER = re.compile(
    rb"^linklog-snapshot (?P<format>[0-9]+) schema=(?P<schema>[0-9a-f]+) version=(?P<version>[0-9]+) "
    rb"size=(?P<size>[0-9]+) page_size=(?P<page_size>[0-9]+) part_size=(?P<part_size>[0-9]+) parts=(?P<parts>[0-9]+) "
    rb"writer=(?P<writer>[0-9a-f]{16}) crc32=(?P<crc32>[0-9a-f]{8})$"
)
_MANIFEST_LINE = re.compile(rb"^(?P<stored>[0-9]{1,12}) (?P<crc32>[0-9a-f]{8})$")


class UnusableParts(Exception):
    """A snapshot object or part that cannot be trusted; the message says why."""


@dataclass(frozen=True)
class Part:
    """One part as the manifest describes it: where its database bytes go and
    what its stored (compressed) bytes must be."""

    index: int
    offset: int
    size: int
    stored_size: int
    crc32: int


@dataclass(frozen=True)
class Manifest:
    """What a format-2 snapshot object says about the database and its parts."""

    version: int
    size: int
    page_size: int
    part_size: int
    writer: str
    parts: tuple[Part, ...]


def split(data, part_size: int) -> list[memoryview]:
    """The database bytes as parts of ``part_size`` (the last one shorter); one part for no bytes."""
    view = memoryview(data)
    return [view[at : at + part_size] for at in range(0, max(len(view), 1), part_size)]


def encode(
    *, at_version: int, size: int, page_size: int, part_size: int, writer: str, stored: list[bytes]
) -> bytes:
    """The snapshot object for parts whose stored bytes are ``stored``: header, manifest, part 0."""
    manifest = b"".join(f"{len(body)} {zlib.crc32(body):08x}\n".encode("ascii") for body in stored)
    header = (
        f"linklog-snapshot {FORMAT_VERSION} schema={SCHEMA_HASH} version={at_version} size={size} "
        f"page_size={page_size} part_size={part_size} parts={len(stored)} writer={writer} crc32={zlib.crc32(manifest):08x}\n"
    )
    return header.encode("ascii") + manifest + stored[0]


def decode(body: bytes, expected_version: int) -> tuple[Manifest, memoryview]:
    """The manifest a snapshot object holds and part 0's stored bytes
    (not yet checked against it: see ``unpack``); raises UnusableParts."""
    end = body.find(b"\n", 0, MAX_HEADER)
    header = _HEADER.fullmatch(body[:end]) if end >= 0 else None
    if header is None:
        raise UnusableParts("malformed snapshot header")
    if int(header["format"]) != FORMAT_VERSION:
        raise UnusableParts(f"snapshot format {int(header['format'])} is not {FORMAT_VERSION}")
    if header["schema"].decode() != SCHEMA_HASH:
        raise UnusableParts(f"header names schema {header['schema'].decode()}")
    if int(header["version"]) != expected_version:
        raise UnusableParts(f"header names version {int(header['version'])}")
    size, page_size, part_size, count = (
        int(header[name]) for name in ("size", "page_size", "part_size", "parts"))
    if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        raise UnusableParts(f"page size {page_size}")
    if part_size < 1 or part_size % page_size or not 1 <= count <= MAX_PARTS or count != max(1, -(-size // part_size)):
        raise UnusableParts(f"{count} parts of {part_size} bytes cannot hold {size} bytes")
    lines = body[end + 1 :].split(b"\n", count)
    if len(lines) != count + 1:
        raise UnusableParts("manifest cut short")
    manifest_bytes = len(body) - (end + 1) - len(lines[-1])
    if zlib.crc32(memoryview(body)[end + 1 : end + 1 + manifest_bytes]) != int(header["crc32"], 16):
        raise UnusableParts("manifest checksum mismatch")
    parts = []
    for index, line in enumerate(lines[:-1]):
        described = _MANIFEST_LINE.fullmatch(line)
        if described is None:
            raise UnusableParts(f"malformed manifest line {index}")
        offset = index * part_size
        parts.append(Part(index=index, offset=offset, size=min(part_size, size - offset) if size else 0,
                          stored_size=int(described["stored"]), crc32=int(described["crc32"], 16)))
    manifest = Manifest(version=expected_version, size=size, page_size=page_size, part_size=part_size,
                        writer=header["writer"].decode(), parts=tuple(parts))
    return manifest, memoryview(body)[end + 1 + manifest_bytes :]


def unpack(part: Part, stored) -> bytes:
    """The database bytes of ``part`` from its stored bytes, checked; raises UnusableParts."""
    if len(stored) != part.stored_size:
        raise UnusableParts(f"part {part.index}: {len(stored)} bytes where the manifest says {part.stored_size}")
    if zlib.crc32(stored) != part.crc32:
        raise UnusableParts(f"part {part.index}: checksum mismatch")
    try:
        return compression.decompress(stored, part.size)
    except compression.Undecodable as error:
        raise UnusableParts(f"part {part.index}: {error}") from None
