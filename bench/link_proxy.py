"""A simulated network link: a TCP proxy that delays and paces what it relays.

Benches put it in front of moto's server so that store requests cost what
they cost a Lambda reaching S3 in its region: every byte arrives a one-way
delay after it was sent (default 15 ms each way, so a request and its
answer take at least one 30 ms round trip), each direction of a connection
carries at most a set bandwidth (default 80 MB/s), and a new connection
pays its handshakes (TCP's, and TLS's on HTTPS) before its first byte gets
through. This machine's kernel has no ``netem`` qdisc, so ``tc`` cannot do it.

The proxy relays bytes, not HTTP: it never parses what passes through, so
keep-alive connections, chunked and streamed bodies, ``Expect:
100-continue`` and 90 MB objects go through byte for byte, each paying the
link's costs where the real one would. Each direction is a delay line, as
``netem`` is: a reader stamps every piece it receives with the moment it
would arrive at the far end (after the pieces before it have been sent at
the link's rate, plus the one-way delay) and a writer hands it on at that
moment. The line holds a bounded number of pieces, so a fast sender is
held back as TCP's window would hold it, and memory stays small.

Only loopback targets are allowed: this is a bench tool, not a relay.

    python -m bench.link_proxy http://127.0.0.1:PORT [--delay-ms 15] [--mbps 80]

prints the proxy's URL and relays until its stdin closes.
"""

from __future__ import annotations

import argparse
import ipaddress
import queue
import socket
import sys
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from chalicelib.store.motoserver import ServerProcess, start_server_process

PIECE = 64 * 1024
# Pieces a direction holds in flight: 4 MB, more than 80 MB/s needs to fill
# a 30 ms round trip (2.4 MB), as a tuned TCP window would be.
PIECES_IN_FLIGHT = 64


@dataclass(frozen=True)
class LinkProfile:
    """What the link costs. The defaults are a Lambda and S3 in one region."""

    one_way_delay_seconds: float = 0.015
    bytes_per_second: float = 80e6
    # A new connection to S3 waits for TCP's handshake and TLS 1.3's, one
    # round trip each, before its request can leave.
    handshake_round_trips: int = 2

    def __post_init__(self):
        if self.one_way_delay_seconds < 0 or self.bytes_per_second <= 0:
            raise ValueError("the delay must be >= 0 and the bandwidth > 0")
        if self.handshake_round_trips < 0:
            raise ValueError("handshake_round_trips must be >= 0")

    @property
    def round_trip_seconds(self) -> float:
        return 2 * self.one_way_delay_seconds


@dataclass
class LinkStats:
    """What went over the link since the proxy started."""

    connections: int = 0
    bytes_to_server: int = 0
    bytes_to_client: int = 0
    # The shortest time any piece spent in the line: never below the delay.
    shortest_piece_delay_seconds: float = float("inf")


def check_loopback(host: str) -> str:
    """``host``'s address if it is a loopback one; raises ValueError otherwise."""
    address = socket.gethostbyname(host)
    if not ipaddress.ip_address(address).is_loopback:
        raise ValueError(f"{host} ({address}) is not a loopback address; the proxy only targets loopback")
    return address


class _Direction:
    """One direction of one connection: a delay line from ``source`` to ``sink``."""

    def __init__(self, source, sink, profile: LinkProfile, free_at: float,
                 count, on_done) -> None:
        self.source = source
        self.sink = sink
        self.profile = profile
        # When the link will have finished sending what it already holds.
        self.free_at = free_at
        self.count = count
        self.on_done = on_done
        self.line: queue.Queue = queue.Queue(PIECES_IN_FLIGHT)

    def start(self, name: str) -> None:
        threading.Thread(target=self._receive, name=f"{name} in", daemon=True).start()
        threading.Thread(target=self._deliver, name=f"{name} out", daemon=True).start()

    def _arrival(self, size: int) -> float:
        sending = max(time.monotonic(), self.free_at)
        self.free_at = sending + size / self.profile.bytes_per_second
        return self.free_at + self.profile.one_way_delay_seconds

    def _receive(self) -> None:
        while True:
            try:
                piece = self.source.recv(PIECE)
            except OSError:
                piece = b""
            # The end of the stream travels the line too: the far end sees
            # the close after the bytes before it.
            self.line.put((time.monotonic(), self._arrival(len(piece)), piece))
            if not piece:
                return

    def _deliver(self) -> None:
        failed = False
        while True:
            received, due, piece = self.line.get()
            # Once the far end has gone, pieces are only drained, so the
            # reader is never stuck on a full line; the end marker ends it.
            if not failed:
                failed = not self._hand_on(received, due, piece)
            if not piece:
                break
        self.on_done(aborted=False)

    def _hand_on(self, received: float, due: float, piece: bytes) -> bool:
        """Hand ``piece`` (or the end of the stream) on at ``due``; False if the far end has gone."""
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            if piece:
                self.sink.sendall(piece)
                self.count(len(piece), received)
            else:
                self.sink.shutdown(socket.SHUT_WR)
            return True
        except OSError:
            # A client closing mid-body, say: end the whole connection,
            # which also wakes the readers of both directions.
            self.on_done(aborted=True)
            return False


class _Connection:
    """A client's connection and the proxy's own to the target, relayed both ways."""

    def __init__(self, client: socket.socket, upstream: socket.socket, proxy: LinkProxy):
        self.client = client
        self.upstream = upstream
        self._lock = threading.Lock()
        self._finished = 0
        profile = proxy.profile
        opened = time.monotonic() + profile.handshake_round_trips * profile.round_trip_seconds
        self.to_server = _Direction(client, upstream, profile, opened,
                                    proxy._counter("bytes_to_server"), self._done)
        self.to_client = _Direction(upstream, client, profile, time.monotonic(),
                                    proxy._counter("bytes_to_client"), self._done)

    def start(self, name: str) -> None:
        self.to_server.start(f"{name} to server")
        self.to_client.start(f"{name} to client")

    def _done(self, aborted: bool) -> None:
        with self._lock:
            if aborted:
                for side in (self.client, self.upstream):
                    try:
                        side.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            self._finished += 1
            if self._finished < 2:
                return
        self.client.close()
        self.upstream.close()


class LinkProxy:
    """A threaded proxy on a free 127.0.0.1 port relaying to ``target`` (a loopback URL)."""

    def __init__(self, target: str, profile: LinkProfile = LinkProfile()):
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"target {target!r} must be http://HOST:PORT")
        self.target = (check_loopback(parts.hostname), parts.port)
        self.profile = profile
        self.stats = LinkStats()
        self._stats_lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        host, port = self._listener.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self._accepting = threading.Thread(target=self._accept, name="link proxy", daemon=True)
        self._accepting.start()

    def _counter(self, field: str):
        def count(size: int, received: float) -> None:
            with self._stats_lock:
                setattr(self.stats, field, getattr(self.stats, field) + size)
                spent = time.monotonic() - received
                self.stats.shortest_piece_delay_seconds = min(
                    self.stats.shortest_piece_delay_seconds, spent)
        return count

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed: the proxy stopped
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for side in (client, upstream):
                side.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._stats_lock:
                self.stats.connections += 1
                number = self.stats.connections
            _Connection(client, upstream, self).start(f"link {number}")

    def stop(self) -> None:
        """Stop accepting; connections already open end when their peers close them."""
        # Shutting the listener down wakes the thread blocked in accept();
        # closing it alone would not.
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accepting.join()

    def __enter__(self) -> LinkProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_proxy_process(target: str, profile: LinkProfile = LinkProfile()) -> ServerProcess:
    """A LinkProxy in front of ``target`` in a child process of its own, so that
    relaying and its timers never wait for the measured process's interpreter lock."""
    return start_server_process("bench.link_proxy", [
        target,
        "--delay-ms", repr(profile.one_way_delay_seconds * 1000),
        "--mbps", repr(profile.bytes_per_second / 1e6),
        "--handshake-round-trips", str(profile.handshake_round_trips),
    ])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.link_proxy", description=__doc__.split("\n")[0])
    parser.add_argument("target", help="http://127.0.0.1:PORT to relay to")
    parser.add_argument("--delay-ms", type=float, default=15.0, help="one-way delay (15)")
    parser.add_argument("--mbps", type=float, default=80.0, help="MB/s per connection and direction (80)")
    parser.add_argument("--handshake-round-trips", type=int, default=2,
                        help="round trips a new connection waits before its first byte (2)")
    args = parser.parse_args(argv)
    profile = LinkProfile(args.delay_ms / 1000, args.mbps * 1e6, args.handshake_round_trips)
    with LinkProxy(args.target, profile) as proxy:
        print(proxy.url, flush=True)
        # Relay until the parent closes our stdin, or dies and so closes it.
        sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1:])
