"""Compression of snapshot parts and deltas: zstd frames.

Database pages of saved pages' prose shrink about 2.6× (the bench's
10,000-link org: 90.4 MB to 35.0 MB), and zstd decompresses that in a
fraction of the time zlib takes (0.28–0.48 s against 1.3 s for the 90 MB
on this machine, loaded), releasing the GIL so parts decompress in
threads. docs/decisions.md has the figures.
"""

from __future__ import annotations

import zstandard

# Level 1: decompresses as fast as level 3 and compresses about three
# times faster, for 2.6× instead of 2.9×.
LEVEL = 1


class Undecodable(Exception):
    """Stored bytes that are not the frame they should be; the message says why."""


def compress(data) -> bytes:
    """``data`` as one zstd frame carrying its content size and checksum."""
    return zstandard.ZstdCompressor(level=LEVEL, write_checksum=True).compress(data)


def decompress(stored, size: int) -> bytes:
    """The ``size`` bytes a frame from ``compress`` holds; raises Undecodable.

    Callers check the stored bytes' own checksum first: the frame's
    content size is then the writer's, safe to size the output by.
    """
    try:
        data = zstandard.ZstdDecompressor().decompress(stored, max_output_size=size)
    except zstandard.ZstdError as error:
        raise Undecodable(str(error)) from None
    if len(data) != size:
        raise Undecodable(f"{len(data)} bytes where {size} were expected")
    return data
