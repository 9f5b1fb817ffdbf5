"""The local directory store: S3's semantics on one machine's file system.

Layout. A key's segments become directories, its last segment a file. So
that ``a`` and ``a/b`` can both be keys, every entry carries a one-letter
tag: ``d<segment>`` is a directory, ``f<segment>`` an object. Anything else
in the tree (temp files, the ``.locks`` directory) is not an object and
never shows up in ``list``.

Object files. Each holds a 40-byte header line, ``LLOBJ1 <md5 hex>\n``,
then the body as-is (``tail -c +41`` shows it). The etag is computed once,
at put time: a get, a head, a list or an etag check reads it from the
header instead of hashing the body, which for a 90 MB snapshot is most of
a restore's time. The header is only a cache of the body's MD5: when it is
damaged (a flipped byte, a truncated file) the etag is computed from the
bytes after the first 40 instead, so the object still reads as its body and
whoever reads it judges the body (a snapshot's checksum, a commit's JSON).
A damaged header must not make the object, or a listing holding it,
unreadable: the lease and the log have no older copy to fall back to.

Atomicity. A body is written to a temp file in the object's own directory,
fsynced, then linked (create-if-absent: ``os.link`` fails if the name
exists) or renamed (replace) into place, and the directory is fsynced. A
reader therefore sees the old file or the new one, never a torn one, even if
the writer is killed half-way.

Concurrency. Every write and delete of a key holds an exclusive ``flock`` on
one of a fixed set of lock files chosen by the key's hash, so a
compare-and-swap (read the etag, then rename) cannot interleave with another
write to the same key, across threads and processes alike. Reads take no
lock: the rename makes them consistent.

The etag is the quoted MD5 of the body, as S3 gives for a single-part put,
so the same body has the same etag on both backends.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from chalicelib import compression
from chalicelib.store.base import (
    DOWNLOAD_PIECE,
    NotFound,
    ObjectInfo,
    PreconditionFailed,
    StoreError,
    StoredObject,
)
from chalicelib.store.keyrules import check_key, check_list_arguments, check_put_arguments

OBJECT_TAG = "f"
DIRECTORY_TAG = "d"
TEMP_PREFIX = ".tmp-"
LOCK_DIRECTORY = ".locks"
LOCK_STRIPES = 256
HEADER_MAGIC = b"LLOBJ1 "
HEADER_SIZE = len(HEADER_MAGIC) + 32 + 1
_MD5_HEX = re.compile(rb"[0-9a-f]{32}")


def etag_of(body: bytes) -> str:
    """The etag the local store (and S3, for a single-part put) gives ``body``."""
    return f'"{hashlib.md5(body).hexdigest()}"'


def _same_etag(a: str, b: str) -> bool:
    return a.strip('"') == b.strip('"')


class LocalStore:
    """An object store in the directory ``root``, created if missing.

    ``snapshot_codec`` (chalicelib.compression): "none" by default, since
    on a local disk decompressing a snapshot costs more than reading its
    uncompressed bytes from the page cache; "zstd" to save disk.
    """

    def __init__(self, root: str, snapshot_codec: str = compression.NONE):
        if snapshot_codec not in compression.EXTENSIONS:
            raise ValueError(f"snapshot_codec is one of {sorted(compression.EXTENSIONS)}, "
                             f"not {snapshot_codec!r}")
        self.snapshot_codec = snapshot_codec
        self.root = os.path.abspath(root)
        try:
            os.makedirs(os.path.join(self.root, LOCK_DIRECTORY), exist_ok=True)
        except OSError as e:
            raise StoreError(self.root, f"cannot create the store directory: {e}") from e

    def __repr__(self) -> str:
        return f"LocalStore({self.root!r})"

    def _path(self, key: str) -> str:
        segments = check_key(key).split("/")
        parts = [DIRECTORY_TAG + s for s in segments[:-1]] + [OBJECT_TAG + segments[-1]]
        return os.path.join(self.root, *parts)

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        stripe = int.from_bytes(hashlib.md5(key.encode()).digest()[:4], "big") % LOCK_STRIPES
        path = os.path.join(self.root, LOCK_DIRECTORY, f"{stripe:03d}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def get(self, key: str) -> StoredObject:
        """The object's body and etag; raises NotFound."""
        with _reading(key):
            # Unbuffered: a buffered read of the whole file joins its buffer
            # to the rest, copying the body once more (tens of ms for a
            # large snapshot); readall sizes one buffer from fstat.
            with open(self._path(key), "rb", buffering=0) as f:
                etag = _read_header(f)
                body = f.readall()
        return StoredObject(key=key, etag=etag or etag_of(body), body=body)

    def download(self, key: str, into: BinaryIO) -> ObjectInfo:
        """Write the object's body to ``into`` piece by piece (see ObjectStore.download)."""
        piece = bytearray(DOWNLOAD_PIECE)
        view = memoryview(piece)
        size = 0
        with _reading(key):
            f = open(self._path(key), "rb", buffering=0)
        with f:
            with _reading(key):
                etag = _read_header(f)
            digest = hashlib.md5() if etag is None else None
            while True:
                # Only the store's own reads are translated: what into.write
                # raises belongs to the caller and passes through untouched.
                with _reading(key):
                    read = f.readinto(piece)
                if not read:
                    if digest is not None:
                        etag = f'"{digest.hexdigest()}"'
                    return ObjectInfo(key=key, etag=etag, size=size)
                if digest is not None:
                    digest.update(view[:read])
                into.write(view[:read])
                size += read

    def head(self, key: str) -> ObjectInfo:
        """The object's etag and size; raises NotFound."""
        info = _info(key, self._path(key))
        if info is None:
            raise NotFound(key)
        return info

    def put(
        self,
        key: str,
        body: bytes,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> str:
        """Write the object atomically and return its etag (see ObjectStore.put)."""
        body = check_put_arguments(body, if_absent, if_match)
        path = self._path(key)
        etag = etag_of(body)
        try:
            temp = self._write_temp(path, _header(etag) + body)
            try:
                with self._locked(key):
                    if if_absent:
                        self._link_new(key, temp, path)
                    else:
                        if if_match is not None:
                            self._check_etag(key, path, if_match)
                        os.rename(temp, path)
                        temp = None
            finally:
                if temp is not None:
                    _remove_quietly(temp)
            _fsync_directory(os.path.dirname(path))
        except StoreError:
            raise
        except OSError as e:
            raise StoreError(key, f"write failed: {e}") from e
        return etag

    def _write_temp(self, path: str, body: bytes) -> str:
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        temp = os.path.join(directory, f"{TEMP_PREFIX}{uuid.uuid4().hex}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(body)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            _remove_quietly(temp)
            raise
        os.close(fd)
        return temp

    @staticmethod
    def _link_new(key: str, temp: str, path: str) -> None:
        try:
            os.link(temp, path)
        except FileExistsError:
            raise PreconditionFailed(key, "object already exists") from None

    def _check_etag(self, key: str, path: str, expected: str) -> None:
        info = _info(key, path)
        if info is None:
            raise NotFound(key, "no object to match the etag against")
        current = info.etag
        if not _same_etag(current, expected):
            raise PreconditionFailed(key, f"etag is {current}, not {expected}")

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Remove the object; with ``if_match`` only that exact version.

        As on S3, deleting a missing key without ``if_match`` is not an error.
        Empty directories stay: removing them would race with a put that has
        just created one.
        """
        path = self._path(key)
        try:
            with self._locked(key):
                if if_match is not None:
                    self._check_etag(key, path, if_match)
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    return
            _fsync_directory(os.path.dirname(path))
        except StoreError:
            raise
        except OSError as e:
            raise StoreError(key, f"delete failed: {e}") from e

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int = 1000
    ) -> list[ObjectInfo]:
        """Objects under ``prefix`` in key order (UTF-8 byte order, as S3), after ``start_after``."""
        check_list_arguments(prefix, limit)
        *folders, partial = prefix.split("/")
        directory = os.path.join(self.root, *(DIRECTORY_TAG + s for s in folders))
        base = "".join(s + "/" for s in folders)
        found: list[ObjectInfo] = []
        try:
            for key, path in self._walk(directory, base, partial, start_after or ""):
                info = _info(key, path)
                if info is not None:
                    found.append(info)
                    if len(found) == limit:
                        break
        except OSError as e:
            raise StoreError(prefix, f"list failed: {e}") from e
        return found

    def _walk(
        self, directory: str, base: str, partial: str, start_after: str
    ) -> Iterator[tuple[str, str]]:
        """(key, path) of the objects under ``directory`` in key order.

        ``base`` is the key prefix the directory stands for; only entries
        whose segment starts with ``partial`` are taken.
        """
        try:
            entries = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return
        children = []
        for name in entries:
            tag, segment = name[:1], name[1:]
            if not segment.startswith(partial):
                continue
            if tag == OBJECT_TAG:
                children.append((base + segment, name, False))
            elif tag == DIRECTORY_TAG:
                # A directory's keys all start with "segment/", so it sorts
                # as that string against its siblings.
                children.append((base + segment + "/", name, True))
        children.sort()
        for sort_key, name, is_directory in children:
            path = os.path.join(directory, name)
            if is_directory:
                if start_after > sort_key and not start_after.startswith(sort_key):
                    continue  # every key in there sorts before start_after
                yield from self._walk(path, sort_key, "", start_after)
            elif sort_key > start_after:
                yield sort_key, path


def _header(etag: str) -> bytes:
    return HEADER_MAGIC + etag.strip('"').encode("ascii") + b"\n"


@contextmanager
def _reading(key: str) -> Iterator[None]:
    """Turn a failed read of ``key``'s file into NotFound or StoreError."""
    try:
        yield
    except FileNotFoundError:
        raise NotFound(key) from None
    except OSError as e:
        raise StoreError(key, f"read failed: {e}") from e


def _read_header(f) -> str | None:
    """The etag the header line records, or None when the line is damaged.

    Either way ``f`` is left at the body: the header is always the first
    HEADER_SIZE bytes, so a damaged one still says where the body starts.
    """
    header = f.read(HEADER_SIZE)
    digest = header[len(HEADER_MAGIC):-1]
    if header.startswith(HEADER_MAGIC) and header[-1:] == b"\n" and _MD5_HEX.fullmatch(digest):
        return '"' + digest.decode("ascii") + '"'
    return None


def _info(key: str, path: str) -> ObjectInfo | None:
    """Etag and size from the header and the file's length; None if it is gone."""
    try:
        with open(path, "rb") as f:
            etag = _read_header(f)
            size = max(0, os.fstat(f.fileno()).st_size - HEADER_SIZE)
            if etag is None:
                etag = f'"{hashlib.file_digest(f, "md5").hexdigest()}"'
    except FileNotFoundError:
        return None  # deleted since the directory was read
    except OSError as e:
        raise StoreError(key, f"read failed: {e}") from e
    return ObjectInfo(key=key, etag=etag, size=size)


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
