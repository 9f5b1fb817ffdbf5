"""The S3 store: AWS S3, R2, MinIO or moto, through boto3.

boto3's ``ClientError`` and botocore's connection errors stop here: each is
translated into one of the store errors where it enters, with the key in
the message. The endpoint, region and credentials come from boto3's own
standard settings (``AWS_ENDPOINT_URL``, ``AWS_REGION``, …) unless a client
is handed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from chalicelib import compression
from chalicelib.config import aws_region
from chalicelib.store.base import (
    DOWNLOAD_PIECE,
    Conflict,
    NotFound,
    ObjectInfo,
    PreconditionFailed,
    StoreError,
    StoredObject,
    Transient,
)
from chalicelib.store.keyrules import check_key, check_list_arguments, check_put_arguments

# Retries are configured here and nowhere else. botocore's "standard" mode
# retries 5xx, throttling and connection errors a few times with jittered
# backoff, which is what a store request wants. That includes conditional
# puts, with one catch: when a put's response is lost and the retry finds the
# object already there, S3 answers 412 (or 409 while the first try is still
# being written) although the first try may be the one that landed. So a
# conditional put's 412 or 409 that came after a retry is raised as Transient
# (outcome unknown, resolve by reading), and a PreconditionFailed from this
# store always means the object was there before any try of ours: the log
# trusts it without reading the winner's commit back. Timeouts are short
# because every caller (a Lambda with a budget, an HTTP request) prefers a
# Transient it can act on to a long hang. The pool is sized for a
# processor's concurrent fetches and a dev server's concurrent pushes
# sharing one client.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=5,
    read_timeout=20,
    max_pool_connections=32,
)

NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404"}
TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
}
CONNECTION_ERRORS = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
    ResponseStreamingError,
    # A body shorter than its Content-Length: the connection dropped mid-body.
    IncompleteReadError,
)


def new_client():
    """A boto3 S3 client with linklog's retry and timeout settings."""
    return boto3.client("s3", region_name=aws_region(), config=CLIENT_CONFIG)


def _quoted(etag: str) -> str:
    # S3 compares If-Match against the quoted entity tag; moto refuses a bare one.
    return etag if etag.startswith('"') else f'"{etag}"'


@contextmanager
def _translated(key: str, *, conditional_write: bool = False) -> Iterator[None]:
    """Turn boto3 and botocore failures into store errors naming ``key``.

    For a ``conditional_write``, a refusal (412, 409) that botocore earned on
    a retry is Transient: the try whose answer was lost may have landed.
    """
    try:
        yield
    except ClientError as e:
        error = e.response.get("Error", {})
        code = str(error.get("Code", ""))
        metadata = e.response.get("ResponseMetadata", {})
        status = metadata.get("HTTPStatusCode", 0)
        message = f"{code} ({status}): {error.get('Message', '')}"
        retries = metadata.get("RetryAttempts", 0)
        if conditional_write and retries and status in (409, 412):
            raise Transient(
                key, f"{message} on retry {retries}: an earlier try may have landed"
            ) from e
        if code in NOT_FOUND_CODES:
            raise NotFound(key, message) from e
        if status == 412 or code == "PreconditionFailed":
            raise PreconditionFailed(key, message) from e
        if status == 409:
            raise Conflict(key, message) from e
        if status >= 500 or status == 429 or code in TRANSIENT_CODES:
            raise Transient(key, message) from e
        raise StoreError(key, message) from e
    except CONNECTION_ERRORS as e:
        raise Transient(key, f"{type(e).__name__}: {e}") from e
    except BotoCoreError as e:
        raise StoreError(key, f"{type(e).__name__}: {e}") from e


class S3Store:
    """Objects in ``bucket``, every key under ``prefix`` (a folder, '' for the whole bucket)."""

    # Snapshot parts cross the network: zstd cuts their bytes 2.6 times.
    snapshot_codec = compression.ZSTD

    def __init__(self, bucket: str, prefix: str = "", client=None):
        self.bucket = bucket
        prefix = prefix.strip("/")
        if prefix:
            check_key(prefix)
        self.prefix = f"{prefix}/" if prefix else ""
        self.client = client if client is not None else new_client()

    def __repr__(self) -> str:
        return f"S3Store({self.bucket!r}, {self.prefix!r})"

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    def get(self, key: str) -> StoredObject:
        """The object's body and etag; raises NotFound."""
        with _translated(key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
            body = response["Body"].read()
        return StoredObject(key=key, etag=response["ETag"], body=body)

    def download(self, key: str, into: BinaryIO) -> ObjectInfo:
        """Write the object's body to ``into`` piece by piece (see ObjectStore.download).

        One GET read as it arrives; what ``into.write`` raises is not a
        boto3 error, so it passes the translation untouched.
        """
        size = 0
        with _translated(key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
            # Closing drops a body left unread (when into.write gave up),
            # rather than returning a half-read connection to the pool.
            with closing(response["Body"]) as body:
                for piece in body.iter_chunks(DOWNLOAD_PIECE):
                    into.write(piece)
                    size += len(piece)
        return ObjectInfo(key=key, etag=response["ETag"], size=size)

    def head(self, key: str) -> ObjectInfo:
        """The object's etag and size; raises NotFound."""
        with _translated(key):
            response = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        return ObjectInfo(key=key, etag=response["ETag"], size=response["ContentLength"])

    def put(
        self,
        key: str,
        body: bytes,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> str:
        """Write the object and return its etag (see ObjectStore.put)."""
        body = check_put_arguments(body, if_absent, if_match)
        conditions = {}
        if if_absent:
            conditions["IfNoneMatch"] = "*"
        if if_match is not None:
            conditions["IfMatch"] = _quoted(if_match)
        with _translated(key, conditional_write=bool(conditions)):
            response = self.client.put_object(
                Bucket=self.bucket, Key=self._full(key), Body=body, **conditions
            )
        return response["ETag"]

    def presigned_get(self, key: str, *, seconds: int, filename: str) -> str:
        """A URL that downloads the object, as ``filename``, for ``seconds``, without credentials."""
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._full(key),
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=seconds,
        )

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Remove the object; with ``if_match`` only that exact version."""
        conditions = {"IfMatch": _quoted(if_match)} if if_match is not None else {}
        with _translated(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._full(key), **conditions)

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int = 1000
    ) -> list[ObjectInfo]:
        """Objects under ``prefix`` in key order, after ``start_after``; one request."""
        check_list_arguments(prefix, limit)
        request = {"Bucket": self.bucket, "Prefix": self.prefix + prefix, "MaxKeys": limit}
        if start_after:
            request["StartAfter"] = self.prefix + start_after
        with _translated(prefix):
            response = self.client.list_objects_v2(**request)
        return [
            ObjectInfo(key=item["Key"][len(self.prefix):], etag=item["ETag"], size=item["Size"])
            for item in response.get("Contents", [])
        ]
