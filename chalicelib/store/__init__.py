"""Object stores: one interface (base.py), a backend per module, and open_store.

``open_store(url)`` turns the ``LINKLOG_STORE`` setting into a counting
store:

- ``file://PATH`` — a local directory (``file://./data``, ``file:///var/linklog``);
- ``s3://BUCKET`` or ``s3://BUCKET/PREFIX`` — S3 or anything that speaks it,
  reached through boto3's standard settings (``AWS_ENDPOINT_URL`` …).
"""

from __future__ import annotations

import re

from chalicelib.store.base import (
    REQUEST_KINDS,
    Conflict,
    CountingStore,
    NotFound,
    ObjectInfo,
    ObjectStore,
    PreconditionFailed,
    StoredObject,
    StoreError,
    Transient,
)
from chalicelib.store.keyrules import InvalidKey, check_key
from chalicelib.store.local import LocalStore

__all__ = [
    "REQUEST_KINDS",
    "Conflict",
    "CountingStore",
    "InvalidKey",
    "LocalStore",
    "NotFound",
    "ObjectInfo",
    "ObjectStore",
    "PreconditionFailed",
    "StoreError",
    "StoredObject",
    "Transient",
    "check_key",
    "open_store",
]

# S3's rules for new bucket names: 3-63 lowercase letters, digits, dots and
# hyphens, starting and ending with a letter or digit.
BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def open_store(url: str) -> CountingStore:
    """The store a ``file://PATH`` or ``s3://BUCKET/PREFIX`` URL names, counting requests.

    Raises ValueError, saying what is wrong, for any other URL.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError(
            "store URL is empty; use file://PATH or s3://BUCKET/PREFIX"
        )
    url = url.strip()
    if url.startswith("file://"):
        path = url[len("file://"):]
        if not path:
            raise ValueError(f"store URL {url!r} has no path; use file://PATH, e.g. file://./data")
        return CountingStore(LocalStore(path))
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not BUCKET_PATTERN.fullmatch(bucket) or ".." in bucket:
            raise ValueError(
                f"store URL {url!r} has no valid bucket name "
                "(3-63 lowercase letters, digits, '.' and '-')"
            )
        # Imported here so that only S3 mode pays for importing boto3.
        from chalicelib.store.s3 import S3Store

        try:
            return CountingStore(S3Store(bucket, prefix))
        except InvalidKey as e:
            raise ValueError(f"store URL {url!r} has an invalid prefix: {e}") from None
    raise ValueError(
        f"store URL {url!r} is neither file://PATH nor s3://BUCKET/PREFIX"
    )
