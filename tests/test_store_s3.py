"""The S3 backend: errors translated where they enter, retries, prefixes, moto's server."""

from __future__ import annotations

import http.client
import http.server
import socket
import threading
import time

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from chalicelib.store import Conflict, NotFound, PreconditionFailed, StoreError, Transient
from chalicelib.store.s3 import CLIENT_CONFIG, S3Store
from chalicelib.store.motoserver import FAKE_AWS, moto_client, start_moto_server
from conftest import fresh_bucket_name


class ScriptedS3:
    """An HTTP server on 127.0.0.1 answering every request with one chosen S3 error."""

    def __init__(self, status: int, code: str, delay: float = 0.0):
        self.requests: list[str] = []
        script = self

        class Handler(http.server.BaseHTTPRequestHandler):
            # HTTP/1.1 so that botocore's "Expect: 100-continue" is answered at once.
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                script.requests.append(f"{self.command} {self.path}")
                time.sleep(delay)
                body = (
                    f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                    f"<Message>scripted {code}</Message></Error>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_DELETE = do_HEAD = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def store(self, config: Config = CLIENT_CONFIG) -> S3Store:
        client = boto3.client("s3", endpoint_url=self.url, config=config, **FAKE_AWS)
        return S3Store("scripted", client=client)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# The client's backoff would only slow the tests down where retries are not the point.
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
def scripted():
    servers = []

    def start(status, code, delay=0.0):
        servers.append(ScriptedS3(status, code, delay))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.mark.parametrize(
    "status, code, error",
    [
        (503, "SlowDown", Transient),
        (500, "InternalError", Transient),
        (503, "ServiceUnavailable", Transient),
        (409, "ConditionalRequestConflict", Conflict),
        (412, "PreconditionFailed", PreconditionFailed),
        (404, "NoSuchKey", NotFound),
    ],
)
def test_put_errors_become_store_errors_naming_the_key(scripted, status, code, error):
    store = scripted(status, code).store(NO_RETRIES)

    with pytest.raises(error) as caught:
        store.put("orgs/a/lease.json", b"x", if_absent=True)

    assert type(caught.value) is error
    assert caught.value.key == "orgs/a/lease.json"
    assert code in str(caught.value)


@pytest.mark.parametrize("code", ["AccessDenied", "InvalidAccessKeyId"])
def test_other_errors_are_plain_store_errors_with_the_key(scripted, code):
    store = scripted(403, code).store(NO_RETRIES)

    with pytest.raises(StoreError) as caught:
        store.get("orgs/a/log/1.json")

    assert type(caught.value) is StoreError
    assert str(caught.value).startswith(f"orgs/a/log/1.json: {code} (403)")
    assert caught.value.key == "orgs/a/log/1.json"


def test_a_missing_bucket_is_not_a_missing_key(scripted):
    store = scripted(404, "NoSuchBucket").store()

    with pytest.raises(StoreError) as caught:
        store.get("k")

    assert not isinstance(caught.value, NotFound)


def test_server_errors_are_retried_by_the_client_three_times_in_all(scripted):
    server = scripted(503, "SlowDown")

    with pytest.raises(Transient):
        server.store().put("k", b"x", if_absent=True)

    assert server.requests == ["PUT /scripted/k"] * 3


def test_a_412_is_answered_at_once_not_retried(scripted):
    server = scripted(412, "PreconditionFailed")

    with pytest.raises(PreconditionFailed):
        server.store().put("k", b"x", if_absent=True)

    assert server.requests == ["PUT /scripted/k"]


def test_a_head_of_a_missing_key_is_not_found(scripted):
    with pytest.raises(NotFound):
        scripted(404, "NotFound").store().head("k")


def test_a_refused_connection_is_transient():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{port}", config=NO_RETRIES, **FAKE_AWS
    )

    with pytest.raises(Transient) as caught:
        S3Store("nobody", client=client).get("k")

    assert caught.value.key == "k"


def test_a_read_timeout_is_transient(scripted):
    server = scripted(200, "Slow", delay=1.0)
    config = NO_RETRIES.merge(Config(read_timeout=0.2))

    with pytest.raises(Transient):
        server.store(config).put("k", b"x")


def test_a_prefix_keeps_every_key_under_it(moto_server):
    client = moto_client(moto_server)
    bucket = fresh_bucket_name()
    client.create_bucket(Bucket=bucket)
    store = S3Store(bucket, prefix="/linklog/dev/", client=client)
    store.put("orgs/a/log/1.json", b"one")
    store.put("orgs/a/log/2.json", b"two")
    client.put_object(Bucket=bucket, Key="orgs/a/log/0.json", Body=b"outside the prefix")

    keys = [o.key for o in store.list("orgs/a/log/")]
    after = [o.key for o in store.list("orgs/a/log/", start_after="orgs/a/log/1.json")]
    raw = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])

    assert keys == ["orgs/a/log/1.json", "orgs/a/log/2.json"]
    assert after == ["orgs/a/log/2.json"]
    assert raw == ["linklog/dev/orgs/a/log/1.json", "linklog/dev/orgs/a/log/2.json", "orgs/a/log/0.json"]
    assert store.get("orgs/a/log/2.json").body == b"two"


def test_moto_server_keeps_its_buckets_when_a_test_uses_mock_aws(server_store):
    server_store.put("k", b"kept")

    with mock_aws():
        moto_client().create_bucket(Bucket=fresh_bucket_name())

    assert server_store.get("k").body == b"kept"


def test_a_stopped_moto_server_has_ended_its_process():
    server = start_moto_server()
    moto_client(server.url).create_bucket(Bucket=fresh_bucket_name())

    server.stop()

    assert server.process.poll() is not None


class DropsFirstAnswer:
    """A proxy to moto's server that forwards every request but drops the
    answer to the first PUT: the write lands, the client never hears so."""

    def __init__(self, upstream: str):
        self.puts = 0
        proxy = self
        host, port = upstream.removeprefix("http://").split(":")

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                connection = http.client.HTTPConnection(host, int(port), timeout=10)
                connection.request(self.command, self.path, body, dict(self.headers))
                answer = connection.getresponse()
                payload = answer.read()
                connection.close()
                if self.command == "PUT":
                    proxy.puts += 1
                    if proxy.puts == 1:
                        self.close_connection = True
                        return
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_HEAD = _forward

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_conditional_put_whose_retry_finds_its_own_write_is_transient_not_412(moto_server):
    # botocore retries the put whose answer was lost; S3 (here moto) answers
    # the retry 412 because the first try landed. A PreconditionFailed here
    # would tell the log that another writer owns the version.
    bucket = fresh_bucket_name()
    moto_client(moto_server).create_bucket(Bucket=bucket)
    proxy = DropsFirstAnswer(moto_server)
    try:
        store = S3Store(bucket, client=moto_client(proxy.url))
        with pytest.raises(Transient) as caught:
            store.put("orgs/a/log/00000000000000000001.json", b"mine", if_absent=True)
        assert "may have landed" in str(caught.value)
        assert proxy.puts == 2
        assert store.get("orgs/a/log/00000000000000000001.json").body == b"mine"
        # Without a lost answer, a 412 is certain: the object was there before.
        with pytest.raises(PreconditionFailed):
            store.put("orgs/a/log/00000000000000000001.json", b"again", if_absent=True)
    finally:
        proxy.close()
