"""The simulated S3 link (bench/link_proxy.py): a delay line in front of moto's server.

Requests go through the project's S3 store (boto3) over the proxy to moto's
keep-alive server. Timing is only ever asserted as a lower bound the proxy
guarantees (no piece is handed on before its delay, nor faster than the
link's rate), which no slow machine can break.
"""

from __future__ import annotations

import http.client
import http.server
import os
import socket
import socketserver
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.link_proxy import LinkProfile, LinkProxy, start_proxy_process
from chalicelib.store import NotFound, PreconditionFailed
from chalicelib.store.motoserver import moto_client, start_moto_server
from chalicelib.store.s3 import S3Store
from backlog import wait_until
from conftest import fresh_bucket_name

# No delay and no practical rate limit: for tests of what arrives, not when.
INSTANT = LinkProfile(one_way_delay_seconds=0, bytes_per_second=1e12, handshake_round_trips=0)


@pytest.fixture(scope="module")
def keep_alive_server():
    with start_moto_server(keep_alive=True) as server:
        yield server.url


def store_through(proxy: LinkProxy, server_url: str) -> S3Store:
    """A fresh bucket, made directly, and a store reaching it through ``proxy``."""
    bucket = fresh_bucket_name()
    moto_client(server_url).create_bucket(Bucket=bucket)
    return S3Store(bucket, client=moto_client(proxy.url))


def test_store_requests_pass_byte_for_byte(keep_alive_server):
    with LinkProxy(keep_alive_server, INSTANT) as proxy:
        store = store_through(proxy, keep_alive_server)
        bodies = {f"k/{size}": os.urandom(size) for size in (1, 65_535, 65_536, 65_537, 3_000_001)}
        for key, body in bodies.items():
            store.put(key, body, if_absent=True)
        for key, body in bodies.items():
            assert store.get(key).body == body
            assert store.head(key).size == len(body)
        assert [info.key for info in store.list("k/")] == sorted(bodies)
        # One boto3 client asking one request at a time keeps one connection.
        assert proxy.stats.connections == 1
        with pytest.raises(PreconditionFailed):
            store.put("k/1", b"again", if_absent=True)
        store.delete("k/1")
        with pytest.raises(NotFound):
            store.get("k/1")


@pytest.mark.timeout(180)
def test_a_90_mb_object_goes_both_ways_intact(keep_alive_server, tmp_path):
    body = os.urandom(90 * 1024 * 1024)
    with LinkProxy(keep_alive_server, INSTANT) as proxy:
        store = store_through(proxy, keep_alive_server)
        store.put("snapshot", body)
        # Streamed down piece by piece, as a restore reads a snapshot.
        with open(tmp_path / "copy", "wb") as copy:
            assert store.download("snapshot", copy).size == len(body)
        assert (tmp_path / "copy").read_bytes() == body
        assert proxy.stats.bytes_to_server > len(body)
        assert proxy.stats.bytes_to_client > len(body)


class ChunkedEcho(http.server.BaseHTTPRequestHandler):
    """Answers a chunked PUT with the same pieces, chunked, keeping the connection."""

    protocol_version = "HTTP/1.1"

    def do_PUT(self):
        pieces = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            pieces.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()  # the empty trailer
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args):
        pass


def test_chunked_bodies_over_one_keep_alive_connection():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ChunkedEcho)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with LinkProxy(f"http://127.0.0.1:{server.server_address[1]}", INSTANT) as proxy:
            connection = http.client.HTTPConnection("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]))
            for sizes in ((10, 70_000, 1, 5_000), (300_000,), (1, 2, 3)):
                pieces = [os.urandom(n) for n in sizes]
                connection.request("PUT", "/echo", body=iter(pieces), encode_chunked=True)
                answer = connection.getresponse()
                assert answer.getheader("Transfer-Encoding") == "chunked"
                assert answer.read() == b"".join(pieces)
            connection.close()
            assert proxy.stats.connections == 1
    finally:
        server.shutdown()
        server.server_close()


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture(scope="module")
def echo_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@settings(max_examples=30, deadline=None)
@given(writes=st.lists(st.binary(min_size=1, max_size=200_000), min_size=1, max_size=6))
def test_any_stream_arrives_unchanged_and_in_order(echo_server, writes):
    with LinkProxy(echo_server, INSTANT) as proxy:
        with socket.create_connection(("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]))) as sock:
            sender = threading.Thread(target=lambda: [sock.sendall(w) for w in writes]
                                      + [sock.shutdown(socket.SHUT_WR)])
            sender.start()
            received = bytearray()
            while data := sock.recv(65536):
                received += data
            sender.join()
    assert bytes(received) == b"".join(writes)


def test_every_request_waits_at_least_a_round_trip(keep_alive_server):
    profile = LinkProfile(one_way_delay_seconds=0.05, bytes_per_second=1e12, handshake_round_trips=2)
    with LinkProxy(keep_alive_server, profile) as proxy:
        store = store_through(proxy, keep_alive_server)
        started = time.perf_counter()
        store.put("first", b"x")
        # A new connection: two handshakes, then the request and its answer.
        assert time.perf_counter() - started >= 3 * profile.round_trip_seconds
        for n in range(5):
            started = time.perf_counter()
            store.get("first")
            assert time.perf_counter() - started >= profile.round_trip_seconds
        assert proxy.stats.shortest_piece_delay_seconds >= profile.one_way_delay_seconds


def test_bandwidth_is_capped_per_direction(keep_alive_server):
    profile = LinkProfile(one_way_delay_seconds=0, bytes_per_second=20e6, handshake_round_trips=0)
    body = os.urandom(10_000_000)
    with LinkProxy(keep_alive_server, profile) as proxy:
        store = store_through(proxy, keep_alive_server)
        started = time.perf_counter()
        store.put("big", body)
        assert time.perf_counter() - started >= len(body) / profile.bytes_per_second
        started = time.perf_counter()
        assert store.get("big").body == body
        assert time.perf_counter() - started >= len(body) / profile.bytes_per_second


def test_a_client_closing_mid_body_harms_nothing(keep_alive_server):
    profile = LinkProfile(one_way_delay_seconds=0.005, bytes_per_second=50e6, handshake_round_trips=0)
    body = os.urandom(8_000_000)
    threads_before = threading.active_count()
    with LinkProxy(keep_alive_server, profile) as proxy:
        store = store_through(proxy, keep_alive_server)
        store.put("whole", body)
        address = ("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]))
        # A put that stops halfway through its body.
        with socket.create_connection(address) as sock:
            sock.sendall(f"PUT /{store.bucket}/half HTTP/1.1\r\nHost: x\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:1_000_000])
        # A get that reads a little of its answer and resets the connection.
        with socket.create_connection(address) as sock:
            sock.sendall(f"GET /{store.bucket}/whole HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            sock.recv(100_000)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        assert store.get("whole").body == body
        with pytest.raises(NotFound):
            store.get("half")
        store.client.close()
        # Every relay thread of the dropped connections ends.
        wait_until(lambda: threading.active_count() <= threads_before + 1, 20,
                   "the relay threads of the dropped connections to end")


def test_only_loopback_targets():
    for target in ("http://10.0.0.1:80", "http://192.0.2.1:9000"):
        with pytest.raises(ValueError, match="not a loopback"):
            LinkProxy(target)
    with pytest.raises(ValueError, match="http://HOST:PORT"):
        LinkProxy("https://127.0.0.1")


def test_the_proxy_runs_in_a_process_of_its_own(keep_alive_server):
    with start_proxy_process(keep_alive_server, LinkProfile(one_way_delay_seconds=0.01)) as proxy:
        bucket = fresh_bucket_name()
        moto_client(keep_alive_server).create_bucket(Bucket=bucket)
        store = S3Store(bucket, client=moto_client(proxy.url))
        started = time.perf_counter()
        store.put("key", b"body")
        assert store.get("key").body == b"body"
        assert time.perf_counter() - started >= 2 * 0.02
