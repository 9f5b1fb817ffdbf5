"""Real servers on the loopback interface for the fetcher's tests.

- ``PageServer``: an HTTP (or HTTPS) server on 127.0.0.1 whose routes are
  plain functions of the request handler; it records every request.
- ``Canary``: a listening socket that only counts the connections it gets;
  the fetcher must never reach it.
- ``OutsideGuard`` (and the ``guard`` fixture): replaces socket connect and
  DNS lookups for the test, so nothing can leave the machine; attempts are
  recorded and refused.
- ``make_authority``: a certificate authority and a server certificate
  made on the spot, for https.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chalicelib.links.addresses import AllowList
from chalicelib.links.fetch import FetchPolicy

Route = Callable[[BaseHTTPRequestHandler], None]


def respond(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict | None = None) -> None:
    """Send one complete response with a Content-Length."""
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def html(body: str, content_type: str = "text/html; charset=utf-8") -> Route:
    """A route answering 200 with a page."""
    return lambda handler: respond(handler, 200, body.encode("utf-8"), {"Content-Type": content_type})


def redirect(location: str, status: int = 302) -> Route:
    return lambda handler: respond(handler, status, b"", {"Location": location})


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]


class PageServer:
    """An HTTP server on 127.0.0.1 (or ::1) serving ``routes`` (path -> route; an
    unknown path gets 404). Stop it with ``close``; ``stopping`` tells slow
    routes to give up."""

    def __init__(self, routes: dict[str, Route], tls: ssl.SSLContext | None = None, ipv6: bool = False):
        self.routes = routes
        self.requests: list[SeenRequest] = []
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(SeenRequest(self.path, dict(self.headers.items())))
                route = server.routes.get(self.path)
                if route is None:
                    respond(self, 404, b"not here", {"Content-Type": "text/plain"})
                else:
                    route(self)

            def log_message(self, *args) -> None:
                pass

        server_class = _IPv6Server if ipv6 else ThreadingHTTPServer
        self._httpd = server_class(("::1" if ipv6 else "127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://[::1]:{self.port}" if ipv6 else f"{scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]

    def close(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def policy_for(*servers: PageServer, **limits) -> FetchPolicy:
    """A policy that opens exactly these servers' ports on 127.0.0.1."""
    allowed = " ".join(f"127.0.0.1:{server.port}" for server in servers)
    return FetchPolicy(allow=AllowList.parse(allowed), **limits)


class Canary:
    """Listens on 127.0.0.1 (and ::1, on the same port) and counts accepted
    connections. The fetcher's tests point refused URLs at it."""

    def __init__(self):
        self.accepted = 0
        self._closed = threading.Event()
        self._sockets = [socket.create_server(("127.0.0.1", 0))]
        self.port = self._sockets[0].getsockname()[1]
        try:
            self._sockets.append(socket.create_server(("::1", self.port), family=socket.AF_INET6))
        except OSError:
            pass
        for listener in self._sockets:
            listener.settimeout(0.1)
            threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._closed.set()
        for listener in self._sockets:
            listener.close()


_LOOPBACK = {"127.0.0.1", "::1"}


@dataclass
class OutsideGuard:
    """Records and refuses any connection to an address other than
    127.0.0.1 and ::1, and any DNS lookup of a name other than localhost."""

    connects: list[str] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)

    def install(self, monkeypatch) -> None:
        original_connect = socket.socket.connect
        original_getaddrinfo = socket.getaddrinfo
        guard = self

        def connect(sock, address):
            if address[0] not in _LOOPBACK:
                guard.connects.append(address[0])
                raise ConnectionRefusedError(f"test guard: no connections to {address[0]}")
            return original_connect(sock, address)

        def getaddrinfo(host, *args, **kwargs):
            if not _is_numeric(host) and host.rstrip(".").lower() != "localhost":
                guard.lookups.append(host)
                raise socket.gaierror(socket.EAI_NONAME, f"test guard: no DNS lookup of {host}")
            return original_getaddrinfo(host, *args, **kwargs)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def guard(monkeypatch):
    """The OutsideGuard, installed for one test; import it into a test
    module to use it. A DNS lookup that left the machine fails the test."""
    outside = OutsideGuard()
    outside.install(monkeypatch)
    yield outside
    assert outside.lookups == [], "the fetcher looked up a name outside the machine"


def _is_numeric(host) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Authority:
    ca_file: str
    context_for: Callable[[str], ssl.SSLContext]


def make_authority(directory) -> Authority:
    """A fresh CA (its certificate written to ``directory``) and a way to
    make a server TLS context holding a certificate for a host name."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "linklog test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    def context_for(host: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        cert_file = directory / f"{host}.pem"
        cert_file.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file)
        return context

    return Authority(str(ca_file), context_for)
