"""Shared store fixtures: a fresh store per test on each backend.

- ``local_store``: a LocalStore in the test's tmp_path.
- ``moto_store``: S3 mocked in-process by moto (``mock_aws``).
- ``moto_server``: moto's ThreadedMotoServer on a free 127.0.0.1 port, one
  per test session (per xdist worker), in a child process so that
  ``mock_aws`` in other tests cannot wipe its state; yields its endpoint URL.
- ``server_store``: S3 over real HTTP to that server, a fresh bucket per test.
- ``any_store``: each of the three in turn.
- ``s3_env``: AWS settings in the environment pointing at the server, and a
  fresh bucket, for code that builds its own client (``open_store("s3://…")``).

moto is made to serialize its S3 requests (make_s3_requests_atomic), as
its conditional writes are not atomic on their own. Every store comes
wrapped in a CountingStore. Clients are built with explicit
fake credentials and region, so no test depends on, or leaves behind, AWS
settings in the environment.

Every test has a time limit (pytest-timeout, set in pytest.ini). Its signal
fails a test stuck in Python, but not one stuck inside C code, such as a
SQLite statement that never ends: the signal's handler runs only once C
returns. So a backstop interrupts every SQLite connection a little later,
which lets the handler fail the test; if even that does not free it, the
backstop dumps every thread's stack and ends the process, as pytest-timeout's
"thread" method does.
"""

from __future__ import annotations

import threading
import uuid

import apsw
import pytest
import pytest_timeout
from moto import mock_aws

from chalicelib.store import CountingStore, LocalStore
from chalicelib.store.motoserver import (
    FAKE_AWS,
    make_s3_requests_atomic,
    moto_client,
    start_moto_server,
)
from chalicelib.store.s3 import S3Store


def fresh_bucket_name() -> str:
    return f"test-{uuid.uuid4().hex[:20]}"


@pytest.fixture
def local_store(tmp_path) -> CountingStore:
    return CountingStore(LocalStore(str(tmp_path / "store")))


@pytest.fixture
def moto_store():
    make_s3_requests_atomic()
    with mock_aws():
        client = moto_client()
        bucket = fresh_bucket_name()
        client.create_bucket(Bucket=bucket)
        yield CountingStore(S3Store(bucket, client=client))


@pytest.fixture(scope="session")
def moto_server():
    with start_moto_server() as server:
        yield server.url


@pytest.fixture
def server_store(moto_server) -> CountingStore:
    client = moto_client(moto_server)
    bucket = fresh_bucket_name()
    client.create_bucket(Bucket=bucket)
    return CountingStore(S3Store(bucket, client=client))


@pytest.fixture(params=["local", "moto", "server"])
def any_store(request) -> CountingStore:
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
def s3_env(moto_server, monkeypatch) -> str:
    """Point boto3's standard settings at the moto server; returns a fresh bucket's name."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_REGION", FAKE_AWS["region_name"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", FAKE_AWS["region_name"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_AWS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_AWS["aws_secret_access_key"])
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    bucket = fresh_bucket_name()
    moto_client(moto_server).create_bucket(Bucket=bucket)
    return bucket


# How long after the time limit the backstop first interrupts SQLite, and
# then how long it waits before ending the process.
BACKSTOP_GRACE_SECONDS = 5
_backstop_key = pytest.StashKey[threading.Event]()


def _backstop(item, settings, finished: threading.Event) -> None:
    if finished.wait(settings.timeout + BACKSTOP_GRACE_SECONDS):
        return
    for connection in apsw.connections():
        connection.interrupt()
    if not finished.wait(BACKSTOP_GRACE_SECONDS):
        pytest_timeout.timeout_timer(item, settings)


@pytest.hookimpl
def pytest_timeout_set_timer(item, settings):
    """Start the backstop beside pytest-timeout's own timer (returning None
    lets pytest-timeout set that one up too)."""
    if settings.timeout and settings.timeout > 0 and settings.method == "signal":
        finished = threading.Event()
        item.stash[_backstop_key] = finished
        threading.Thread(
            target=_backstop, args=(item, settings, finished),
            name=f"timeout backstop {item.nodeid}", daemon=True,
        ).start()


@pytest.hookimpl
def pytest_timeout_cancel_timer(item):
    """The test is over: stop its backstop."""
    finished = item.stash.get(_backstop_key, None)
    if finished is not None:
        finished.set()
