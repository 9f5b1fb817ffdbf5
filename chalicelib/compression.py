"""How snapshot parts and deltas are stored: a codec, zstd or none.

Over a network the bytes are what cost: database pages of saved pages'
prose shrink about 2.6× with zstd (the bench's 10,000-link org: 90.4 MB to
35.0 MB), and zstd decompresses that in a fraction of the time zlib takes,
releasing the GIL so parts decompress in threads. On a local disk the
bytes cost next to nothing (the page cache serves them) and decompressing
them is most of a restore's CPU, so there parts are stored as they are.

A store chooses the codec its snapshots are written with
(``snapshot_codec``: LocalStore "none", S3Store "zstd"); the snapshot
object names the codec it was written with, so any reader reads any
object whichever store it came from. docs/decisions.md has the figures.
"""

from __future__ import annotations

import zstandard

ZSTD = "zstd"
NONE = "none"
# The extension a part object of each codec has in its key.
EXTENSIONS = {ZSTD: "zst", NONE: "raw"}
# Level 1: decompresses as fast as level 3 and compresses about three
# times faster, for 2.6× instead of 2.9×.
LEVEL = 1


class Undecodable(Exception):
    """Stored bytes that are not the frame they should be; the message says why."""


def codec_of(store) -> str:
    """The codec ``store`` wants snapshots written with: its ``snapshot_codec``,
    zstd for a store that does not say (a wrapper that does not pass it on),
    which every store reads."""
    return getattr(store, "snapshot_codec", ZSTD)


def compress(data, codec: str = ZSTD) -> bytes:
    """``data`` as ``codec`` stores it: for zstd, one frame carrying its
    content size and checksum; for none, the bytes themselves."""
    if codec == NONE:
        return bytes(data)
    return zstandard.ZstdCompressor(level=LEVEL, write_checksum=True).compress(data)


def decompress(stored, size: int, codec: str = ZSTD):
    """The ``size`` bytes ``stored`` holds under ``codec``; raises Undecodable.

    Callers check the stored bytes' own checksum first: a zstd frame's
    content size is then the writer's, safe to size the output by. For
    none, ``stored`` itself (no copy).
    """
    if codec == NONE:
        data = stored
    else:
        try:
            data = zstandard.ZstdDecompressor().decompress(stored, max_output_size=size)
        except zstandard.ZstdError as error:
            raise Undecodable(str(error)) from None
    if len(data) != size:
        raise Undecodable(f"{len(data)} bytes where {size} were expected")
    return data
