"""Hostile URLs and hostile servers: the fetcher must not become a door
into the network it runs in, nor be held or flooded by a page.

Every test here runs under a guard that refuses (and records) any
connection to an address other than 127.0.0.1 and ::1 and any DNS lookup
of a name other than localhost, so nothing leaves the machine even when the
fetcher is wrong. Refused URLs point at a canary listening on loopback on a
port that is not in the allow list: it must never be reached.
"""

from __future__ import annotations

import threading
import tracemalloc
import zlib

import pytest

from chalicelib.links.addresses import AllowList
from chalicelib.links.fetch import FetchError, FetchPolicy, fetch_page
from fetch_servers import Canary, PageServer, guard, html, policy_for, redirect, respond


@pytest.fixture
def canary():
    listener = Canary()
    yield listener
    listener.close()


@pytest.fixture
def server():
    pages = PageServer({"/": html("a page that is allowed")})
    yield pages
    pages.close()


def failure_of(url: str, policy: FetchPolicy) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch_page(url, policy)
    return caught.value


# Each written as a user could type it; {port} is the canary's.
HOSTILE = [
    # loopback, every way of writing it
    ("http://127.0.0.1:{port}/", "refused_address"),
    ("http://127.0.0.2:{port}/", "refused_address"),
    ("http://127.255.255.254:{port}/", "refused_address"),
    ("http://2130706433:{port}/", "refused_address"),
    ("http://017700000001:{port}/", "refused_address"),
    ("http://0x7f000001:{port}/", "refused_address"),
    ("http://0177.0.0.1:{port}/", "refused_address"),
    ("http://0x7f.0.0.1:{port}/", "refused_address"),
    ("http://0x7F.0x00.0x00.0x01:{port}/", "refused_address"),
    ("http://127.1:{port}/", "refused_address"),
    ("http://127.0.1:{port}/", "refused_address"),
    ("http://0x7f.1:{port}/", "refused_address"),
    ("http://127.0.0.1.:{port}/", "refused_address"),
    ("http://１２７.０.０.１:{port}/", "refused_address"),
    ("http://%31%32%37.0.0.1:{port}/", "invalid_url"),
    ("http://127.0.0.1.nip.io.127.1:{port}/", "invalid_url"),
    ("http://localhost:{port}/", "refused_address"),
    ("http://LOCALHOST.:{port}/", "refused_address"),
    ("http://[::1]:{port}/", "refused_address"),
    ("http://[0:0:0:0:0:0:0:1]:{port}/", "refused_address"),
    ("http://[::ffff:127.0.0.1]:{port}/", "refused_address"),
    ("http://[::ffff:7f00:1]:{port}/", "refused_address"),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/", "refused_address"),
    ("http://[::127.0.0.1]:{port}/", "refused_address"),
    ("http://[64:ff9b::127.0.0.1]:{port}/", "refused_address"),
    ("http://[2002:7f00:1::1]:{port}/", "refused_address"),
    ("http://[::1%25lo]:{port}/", "invalid_url"),
    # unspecified: Linux connects it to the local host
    ("http://0.0.0.0:{port}/", "refused_address"),
    ("http://0:{port}/", "refused_address"),
    ("http://0.0.0.7:{port}/", "refused_address"),
    ("http://[::]:{port}/", "refused_address"),
    ("http://[::ffff:0.0.0.0]:{port}/", "refused_address"),
    # instance metadata and link-local
    ("http://169.254.169.254/latest/meta-data/", "refused_address"),
    ("http://169.254.169.254:{port}/", "refused_address"),
    ("http://2852039166/latest/meta-data/", "refused_address"),
    ("http://0xa9fea9fe/", "refused_address"),
    ("http://0251.0376.0251.0376/", "refused_address"),
    ("http://169.254.1.1/", "refused_address"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "refused_address"),
    ("http://[::ffff:169.254.169.254]/", "refused_address"),
    ("http://[::ffff:a9fe:a9fe]/", "refused_address"),
    ("http://[64:ff9b::a9fe:a9fe]/", "refused_address"),
    ("http://[fe80::1]/", "refused_address"),
    ("http://[febf:ffff::1]/", "refused_address"),
    # private, carrier-grade NAT, unique-local
    ("http://10.0.0.1/", "refused_address"),
    ("http://10.255.255.255/", "refused_address"),
    ("http://167772161/", "refused_address"),
    ("http://172.16.0.1/", "refused_address"),
    ("http://172.31.255.254/", "refused_address"),
    ("http://192.168.1.1/", "refused_address"),
    ("http://0xc0.0xa8.1.1/", "refused_address"),
    ("http://192.168.257/", "refused_address"),
    ("http://100.64.0.1/", "refused_address"),
    ("http://100.127.255.254/", "refused_address"),
    ("http://[fc00::1]/", "refused_address"),
    ("http://[fd12:3456:789a::1]/", "refused_address"),
    ("http://[::ffff:10.0.0.1]/", "refused_address"),
    ("http://[::ffff:192.168.0.1]/", "refused_address"),
    ("http://[2002:c0a8:101::1]/", "refused_address"),
    ("http://[fec0::1]/", "refused_address"),
    # multicast, reserved, broadcast, documentation, benchmarking
    ("http://224.0.0.1/", "refused_address"),
    ("http://239.255.255.250/", "refused_address"),
    ("http://[ff02::1]/", "refused_address"),
    ("http://[::ffff:224.0.0.1]/", "refused_address"),
    ("http://240.0.0.1/", "refused_address"),
    ("http://255.255.255.255/", "refused_address"),
    ("http://192.0.0.170/", "refused_address"),
    ("http://192.0.2.1/", "refused_address"),
    ("http://198.18.0.1/", "refused_address"),
    ("http://198.51.100.1/", "refused_address"),
    ("http://203.0.113.1/", "refused_address"),
    ("http://[2001:db8::1]/", "refused_address"),
    ("http://[100::1]/", "refused_address"),
    ("http://[4000::1]/", "refused_address"),
    # not addresses at all
    ("http://256.0.0.1/", "invalid_url"),
    ("http://1.2.3.4.5/", "invalid_url"),
    ("http://08.0.0.1/", "invalid_url"),
    ("http://4294967296/", "invalid_url"),
]


@pytest.mark.parametrize("template, code", HOSTILE)
def test_hostile_urls_end_in_a_permanent_error_before_any_connection(guard, canary, server, template, code):
    url = template.format(port=canary.port)

    failure = failure_of(url, policy_for(server))

    assert (failure.code, failure.retryable) == (code, False)
    assert canary.accepted == 0
    assert guard.connects == []


@pytest.mark.parametrize("ipv6, host", [(False, "127.0.0.1"), (False, "localhost"), (True, "[::1]")])
def test_a_refused_local_address_says_which_allow_list_entry_opens_it(guard, ipv6, host):
    pages = PageServer({"/": html("a local page")}, ipv6=ipv6)
    url = f"http://{host}:{pages.port}/"
    try:
        failure = failure_of(url, FetchPolicy())
        entry = f"{host}:{pages.port}"
        assert failure.code == "refused_address"
        assert failure.message.endswith(f"; to fetch it anyway, add {entry} to LINKLOG_ALLOW_HOSTS")
        # The entry it names is one the setting takes, and opens the page.
        opened = FetchPolicy.from_env({"LINKLOG_ALLOW_HOSTS": entry})
        assert fetch_page(url, opened).text() == "a local page"
    finally:
        pages.close()


def test_the_instance_metadata_refusal_offers_no_way_to_open_it(guard):
    failure = failure_of("http://169.254.169.254/latest/meta-data/", FetchPolicy())

    assert failure.code == "refused_address"
    assert "LINKLOG_ALLOW_HOSTS" not in failure.message
    assert guard.connects == []


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://2130706433:{port}/",
        "http://10.0.0.1/admin",
    ],
)
def test_a_redirect_from_an_allowed_host_to_a_refused_address_is_refused(guard, canary, location):
    pages = PageServer({"/go": redirect(location.format(port=canary.port))})
    try:
        failure = failure_of(f"{pages.url}/go", policy_for(pages))
    finally:
        pages.close()

    assert (failure.code, failure.retryable) == ("refused_address", False)
    assert pages.paths() == ["/go"]
    assert canary.accepted == 0
    assert guard.connects == []


def test_an_allowed_port_does_not_open_the_other_ports_of_the_same_address(guard, canary, server):
    failure = failure_of(f"http://127.0.0.1:{canary.port}/", policy_for(server))

    assert failure.code == "refused_address"
    assert fetch_page(f"{server.url}/", policy_for(server)).text() == "a page that is allowed"
    assert canary.accepted == 0


def test_an_allowed_host_name_opens_its_loopback_addresses(guard, server):
    policy = FetchPolicy(allow=AllowList.parse(f"localhost:{server.port}"))

    page = fetch_page(f"http://localhost:{server.port}/", policy)

    assert page.text() == "a page that is allowed"


def test_one_refused_answer_among_public_ones_refuses_the_host(guard, canary):
    lookups = []

    def resolve(host, port):
        lookups.append(host)
        return ["93.184.216.34", "127.0.0.1"]

    failure = failure_of(f"http://mixed.test:{canary.port}/", FetchPolicy(resolve=resolve))

    assert (failure.code, failure.retryable) == ("refused_address", False)
    assert lookups == ["mixed.test"]
    assert guard.connects == []
    assert canary.accepted == 0


def test_dns_rebinding_cannot_redirect_the_connection(guard, canary):
    """A resolver that answers a public address, then loopback: the host is
    looked up once and the connection goes to the checked public address
    (which the guard stops), never to the second answer."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"], ["127.0.0.1"]])
    lookups = []

    def resolve(host, port):
        lookups.append(host)
        return next(answers)

    failure = failure_of(f"http://rebind.test:{canary.port}/", FetchPolicy(resolve=resolve))

    assert (failure.code, failure.retryable) == ("connect_failed", True)
    assert lookups == ["rebind.test"]
    assert guard.connects == ["93.184.216.34"]
    assert canary.accepted == 0


def test_every_redirect_hop_is_looked_up_once_and_checked(guard, canary, server):
    """A name that is fine on the first hop and rebinds to loopback by the
    second is refused on the second hop."""
    pages = PageServer({"/a": redirect(f"http://rebind.test:{canary.port}/b")})
    lookups = []

    def resolve(host, port):
        lookups.append(host)
        return ["127.0.0.1"]

    policy = FetchPolicy(allow=AllowList.parse(f"127.0.0.1:{pages.port}"), resolve=resolve)
    try:
        failure = failure_of(f"http://rebind.test:{pages.port}/a", policy)
    finally:
        pages.close()

    assert (failure.code, failure.retryable) == ("refused_address", False)
    assert lookups == ["rebind.test", "rebind.test"]
    assert canary.accepted == 0


def test_a_redirect_loop_stops_at_the_redirect_cap(guard, server):
    pages = PageServer({"/ping": redirect("/pong"), "/pong": redirect("/ping")})
    try:
        failure = failure_of(f"{pages.url}/ping", policy_for(pages))
    finally:
        pages.close()

    assert (failure.code, failure.retryable) == ("too_many_redirects", False)
    assert pages.paths() == ["/ping", "/pong", "/ping", "/pong", "/ping", "/pong"]


def drip(body: bool, stop: threading.Event):
    """A route that sends one byte a second for half a minute (until
    ``stop``): in the body after complete headers, or in the status line."""

    def route(handler):
        if body:
            handler.send_response(200)
            handler.send_header("Content-Type", "text/html")
            handler.end_headers()
            handler.wfile.flush()
        data = b"<p>" + b"x" * 27 if body else b"HTTP/1.0 200 OK\r\nX-Slow: " + b"y" * 20
        for byte in data:
            try:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
            except OSError:
                return
            if stop.wait(1.0):
                return

    return route


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_server_dripping_a_byte_a_second_is_cut_off_at_the_page_time_limit(guard, where):
    stop = threading.Event()
    pages = PageServer({"/": drip(where == "body", stop)})
    try:
        failure = failure_of(f"{pages.url}/", policy_for(pages, total_timeout=1.5, read_timeout=5))
    finally:
        stop.set()
        pages.close()

    assert (failure.code, failure.retryable) == ("timeout", True)


def test_one_fetch_running_out_of_time_does_not_cut_the_others(guard):
    stop = threading.Event()

    def slow_page(handler):
        stop.wait(1.0)
        respond(handler, 200, b"worth the wait", {"Content-Type": "text/html"})

    pages = PageServer({"/drip": drip(True, stop), "/slow": slow_page})
    results = {}

    def fetch(path, total_timeout):
        try:
            results[path] = fetch_page(f"{pages.url}{path}", policy_for(pages, total_timeout=total_timeout)).text()
        except FetchError as error:
            results[path] = error.code

    workers = [
        threading.Thread(target=fetch, args=("/drip", 0.5)),
        threading.Thread(target=fetch, args=("/slow", 10)),
    ]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
    finally:
        stop.set()
        pages.close()

    assert results == {"/drip": "timeout", "/slow": "worth the wait"}


class Streamer:
    """A route streaming ``chunk`` ``times`` times without building the
    whole body; it records how much it got out before the client left."""

    def __init__(self, chunk: bytes, times: int, headers: dict[str, str], prefix: bytes = b""):
        self.chunk, self.times, self.headers, self.prefix = chunk, times, headers, prefix
        self.sent = 0
        self.done = threading.Event()

    def __call__(self, handler) -> None:
        try:
            handler.send_response(200)
            for name, value in self.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(self.prefix)
            self.sent += len(self.prefix)
            for _ in range(self.times):
                handler.wfile.write(self.chunk)
                self.sent += len(self.chunk)
        except OSError:
            pass
        finally:
            self.done.set()


FIFTY_MB = 50 * 1024 * 1024


@pytest.mark.parametrize("declared", [True, False])
def test_a_fifty_megabyte_body_stops_at_the_cap(guard, declared):
    headers = {"Content-Type": "text/html"}
    if declared:
        headers["Content-Length"] = str(FIFTY_MB)
    streamer = Streamer(b"a" * 65536, FIFTY_MB // 65536, headers)
    pages = PageServer({"/big": streamer})
    try:
        failure = failure_of(f"{pages.url}/big", policy_for(pages))
        assert streamer.done.wait(10)
    finally:
        pages.close()

    assert (failure.code, failure.retryable) == ("too_large", False)
    assert streamer.sent < FIFTY_MB // 2


def gzip_bomb_parts() -> tuple[bytes, bytes]:
    """The start of a gzip stream of zeros and a block that repeats it by
    one more megabyte; a full flush makes every later block identical, so
    the server can send a gigabyte's worth without ever compressing one."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    megabyte = bytes(1024 * 1024)
    first = compressor.compress(megabyte) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeat = compressor.compress(megabyte) + compressor.flush(zlib.Z_FULL_FLUSH)
    return first, repeat


def test_a_gzip_bomb_stops_at_the_cap_without_inflating_in_memory(guard):
    first, repeat = gzip_bomb_parts()
    streamer = Streamer(repeat, 1023, {"Content-Type": "text/html", "Content-Encoding": "gzip"}, prefix=first)
    pages = PageServer({"/bomb": streamer})
    tracemalloc.start()
    try:
        failure = failure_of(f"{pages.url}/bomb", policy_for(pages))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        pages.close()

    assert len(first) + 1023 * len(repeat) < 2 * 1024 * 1024
    assert (failure.code, failure.retryable) == ("too_large", False)
    assert peak < 32 * 1024 * 1024
