"""Fetching pages from real HTTP(S) servers on 127.0.0.1."""

from __future__ import annotations

import gzip
import socket
import threading
import zlib
from datetime import datetime, timezone

import pytest

from chalicelib.links.addresses import AllowList
from chalicelib.links.fetch import FetchError, FetchPolicy, fetch_page, parse_retry_after
from chalicelib.links.outcome import LinkFailure
from fetch_servers import guard, PageServer, html, make_authority, policy_for, redirect, respond

# Nothing these tests do may leave the machine, even if the fetcher is wrong.
pytestmark = pytest.mark.usefixtures("guard")


@pytest.fixture
def serve():
    servers = []

    def start(routes, tls=None, ipv6=False) -> PageServer:
        server = PageServer(routes, tls, ipv6)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def failure_of(url: str, policy: FetchPolicy) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch_page(url, policy)
    return caught.value


def test_a_page_comes_back_with_its_url_status_type_headers_and_text(serve):
    server = serve({"/hello": html("<p>Grüße</p>")})

    page = fetch_page(f"{server.url}/hello", policy_for(server))

    assert page.final_url == f"{server.url}/hello"
    assert page.status == 200
    assert page.content_type == "text/html"
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.body == "<p>Grüße</p>".encode("utf-8")
    assert page.encoding == "utf-8"
    assert page.text() == "<p>Grüße</p>"


def test_the_request_names_the_host_and_the_fetcher(serve):
    server = serve({"/": html("ok")})

    fetch_page(f"{server.url}/", policy_for(server, user_agent="linklog-test/1"))

    headers = server.requests[0].headers
    assert headers["Host"] == f"127.0.0.1:{server.port}"
    assert headers["User-Agent"] == "linklog-test/1"
    assert headers["Accept-Encoding"] == "gzip, deflate"


def test_an_allowed_ipv6_loopback_server_is_reached(serve):
    server = serve({"/six": html("over IPv6")}, ipv6=True)

    page = fetch_page(f"http://[::1]:{server.port}/six", FetchPolicy(allow=AllowList.parse(f"[::1]:{server.port}")))

    assert page.text() == "over IPv6"
    assert server.requests[0].headers["Host"] == f"[::1]:{server.port}"


def test_an_address_that_refuses_the_connection_falls_through_to_the_next_checked_one(serve):
    server = serve({"/": html("second address")})
    policy = FetchPolicy(
        allow=AllowList.parse(f"dual.test:{server.port}"), resolve=lambda host, port: ["::1", "127.0.0.1"]
    )

    page = fetch_page(f"http://dual.test:{server.port}/", policy)

    assert page.text() == "second address"


def test_a_relative_redirect_is_followed(serve):
    server = serve({"/old": redirect("/new?x=1", 301), "/new?x=1": html("moved")})

    page = fetch_page(f"{server.url}/old", policy_for(server))

    assert page.final_url == f"{server.url}/new?x=1"
    assert page.text() == "moved"
    assert server.paths() == ["/old", "/new?x=1"]


def test_an_absolute_redirect_to_another_allowed_server_is_followed(serve):
    second = serve({"/there": html("arrived")})
    first = serve({"/here": redirect(f"{second.url}/there", 307)})

    page = fetch_page(f"{first.url}/here", policy_for(first, second))

    assert page.final_url == f"{second.url}/there"
    assert page.text() == "arrived"


def test_five_redirects_are_followed_and_a_sixth_is_refused(serve):
    chain = {f"/hop{n}": redirect(f"/hop{n + 1}") for n in range(6)}
    server = serve({**chain, "/hop5": html("end of five"), "/hop6": html("end of six")})

    assert fetch_page(f"{server.url}/hop0", policy_for(server)).text() == "end of five"
    failure = failure_of(f"{server.url}/hop0", policy_for(server, max_redirects=4))

    assert (failure.code, failure.retryable) == ("too_many_redirects", False)


def test_a_redirect_to_another_scheme_is_refused(serve):
    server = serve({"/": redirect("ftp://files.example/x")})

    failure = failure_of(f"{server.url}/", policy_for(server))

    assert (failure.code, failure.retryable) == ("unsupported_scheme", False)


@pytest.mark.parametrize(
    "status, headers, code, retryable, retry_after",
    [
        (404, {}, "http_404", False, None),
        (410, {}, "http_410", False, None),
        (500, {}, "http_500", True, None),
        (503, {"Retry-After": "120"}, "http_503", True, 120.0),
        (429, {"Retry-After": "30"}, "rate_limited", True, 30.0),
        (429, {}, "rate_limited", True, None),
    ],
)
def test_error_statuses_become_errors_as_data(serve, status, headers, code, retryable, retry_after):
    server = serve({"/": lambda handler: respond(handler, status, b"no", headers)})

    failure = failure_of(f"{server.url}/", policy_for(server))

    assert (failure.code, failure.retryable, failure.retry_after) == (code, retryable, retry_after)
    assert failure.failure() == LinkFailure(code, failure.message, retryable, retry_after)


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("120", 120.0),
        ("0", 0.0),
        ("Mon, 23 Nov 2026 12:01:30 GMT", 90.0),
        ("Mon, 23 Nov 2026 11:00:00 GMT", 0.0),
        ("9999999", 86400.0),
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_a_date(value, seconds):
    now = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)

    assert parse_retry_after(value, now) == seconds


def test_a_closed_port_is_a_retryable_connect_failure(serve):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    policy = FetchPolicy(allow=AllowList.parse(f"127.0.0.1:{port}"))

    failure = failure_of(f"http://127.0.0.1:{port}/", policy)

    assert (failure.code, failure.retryable) == ("connect_failed", True)


def test_a_server_that_hangs_up_mid_body_is_a_retryable_reset(serve):
    def truncated(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b"only ten b")
        handler.close_connection = True

    server = serve({"/": truncated, "/silent": lambda handler: None})

    for path in ("/", "/silent"):
        failure = failure_of(f"{server.url}{path}", policy_for(server))
        assert (failure.code, failure.retryable) == ("connection_reset", True)


def test_a_server_that_does_not_speak_http_is_a_bad_response(serve):
    def garbled(handler):
        handler.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        handler.close_connection = True

    server = serve({"/": garbled})

    failure = failure_of(f"{server.url}/", policy_for(server))

    assert (failure.code, failure.retryable) == ("bad_response", False)


def test_a_server_that_says_nothing_hits_the_read_timeout(serve):
    server = serve({"/": lambda handler: server.stopping.wait(30)})

    failure = failure_of(f"{server.url}/", policy_for(server, read_timeout=0.3))

    assert (failure.code, failure.retryable) == ("timeout", True)


def test_a_non_html_page_is_returned_for_the_caller_to_judge(serve):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    server = serve({"/logo.png": lambda handler: respond(handler, 200, png, {"Content-Type": "image/png"})})

    page = fetch_page(f"{server.url}/logo.png", policy_for(server))

    assert (page.content_type, page.body, page.encoding) == ("image/png", png, None)


def test_a_page_without_a_content_type_has_an_empty_one(serve):
    server = serve({"/": lambda handler: respond(handler, 200, b"<p>bare</p>")})

    page = fetch_page(f"{server.url}/", policy_for(server))

    assert (page.content_type, page.text()) == ("", "<p>bare</p>")


@pytest.mark.parametrize(
    "encoding, compress",
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", lambda data: zlib.compress(data)[2:-4])],
)
def test_compressed_bodies_arrive_decompressed(serve, encoding, compress):
    text = "<p>" + "squeeze me " * 500 + "</p>"
    body = compress(text.encode())
    server = serve({"/": lambda handler: respond(handler, 200, body, {"Content-Type": "text/html", "Content-Encoding": encoding})})

    page = fetch_page(f"{server.url}/", policy_for(server))

    assert page.text() == text


def test_an_encoding_the_fetcher_did_not_ask_for_is_refused(serve):
    server = serve({"/": lambda handler: respond(handler, 200, b"\x1b\x00", {"Content-Encoding": "br"})})

    failure = failure_of(f"{server.url}/", policy_for(server))

    assert (failure.code, failure.retryable) == ("bad_response", False)


def test_a_corrupt_gzip_body_is_a_bad_response(serve):
    server = serve({"/": lambda handler: respond(handler, 200, b"\x1f\x8bnot gzip at all", {"Content-Encoding": "gzip"})})

    failure = failure_of(f"{server.url}/", policy_for(server))

    assert (failure.code, failure.retryable) == ("bad_response", False)


def test_a_body_of_exactly_the_cap_passes_and_one_byte_more_does_not(serve):
    def sized(size, declare):
        def route(handler):
            handler.send_response(200)
            if declare:
                handler.send_header("Content-Length", str(size))
            handler.end_headers()
            handler.wfile.write(b"a" * size)
        return route

    server = serve({"/cap": sized(1000, True), "/over": sized(1001, True), "/over-undeclared": sized(1001, False)})
    policy = policy_for(server, max_bytes=1000)

    assert len(fetch_page(f"{server.url}/cap", policy).body) == 1000
    for path in ("/over", "/over-undeclared"):
        failure = failure_of(f"{server.url}{path}", policy)
        assert (failure.code, failure.retryable) == ("too_large", False)


def test_a_compressed_body_is_capped_by_its_size_after_decompression(serve):
    body = gzip.compress(b"z" * 5000)
    server = serve({"/": lambda handler: respond(handler, 200, body, {"Content-Encoding": "gzip"})})

    failure = failure_of(f"{server.url}/", policy_for(server, max_bytes=4999))

    assert len(body) < 100
    assert failure.code == "too_large"


def test_cookies_set_on_a_redirect_are_sent_to_the_next_hop(serve):
    server = serve({
        "/login": lambda handler: respond(handler, 302, b"", {"Location": "/home", "Set-Cookie": "session=abc; Path=/"}),
        "/home": html("welcome"),
    })

    fetch_page(f"{server.url}/login", policy_for(server))

    assert server.requests[1].headers.get("Cookie") == "session=abc"


def test_https_pins_the_checked_address_yet_verifies_the_host_name(serve, tmp_path):
    authority = make_authority(tmp_path)
    context = authority.context_for("pages.test")
    server_names = []
    context.sni_callback = lambda connection, name, _context: server_names.append(name)
    server = serve({"/": html("secure")}, tls=context)
    lookups = []

    def resolve(host, port):
        lookups.append((host, port))
        return ["127.0.0.1"]

    policy = FetchPolicy(
        allow=AllowList.parse(f"pages.test:{server.port}"), resolve=resolve, ca_bundle=authority.ca_file
    )

    page = fetch_page(f"https://pages.test:{server.port}/", policy)

    assert page.text() == "secure"
    assert lookups == [("pages.test", server.port)]
    assert server_names == ["pages.test"]
    assert server.requests[0].headers["Host"] == f"pages.test:{server.port}"


def test_https_with_a_certificate_for_another_name_is_a_tls_error(serve, tmp_path):
    authority = make_authority(tmp_path)
    server = serve({"/": html("impostor")}, tls=authority.context_for("other.test"))
    policy = FetchPolicy(
        allow=AllowList.parse(f"127.0.0.1:{server.port}"),
        resolve=lambda host, port: ["127.0.0.1"],
        ca_bundle=authority.ca_file,
    )

    failure = failure_of(f"https://pages.test:{server.port}/", policy)

    assert (failure.code, failure.retryable) == ("tls_error", False)
    assert server.requests == []


def test_https_with_an_untrusted_authority_is_a_tls_error(serve, tmp_path):
    server = serve({"/": html("self-made")}, tls=make_authority(tmp_path).context_for("pages.test"))
    policy = FetchPolicy(allow=AllowList.parse(f"127.0.0.1:{server.port}"), resolve=lambda host, port: ["127.0.0.1"])

    failure = failure_of(f"https://pages.test:{server.port}/", policy)

    assert failure.code == "tls_error"


@pytest.mark.parametrize(
    "url, code",
    [
        ("", "invalid_url"),
        ("   ", "invalid_url"),
        ("pages.test/no-scheme", "invalid_url"),
        ("/just/a/path", "invalid_url"),
        ("http://", "invalid_url"),
        ("http://pages.test:99999/", "invalid_url"),
        ("http://pages.test:0/", "invalid_url"),
        ("http://pages.test:port/", "invalid_url"),
        ("http://user:secret@pages.test/", "invalid_url"),
        ("http://pages.test\\@127.0.0.1/", "invalid_url"),
        ("http://pages.test/a\nb", "invalid_url"),
        ("http://pages..test/", "invalid_url"),
        ("http://pages_test$/", "invalid_url"),
        ("http://" + "a" * 300 + ".test/", "invalid_url"),
        ("http://pages.test." + "1" * 5, "invalid_url"),
        ("ftp://pages.test/file", "unsupported_scheme"),
        ("file:///etc/passwd", "unsupported_scheme"),
        ("javascript:alert(1)", "unsupported_scheme"),
        ("gopher://pages.test/", "unsupported_scheme"),
    ],
)
def test_bad_urls_are_refused_before_any_lookup(url, code):
    lookups = []
    policy = FetchPolicy(resolve=lambda host, port: lookups.append(host) or ["93.184.216.34"])

    failure = failure_of(url, policy)

    assert (failure.code, failure.retryable) == (code, False)
    assert lookups == []


@pytest.mark.parametrize(
    "error",
    [
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
        OSError(101, "Network is unreachable"),
    ],
    ids=["no such name", "resolver failing", "offline"],
)
def test_every_dns_failure_is_retryable(error):
    """An offline laptop answers "not known" for every name, and a name that
    does not resolve today may resolve tomorrow; the attempt cap ends a
    typo's retries."""
    def resolve(host, port):
        raise error

    failure = failure_of("http://nowhere.test/", FetchPolicy(resolve=resolve))

    assert (failure.code, failure.retryable) == ("dns_failure", True)
    assert failure.message.startswith("nowhere.test: ")


def test_a_resolver_with_no_answers_is_a_retryable_dns_failure():
    failure = failure_of("http://empty.test/", FetchPolicy(resolve=lambda host, port: []))

    assert (failure.code, failure.retryable) == ("dns_failure", True)


def test_a_name_that_cannot_be_asked_for_is_a_permanent_dns_failure():
    def resolve(host, port):
        raise UnicodeError("label too long")

    failure = failure_of("http://odd.test/", FetchPolicy(resolve=resolve))

    assert (failure.code, failure.retryable) == ("dns_failure", False)


def test_a_name_that_starts_resolving_is_fetched_on_the_next_try(serve):
    """The same policy, the same URL: the first fetch fails as the name is
    unknown, the second reaches the page once the resolver knows it."""
    server = serve({"/later": html("<p>there now</p>")})
    known: dict[str, str] = {}

    def resolve(host, port):
        if host not in known:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [known[host]]

    policy = FetchPolicy(allow=AllowList.parse(f"later.test:{server.port}"), resolve=resolve)
    url = f"http://later.test:{server.port}/later"

    assert (failure_of(url, policy).code, failure_of(url, policy).retryable) == ("dns_failure", True)
    known["later.test"] = "127.0.0.1"
    assert fetch_page(url, policy).text() == "<p>there now</p>"


def test_a_resolver_that_does_not_answer_in_time_is_a_retryable_timeout():
    release = threading.Event()

    def resolve(host, port):
        release.wait(30)
        return ["93.184.216.34"]

    try:
        failure = failure_of("http://slow-dns.test/", FetchPolicy(resolve=resolve, total_timeout=0.3))
    finally:
        release.set()

    assert (failure.code, failure.retryable) == ("timeout", True)


def test_international_host_names_are_looked_up_in_their_ascii_form():
    lookups = []
    policy = FetchPolicy(resolve=lambda host, port: lookups.append(host) or ["10.0.0.1"])

    failure_of("http://bücher.test/", policy)

    assert lookups == ["xn--bcher-kva.test"]


def test_the_policy_reads_the_allow_list_from_the_environment():
    policy = FetchPolicy.from_env({"LINKLOG_ALLOW_HOSTS": "127.0.0.1:8000, pages.test"})

    assert policy.allow == AllowList.parse("127.0.0.1:8000 pages.test")
    assert (policy.connect_timeout, policy.read_timeout, policy.total_timeout) == (5.0, 10.0, 15.0)
    assert (policy.max_bytes, policy.max_redirects) == (5 * 1024 * 1024, 5)
    assert FetchPolicy.from_env({}).allow == AllowList()


def test_a_bad_allow_list_in_the_environment_is_a_clear_error():
    with pytest.raises(ValueError, match="LINKLOG_ALLOW_HOSTS.*'300.1.1.1/8'"):
        FetchPolicy.from_env({"LINKLOG_ALLOW_HOSTS": "127.0.0.1 300.1.1.1/8"})


@pytest.mark.parametrize(
    "limits, message",
    [
        ({"total_timeout": 0}, "total_timeout must be positive"),
        ({"connect_timeout": -1}, "connect_timeout must be positive"),
        ({"read_timeout": float("nan")}, "read_timeout must be positive"),
        ({"max_bytes": 0}, "max_bytes must be at least 1"),
        ({"max_redirects": -1}, "max_redirects must not be negative"),
    ],
)
def test_a_policy_with_impossible_limits_is_refused(limits, message):
    with pytest.raises(ValueError, match=message):
        FetchPolicy(**limits)
