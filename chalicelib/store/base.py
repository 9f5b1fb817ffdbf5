"""The object store contract every backend keeps.

Everything durable in linklog is an object under a key. The log, the
snapshots and the lease are plain functions over this small interface, so
the same code runs on S3 (or R2, MinIO, moto) and on a local directory.

Preconditions are data: ``put(key, body, if_absent=True)`` creates,
``put(key, body, if_match=etag)`` replaces one exact version, and a plain
``put`` overwrites. Backends translate their own failures into the four
errors below where they enter, so nothing above a backend ever sees a
boto3 ``ClientError`` or an ``OSError``.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import BinaryIO, Protocol


class StoreError(Exception):
    """Base of every error a store raises; carries the key it concerns."""

    def __init__(self, key: str, message: str = ""):
        self.key = key
        super().__init__(f"{key}: {message}" if message else key)


class NotFound(StoreError):
    """The key does not exist."""


class PreconditionFailed(StoreError):
    """412: the object exists (if_absent) or has another etag (if_match).

    Certain: the object was there before this write, which did not land. A
    refusal that may hide our own write (an SDK's retry after a lost answer)
    is Transient instead, so the log can trust a 412 without reading back.
    """


class Conflict(StoreError):
    """409: a concurrent conditional write on the key; this one did not land, retry."""


class Transient(StoreError):
    """5xx, throttling or timeout: the outcome is unknown, resolve by reading."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    etag: str
    size: int


@dataclass(frozen=True)
class StoredObject:
    key: str
    etag: str
    body: bytes


class ObjectStore(Protocol):
    """What the rest of linklog may ask of a store.

    ``snapshot_codec`` is how the store wants snapshot parts stored
    (chalicelib.compression): "zstd" where bytes cross a network, "none"
    on a local disk. Every store reads parts of either codec.
    """

    snapshot_codec: str

    def get(self, key: str) -> StoredObject:
        """The object's body and etag; raises NotFound."""

    def download(self, key: str, into: BinaryIO) -> ObjectInfo:
        """Write the object's body to ``into`` piece by piece; its etag and size.

        One GET, like ``get``, for bodies too large to hold in memory twice
        (snapshots). ``into.write`` sees each piece once and must copy what
        it keeps. Raises NotFound; what ``into.write`` raises passes through
        as it is; a failure part-way leaves ``into`` holding a prefix.
        """

    def head(self, key: str) -> ObjectInfo:
        """The object's etag and size; raises NotFound."""

    def put(
        self,
        key: str,
        body: bytes,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> str:
        """Write the object and return its new etag.

        With ``if_absent`` the write happens only if the key does not exist;
        with ``if_match`` only if the current etag equals it. Otherwise
        PreconditionFailed (or NotFound for if_match on a missing key).
        """

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Remove the object; with ``if_match`` only that exact version."""

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int = 1000
    ) -> list[ObjectInfo]:
        """Objects under ``prefix`` in key order, after ``start_after``.

        One call is one request: at most ``limit`` (at most 1,000, as S3's
        ListObjectsV2) objects come back; callers page on with start_after.
        """


REQUEST_KINDS = ("get", "head", "put", "delete", "list")
# The piece a download hands on at a time: large enough that per-piece
# overhead vanishes, small enough to stay in the CPU cache while checksummed.
DOWNLOAD_PIECE = 1 << 20


class CountingStore:
    """Wraps a store and counts its requests by kind, failed ones included.

    Wrapping is cheap, so a processor cycle wraps the shared store once more
    to learn what that one cycle cost, while the outer wrapper keeps the
    process-wide totals.
    """

    def __init__(self, inner: ObjectStore):
        self.inner = inner
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def snapshot_codec(self) -> str:
        return self.inner.snapshot_codec

    def counts(self) -> dict[str, int]:
        """Requests made so far, by kind, including kinds not yet used."""
        with self._lock:
            return {kind: self._counts[kind] for kind in REQUEST_KINDS}

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def _count(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] += 1

    def get(self, key: str) -> StoredObject:
        self._count("get")
        return self.inner.get(key)

    def download(self, key: str, into: BinaryIO) -> ObjectInfo:
        self._count("get")
        return self.inner.download(key, into)

    def head(self, key: str) -> ObjectInfo:
        self._count("head")
        return self.inner.head(key)

    def put(self, key, body, *, if_absent=False, if_match=None) -> str:
        self._count("put")
        return self.inner.put(key, body, if_absent=if_absent, if_match=if_match)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        self._count("delete")
        self.inner.delete(key, if_match=if_match)

    def list(self, prefix, *, start_after=None, limit=1000) -> list[ObjectInfo]:
        self._count("list")
        return self.inner.list(prefix, start_after=start_after, limit=limit)
