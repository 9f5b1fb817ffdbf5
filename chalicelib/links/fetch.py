"""Fetching one web page safely, on requests.

The URL comes from a user, and the fetcher runs inside the network of a
cloud function, so every hop is parsed, resolved once and checked against
the address policy (chalicelib.links.addresses) before anything connects,
and the connection goes to the address that was checked: requests is handed
an adapter whose connections are pinned to it, so DNS is never asked
twice and a rebinding answer has nothing to rebind. Host header, SNI and
certificate checks still use the host name.

Limits bound what one page may cost: a connect and a read timeout, a total
deadline enforced across reads (a server dripping a byte at a time restarts
a read timeout with every byte, so the deadline cuts the sockets itself), a
byte cap counted after decompression, and a redirect cap.

Failures are ``FetchError``: a short machine-readable code, a message, and
whether trying again later may help.
"""

from __future__ import annotations

import email.utils
import http.client
import ipaddress
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator, Mapping
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError

from chalicelib.links.addresses import AddressRefused, AllowList, IPAddress, check_address, ip_literal
from chalicelib.links.charset import decode, guess_encoding, is_textual, split_content_type
from chalicelib.links.outcome import LinkFailure

DEFAULT_USER_AGENT = "linklog/1.0 (save-for-later link preview)"

_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"
_DECODABLE = {"", "identity", "gzip", "x-gzip", "deflate"}
_REDIRECTS = {301, 302, 303, 307, 308}
_CHUNK = 64 * 1024
# A server's Retry-After is advice; a year-long one would park a link forever.
_MAX_RETRY_AFTER = 24 * 3600.0
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")


class FetchError(Exception):
    """Why a page could not be fetched.

    ``code`` is short and machine-readable (``timeout``, ``http_404``,
    ``refused_address``, ...); ``retryable`` says whether trying again later
    may help; ``retry_after`` is the server's Retry-After, in seconds.
    """

    def __init__(self, code: str, message: str, retryable: bool, retry_after: float | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after

    def failure(self) -> LinkFailure:
        """The same facts as the link-processing contract's LinkFailure."""
        return LinkFailure(self.code, self.message, self.retryable, self.retry_after)


def resolve_host(host: str, port: int) -> list[str]:
    """Every address DNS gives for ``host``, in the resolver's order."""
    addresses: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    return addresses


@dataclass(frozen=True)
class FetchPolicy:
    """Limits and permissions for fetching pages.

    ``resolve(host, port) -> [ip, ...]`` is asked once per hop; tests hand
    in their own. ``ca_bundle`` replaces the default trust store (tests
    serve https with their own authority).
    """

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 15.0
    max_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    allow: AllowList = field(default_factory=AllowList)
    user_agent: str = DEFAULT_USER_AGENT
    resolve: Callable[[str, int], list[str]] = resolve_host
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"FetchPolicy.{name} must be positive, not {getattr(self, name)!r}")
        if self.max_bytes < 1:
            raise ValueError(f"FetchPolicy.max_bytes must be at least 1, not {self.max_bytes!r}")
        if self.max_redirects < 0:
            raise ValueError(f"FetchPolicy.max_redirects must not be negative, not {self.max_redirects!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> FetchPolicy:
        """The default policy, opened by ``LINKLOG_ALLOW_HOSTS``; raises
        ValueError naming a bad entry."""
        return cls(allow=AllowList.parse(environ.get("LINKLOG_ALLOW_HOSTS", "")))


@dataclass(frozen=True)
class FetchedPage:
    """A page as fetched: the last hop's URL and status, its media type
    (lower case, no parameters, "" when the server sent none), headers with
    lower-case names, the decompressed body, and the best guess at its
    character encoding (None for bodies that are not text)."""

    final_url: str
    status: int
    content_type: str
    headers: dict[str, str]
    body: bytes
    encoding: str | None

    def text(self) -> str:
        """The body decoded with ``encoding``; bad bytes become U+FFFD."""
        return decode(self.body, self.encoding)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value (seconds or an HTTP date),
    at most a day; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), _MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return min(max((when - now).total_seconds(), 0.0), _MAX_RETRY_AFTER)


@dataclass(frozen=True)
class _Target:
    """One hop's URL, parsed once; ``url`` is what requests is handed."""

    scheme: str
    host: str
    port: int
    literal: IPAddress | None
    url: str


def _invalid(url: str, why: str) -> FetchError:
    return FetchError("invalid_url", f"{url!r}: {why}", False)


def _out_of_time(where: str, policy: FetchPolicy) -> FetchError:
    return FetchError("timeout", f"{where}: the page took longer than {policy.total_timeout:g} s", True)


def _ascii_host(url: str, host: str) -> str:
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise _invalid(url, "host name cannot be encoded") from None
    return ascii_host.lower().rstrip(".")


def _parse_target(url: str) -> _Target:
    if not isinstance(url, str) or not url.strip():
        raise FetchError("invalid_url", "no URL given", False)
    url = url.strip()
    if len(url) > 8192 or any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise _invalid(url[:200], "too long or holds control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise _invalid(url, str(error)) from None
    scheme = parts.scheme.lower()
    if scheme and scheme not in ("http", "https"):
        raise FetchError("unsupported_scheme", f"{url!r}: only http and https are fetched", False)
    if not scheme or not parts.netloc:
        raise _invalid(url, "not an absolute URL")
    if "@" in parts.netloc or "\\" in parts.netloc:
        raise _invalid(url, "user names, passwords and backslashes are refused in URLs")
    if not parts.hostname:
        raise _invalid(url, "no host")
    host = _ascii_host(url, parts.hostname)
    try:
        literal = ip_literal(host)
    except ValueError as error:
        raise _invalid(url, str(error)) from None
    if literal is None and (len(host) > 253 or not _HOST_NAME.match(host)):
        raise _invalid(url, "not a valid host name")
    default_port = 443 if scheme == "https" else 80
    if port == 0:
        raise _invalid(url, "port 0")
    port = port or default_port
    if literal is not None:
        host = str(literal)
    shown = f"[{host}]" if ":" in host else host
    netloc = shown if port == default_port else f"{shown}:{port}"
    return _Target(scheme, host, port, literal, urlunsplit((scheme, netloc, parts.path or "/", parts.query, "")))


class _Deadline:
    """The page's total time limit, enforced on the sockets themselves.

    A read timeout restarts with every byte, so a server dripping one byte
    a second holds a plain read open indefinitely. When the time is up a
    timer shuts down every socket of the fetch, which wakes any blocked
    read; the fetch then reports a timeout. Duplicated descriptors are
    watched, so shutting down never touches a descriptor number that was
    closed and reused meanwhile.
    """

    def __init__(self, seconds: float):
        self.expired = False
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        twin = sock.dup()
        with self._lock:
            self._watched.append(twin)
            if self.expired:
                self._shut(twin)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._watched:
                self._shut(sock)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._watched:
                sock.close()
            self._watched.clear()


def _resolve_within(target: _Target, policy: FetchPolicy, deadline: _Deadline) -> list[str]:
    """Ask the resolver, giving up when the page's time is up: getaddrinfo
    has no timeout of its own, and a broken resolver retries for long."""
    outcome: dict[str, object] = {}

    def ask() -> None:
        try:
            outcome["answers"] = policy.resolve(target.host, target.port)
        except Exception as error:
            outcome["error"] = error

    worker = threading.Thread(target=ask, name=f"resolve {target.host}", daemon=True)
    worker.start()
    worker.join(max(deadline.remaining(), 0.0))
    if worker.is_alive():
        raise FetchError("timeout", f"{target.host}: no DNS answer within the page's {policy.total_timeout:g} s", True)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["answers"]


def _pinned_addresses(target: _Target, policy: FetchPolicy, deadline: _Deadline) -> list[IPAddress]:
    """Resolve once and check every answer: one refused answer refuses the
    host, so a resolver cannot mix a private address in among public ones."""
    if target.literal is not None:
        addresses = [target.literal]
    else:
        try:
            answers = _resolve_within(target, policy, deadline)
        except UnicodeError as error:
            # The name itself cannot be asked for (a label over 63 bytes).
            raise FetchError("dns_failure", f"{target.host}: {error}", False) from None
        except OSError as error:
            # Retryable even when the name does not exist: an offline laptop
            # answers "not known" for every name, and a name registered
            # today resolves tomorrow. The attempt cap ends a typo's retries.
            reason = error.strerror if isinstance(error, socket.gaierror) and error.strerror else error
            raise FetchError("dns_failure", f"{target.host}: {reason}", True) from None
        try:
            addresses = [ipaddress.ip_address(answer) for answer in answers]
        except ValueError as error:
            raise FetchError("dns_failure", f"{target.host}: resolver answered {error}", True) from None
        if not addresses:
            raise FetchError("dns_failure", f"{target.host}: no addresses", True)
    for address in addresses:
        try:
            check_address(address, target.port, target.host, policy.allow)
        except AddressRefused as refused:
            raise FetchError("refused_address", _refusal_message(refused), False) from None
    return addresses


def _refusal_message(refused: AddressRefused) -> str:
    """The refusal, and the LINKLOG_ALLOW_HOSTS entry that would open exactly
    this host and port (never offered for the instance metadata service)."""
    if refused.reason == "instance metadata":
        return str(refused)
    host = f"[{refused.host}]" if ":" in refused.host else refused.host
    return f"{refused}; to fetch it anyway, add {host}:{refused.port} to LINKLOG_ALLOW_HOSTS"


class _PinnedConnectionMixin:
    """Connects to the checked addresses instead of resolving the host."""

    def __init__(self, *args, addresses: list[IPAddress], deadline: _Deadline, **kwargs):
        super().__init__(*args, **kwargs)
        self._addresses = addresses
        self._deadline = deadline

    def _new_conn(self) -> socket.socket:
        failure: Exception | None = None
        for address in self._addresses:
            remaining = self._deadline.remaining()
            if remaining <= 0:
                break
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                sock.settimeout(min(self.timeout, remaining) if isinstance(self.timeout, (int, float)) else remaining)
                sock.connect((str(address), self.port))
            except TimeoutError:
                sock.close()
                failure = ConnectTimeoutError(self, f"connecting to {address} port {self.port} timed out")
            except OSError as error:
                sock.close()
                failure = NewConnectionError(self, f"cannot connect to {address} port {self.port}: {error}")
            else:
                self._deadline.watch(sock)
                return sock
        raise failure or ConnectTimeoutError(self, "the page's time ran out before connecting")


class _PinnedHTTPConnection(_PinnedConnectionMixin, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnectionMixin, HTTPSConnection):
    pass


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class _PinnedAdapter(HTTPAdapter):
    """Sends each request over a fresh pool pinned to the current hop's
    checked addresses; refuses a request for any other host."""

    def __init__(self, deadline: _Deadline):
        super().__init__()
        self._deadline = deadline
        self._hop: tuple[_Target, list[IPAddress]] | None = None
        self._pools: list[HTTPConnectionPool] = []

    def pin(self, target: _Target, addresses: list[IPAddress]) -> None:
        self._hop = (target, addresses)

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        target, addresses = self._hop
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        if (host_params["scheme"], host_params["host"]) != (target.scheme, target.host):
            raise requests.exceptions.InvalidURL(f"{request.url} is not the checked URL {target.url}")
        if target.scheme == "https":
            pool_class, tls = _PinnedHTTPSPool, pool_kwargs
        else:
            pool_class, tls = _PinnedHTTPPool, {}
        pool = pool_class(
            host=target.host, port=target.port, maxsize=1,
            addresses=addresses, deadline=self._deadline, **tls,
        )
        self._pools.append(pool)
        return pool

    def close(self) -> None:
        super().close()
        for pool in self._pools:
            pool.close()


# What the transport may raise: requests wraps nearly everything, and the
# rest (urllib3, http.client, sockets) is classified the same way.
_TRANSPORT_ERRORS = (requests.RequestException, HTTPError, http.client.HTTPException, OSError)


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and everything it wraps (requests and urllib3 nest them)."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [getattr(current, "reason", None), current.__cause__, current.__context__]
        nested += [arg for arg in current.args if isinstance(arg, BaseException)]
        pending.extend(item for item in nested if isinstance(item, BaseException))


def _transport_error(error: Exception, target: _Target, policy: FetchPolicy, deadline: _Deadline) -> FetchError:
    where = f"{target.host} port {target.port}"
    if deadline.expired:
        return _out_of_time(where, policy)
    causes = list(_causes(error))
    if isinstance(error, requests.exceptions.SSLError):
        return FetchError("tls_error", f"{where}: {error}", False)
    if isinstance(error, requests.exceptions.InvalidURL):
        return FetchError("invalid_url", str(error), False)
    if isinstance(error, requests.exceptions.ContentDecodingError):
        return FetchError("bad_response", f"{where}: body does not decompress", False)
    if any(isinstance(cause, NewConnectionError) for cause in causes):
        return FetchError("connect_failed", f"{where}: could not connect", True)
    if isinstance(error, requests.exceptions.Timeout) or any(
        isinstance(cause, (ReadTimeoutError, ConnectTimeoutError, TimeoutError)) for cause in causes
    ):
        return FetchError("timeout", f"{where}: no answer in time", True)
    if any(isinstance(cause, (ConnectionResetError, BrokenPipeError)) for cause in causes) or isinstance(
        error, requests.exceptions.ChunkedEncodingError
    ):
        return FetchError("connection_reset", f"{where}: connection dropped", True)
    return FetchError("bad_response", f"{where}: {error}", False)


def _status_error(response: requests.Response) -> FetchError:
    status = response.status_code
    reason = f"{response.url}: HTTP {status} {response.reason or ''}".strip()
    retry_after = parse_retry_after(response.headers.get("Retry-After"), datetime.now(timezone.utc))
    if status == 429:
        return FetchError("rate_limited", reason, True, retry_after)
    if 500 <= status <= 599:
        return FetchError(f"http_{status}", reason, True, retry_after)
    return FetchError(f"http_{status}", reason, False)


def _redirect_location(response: requests.Response) -> str | None:
    if response.status_code not in _REDIRECTS:
        return None
    location = response.headers.get("Location")
    if not location:
        return None
    # http.client reads headers as Latin-1; servers send UTF-8 locations.
    try:
        return location.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return location


def _read_body(response: requests.Response, target: _Target, policy: FetchPolicy, deadline: _Deadline) -> bytes:
    too_large = FetchError("too_large", f"{target.url}: body over the cap of {policy.max_bytes} bytes", False)
    codings = {part.strip().lower() for part in response.headers.get("Content-Encoding", "").split(",")}
    if not codings <= _DECODABLE:
        raise FetchError("bad_response", f"{target.url}: unsupported Content-Encoding {codings - _DECODABLE}", False)
    length = response.headers.get("Content-Length", "")
    if codings <= {"", "identity"} and length.isdigit() and int(length) > policy.max_bytes:
        raise too_large
    body = bytearray()
    # urllib3 inflates at most one chunk's worth per read, so a compressed
    # bomb costs no more memory than the cap.
    for chunk in response.iter_content(_CHUNK):
        body += chunk
        if len(body) > policy.max_bytes:
            raise too_large
        if deadline.expired:
            break
    if deadline.expired:
        # The timer may have cut the stream into a clean-looking end.
        raise _out_of_time(target.url, policy)
    return bytes(body)


def _page(response: requests.Response, target: _Target, body: bytes) -> FetchedPage:
    header = response.headers.get("Content-Type")
    media_type, _ = split_content_type(header)
    return FetchedPage(
        final_url=target.url,
        status=response.status_code,
        content_type=media_type,
        headers={name.lower(): value for name, value in response.headers.items()},
        body=body,
        encoding=guess_encoding(body, header) if is_textual(media_type) else None,
    )


def _follow(url: str, policy: FetchPolicy, session: requests.Session, adapter: _PinnedAdapter, deadline: _Deadline) -> FetchedPage:
    target = _parse_target(url)
    headers = {"User-Agent": policy.user_agent, "Accept": _ACCEPT, "Accept-Encoding": "gzip, deflate"}
    for _ in range(policy.max_redirects + 1):
        adapter.pin(target, _pinned_addresses(target, policy, deadline))
        remaining = deadline.remaining()
        if remaining <= 0:
            raise _out_of_time(target.url, policy)
        try:
            response = session.get(
                target.url, headers=headers, stream=True, allow_redirects=False,
                timeout=(min(policy.connect_timeout, remaining), policy.read_timeout),
                verify=policy.ca_bundle or True,
            )
        except _TRANSPORT_ERRORS as error:
            raise _transport_error(error, target, policy, deadline) from None
        with response:
            location = _redirect_location(response)
            if location is None:
                if not 200 <= response.status_code <= 299:
                    raise _status_error(response)
                try:
                    body = _read_body(response, target, policy, deadline)
                except _TRANSPORT_ERRORS as error:
                    raise _transport_error(error, target, policy, deadline) from None
                return _page(response, target, body)
        target = _parse_target(urljoin(target.url, location))
    raise FetchError("too_many_redirects", f"{url!r}: more than {policy.max_redirects} redirects", False)


def fetch_page(url: str, policy: FetchPolicy) -> FetchedPage:
    """Fetch ``url`` within ``policy``'s limits, following redirects, and
    return the final page; raise FetchError for anything short of a 2xx
    page (a non-HTML 2xx page is returned: the caller decides)."""
    deadline = _Deadline(policy.total_timeout)
    adapter = _PinnedAdapter(deadline)
    session = requests.Session()
    # Proxies and .netrc from the environment would route around the pins.
    session.trust_env = False
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    try:
        return _follow(url, policy, session, adapter, deadline)
    finally:
        session.close()
        deadline.close()
