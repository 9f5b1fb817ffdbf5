"""A full snapshot in parts: the database's bytes cut into pieces that are
fetched at once and unpacked in threads.

One GET of a 90 MB snapshot takes over a second at the 80 MB/s a single
connection to S3 carries; the same bytes as a dozen parts fetched at once,
each compressed with zstd (2.6× on the bench org's prose), arrive in a
fraction of that. Decompressing, checksumming and hashing pages all
release the GIL, so each part is finished in the thread that fetched it.

The snapshot object itself (``<version>.sqlite``, snapshot format 2)
holds a header line, the manifest (one line per part) and part 0; parts
1 … n-1 are objects of their own, named with the writer's random id so
that two writers of one version never mix their parts::

    linklog-snapshot 2 schema=<SCHEMA_HASH> version=<n> size=<database bytes> page_size=<bytes> part_size=<bytes> parts=<n> writer=<16 hex>[ codec=none] crc32=<8 hex>\\n
    <stored bytes of part i> <crc32 of part i, 8 hex>\\n     (one line per part)
    <part 0, as stored>

    orgs/<org>/snapshots/<schema>/<version>.parts/<writer>/<i>.zst   (zstd)
    orgs/<org>/snapshots/<schema>/<version>.parts/<writer>/<i>.raw   (none)

The codec (chalicelib.compression) is the store's choice: zstd, when the
header names none, is what every format-2 object before codecs holds (so
those objects still read, and a zstd object still reads in a deployment
from before codecs); ``codec=none`` parts are the database bytes as they
are, for a local disk. The header's CRC-32 covers the manifest lines; each
manifest line's covers its part's stored bytes, and a zstd part is a frame
with its own content checksum and size. Part i holds database bytes
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
# 8 MiB of database per part: 11 parts for the bench's 90 MB org, each a
# few MB compressed, so the round trip stays small beside the transfer;
# an org under 8 MB is one object, as before parts.
PART_SIZE = 8 << 20
# Bounds a hostile or damaged header cannot push memory past.
MAX_PARTS = 100_000
MAX_HEADER = 512
# "<stored bytes> <crc32>\n": 12 digits, a space, 8 hex digits, the newline.
MAX_MANIFEST_LINE = 22

_HEADER = re.compile(
    rb"^linklog-snapshot (?P<format>[0-9]+) schema=(?P<schema>[0-9a-f]+) version=(?P<version>[0-9]+) "
    rb"size=(?P<size>[0-9]+) page_size=(?P<page_size>[0-9]+) part_size=(?P<part_size>[0-9]+) parts=(?P<parts>[0-9]+) "
    rb"writer=(?P<writer>[0-9a-f]{16})(?: codec=(?P<codec>[a-z0-9]+))? crc32=(?P<crc32>[0-9a-f]{8})$"
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
    codec: str = compression.ZSTD


def split(data, part_size: int) -> list[memoryview]:
    """The database bytes as parts of ``part_size`` (the last one shorter); one part for no bytes."""
    view = memoryview(data)
    return [view[at : at + part_size] for at in range(0, max(len(view), 1), part_size)]


def encode(
    *, at_version: int, size: int, page_size: int, part_size: int, writer: str, stored: list[bytes],
    codec: str = compression.ZSTD,
) -> bytes:
    """The snapshot object for parts whose stored bytes (under ``codec``)
    are ``stored``: header, manifest, part 0."""
    manifest = b"".join(f"{len(body)} {zlib.crc32(body):08x}\n".encode("ascii") for body in stored)
    # zstd goes unnamed: the header then reads as it did before codecs.
    named = "" if codec == compression.ZSTD else f" codec={codec}"
    header = (
        f"linklog-snapshot {FORMAT_VERSION} schema={SCHEMA_HASH} version={at_version} size={size} "
        f"page_size={page_size} part_size={part_size} parts={len(stored)} writer={writer}{named} "
        f"crc32={zlib.crc32(manifest):08x}\n"
    )
    return header.encode("ascii") + manifest + stored[0]


def decode(body, expected_version: int) -> tuple[Manifest, memoryview]:
    """The manifest a snapshot object holds and part 0's stored bytes
    (not yet checked against it: see ``unpack``); raises UnusableParts."""
    end = body.find(b"\n", 0, MAX_HEADER)
    header = _HEADER.fullmatch(bytes(body[:end])) if end >= 0 else None
    if header is None:
        raise UnusableParts("malformed snapshot header")
    if int(header["format"]) != FORMAT_VERSION:
        raise UnusableParts(f"snapshot format {int(header['format'])} is not {FORMAT_VERSION}")
    if header["schema"].decode() != SCHEMA_HASH:
        raise UnusableParts(f"header names schema {header['schema'].decode()}")
    if int(header["version"]) != expected_version:
        raise UnusableParts(f"header names version {int(header['version'])}")
    codec = header["codec"].decode() if header["codec"] else compression.ZSTD
    if codec not in compression.EXTENSIONS:
        raise UnusableParts(f"unknown codec {codec}")
    size, page_size, part_size, count = (
        int(header[name]) for name in ("size", "page_size", "part_size", "parts"))
    if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        raise UnusableParts(f"page size {page_size}")
    if part_size < 1 or part_size % page_size or not 1 <= count <= MAX_PARTS or count != max(1, -(-size // part_size)):
        raise UnusableParts(f"{count} parts of {part_size} bytes cannot hold {size} bytes")
    # The manifest's lines, found without copying part 0 after them.
    lines = []
    at = end + 1
    for _ in range(count):
        line_end = body.find(b"\n", at, at + MAX_MANIFEST_LINE)
        if line_end < 0:
            raise UnusableParts("manifest cut short")
        lines.append(bytes(body[at:line_end]))
        at = line_end + 1
    if zlib.crc32(memoryview(body)[end + 1 : at]) != int(header["crc32"], 16):
        raise UnusableParts("manifest checksum mismatch")
    parts = []
    for index, line in enumerate(lines):
        described = _MANIFEST_LINE.fullmatch(line)
        if described is None:
            raise UnusableParts(f"malformed manifest line {index}")
        offset = index * part_size
        parts.append(Part(index=index, offset=offset, size=min(part_size, size - offset) if size else 0,
                          stored_size=int(described["stored"]), crc32=int(described["crc32"], 16)))
    manifest = Manifest(version=expected_version, size=size, page_size=page_size, part_size=part_size,
                        writer=header["writer"].decode(), parts=tuple(parts), codec=codec)
    return manifest, memoryview(body)[at:]


def unpack(part: Part, stored, codec: str):
    """The database bytes of ``part`` from its stored bytes under ``codec``
    (the manifest's), checked; raises UnusableParts."""
    if len(stored) != part.stored_size:
        raise UnusableParts(f"part {part.index}: {len(stored)} bytes where the manifest says {part.stored_size}")
    if zlib.crc32(stored) != part.crc32:
        raise UnusableParts(f"part {part.index}: checksum mismatch")
    try:
        return compression.decompress(stored, part.size, codec)
    except compression.Undecodable as error:
        raise UnusableParts(f"part {part.index}: {error}") from None
