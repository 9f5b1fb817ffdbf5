"""The address policy: which addresses the fetcher may reach, the allow
list that opens some of them, and how URL hosts name addresses."""

from __future__ import annotations

import ipaddress

import pytest

from chalicelib.links.addresses import AddressRefused, AllowList, check_address, embedded_ipv4, ip_literal


@pytest.mark.parametrize(
    "ip, reason",
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.255", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.255", "carrier-grade NAT"),
        ("169.254.169.254", "instance metadata"),
        ("169.254.0.1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.0.8", "reserved"),
        ("192.0.2.10", "reserved"),
        ("192.88.99.1", "reserved"),
        ("198.18.0.1", "reserved"),
        ("198.19.255.255", "reserved"),
        ("198.51.100.7", "reserved"),
        ("203.0.113.9", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fd00:ec2::254", "instance metadata"),
        ("fe80::1", "link-local"),
        ("fc00::1", "unique-local"),
        ("fdff:ffff::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "reserved"),
        ("2001::1", "reserved"),
        ("2001:2::1", "reserved"),
        ("100::1", "reserved"),
        ("64:ff9b:1::1", "reserved"),
        ("3fff::1", "reserved"),
        ("4000::1", "reserved"),
        ("::ffff:127.0.0.1", "loopback (as 127.0.0.1)"),
        ("::ffff:169.254.169.254", "instance metadata (as 169.254.169.254)"),
        ("::ffff:10.0.0.1", "private (as 10.0.0.1)"),
        ("::ffff:0.0.0.0", "unspecified (as 0.0.0.0)"),
        ("::10.0.0.1", "private (as 10.0.0.1)"),
        ("::127.0.0.1", "loopback (as 127.0.0.1)"),
        ("64:ff9b::7f00:1", "loopback (as 127.0.0.1)"),
        ("64:ff9b::a9fe:a9fe", "instance metadata (as 169.254.169.254)"),
        ("2002:7f00:1::", "loopback (as 127.0.0.1)"),
        ("2002:a9fe:a9fe::1", "instance metadata (as 169.254.169.254)"),
        ("2002:c0a8:101::1", "private (as 192.168.1.1)"),
    ],
)
def test_refused_addresses_name_their_range(ip, reason):
    with pytest.raises(AddressRefused) as refused:
        check_address(ip, 80, "pages.test", AllowList())

    assert refused.value.reason == reason
    assert refused.value.ip == ipaddress.ip_address(ip)


@pytest.mark.parametrize(
    "ip",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "169.253.255.255",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "::ffff:93.184.216.34",
        "64:ff9b::808:808",
        "2002:5db8:d822::1",
    ],
)
def test_public_addresses_pass(ip):
    assert check_address(ip, 443, "pages.test", AllowList()) is None


def test_the_refusal_message_says_what_and_why():
    with pytest.raises(AddressRefused, match=r"^metadata\.test resolves to 169\.254\.169\.254, instance metadata: refusing"):
        check_address("169.254.169.254", 80, "metadata.test", AllowList())
    with pytest.raises(AddressRefused, match=r"^10\.0\.0\.1 is private: refusing"):
        check_address("10.0.0.1", 80, "10.0.0.1", AllowList())


@pytest.mark.parametrize(
    "setting, ip, port, host, allowed",
    [
        ("127.0.0.1:8000", "127.0.0.1", 8000, "127.0.0.1", True),
        ("127.0.0.1:8000", "127.0.0.1", 8001, "127.0.0.1", False),
        ("127.0.0.1:8000", "127.0.0.2", 8000, "127.0.0.2", False),
        ("127.0.0.1", "127.0.0.1", 12345, "127.0.0.1", True),
        ("127.0.0.0/8", "127.9.9.9", 80, "127.9.9.9", True),
        ("10.0.0.0/8:443", "10.2.3.4", 443, "intranet.test", True),
        ("10.0.0.0/8:443", "10.2.3.4", 80, "intranet.test", False),
        ("localhost:8000", "127.0.0.1", 8000, "localhost", True),
        ("localhost:8000", "::1", 8000, "LOCALHOST.", True),
        ("localhost:8000", "127.0.0.1", 8000, "127.0.0.1", False),
        ("Pages.Test.", "192.168.1.5", 80, "pages.test", True),
        ("pages.test", "192.168.1.5", 80, "evil.pages.test", False),
        ("[::1]:8000", "::1", 8000, "::1", True),
        ("[::1]:8000", "::1", 8001, "::1", False),
        ("::1", "::1", 9999, "::1", True),
        ("fd00::/8", "fd12::1", 80, "fd12::1", True),
        ("[fd00::/8]:80", "fd12::1", 81, "fd12::1", False),
        ("127.0.0.1", "::ffff:127.0.0.1", 80, "::ffff:127.0.0.1", False),
        ("", "127.0.0.1", 80, "127.0.0.1", False),
        ("127.0.0.1:1, 127.0.0.1:2\t127.0.0.1:3\n", "127.0.0.1", 3, "127.0.0.1", True),
    ],
)
def test_the_allow_list_opens_exactly_what_it_names(setting, ip, port, host, allowed):
    allow = AllowList.parse(setting)
    try:
        check_address(ip, port, host, allow)
    except AddressRefused:
        assert not allowed
    else:
        assert allowed


@pytest.mark.parametrize(
    "setting, message",
    [
        ("127.0.0.1:http", "bad port in '127.0.0.1:http'"),
        ("127.0.0.1:0", "bad port in '127.0.0.1:0'"),
        ("127.0.0.1:65536", "bad port in '127.0.0.1:65536'"),
        ("127.0.0.1:", "bad port in '127.0.0.1:'"),
        ("300.0.0.1", "not an address or network: '300.0.0.1'"),
        ("10.0.0.0/33", "not an address or network: '10.0.0.0/33'"),
        ("[::1", "bad bracketed entry '\\[::1'"),
        ("[::1]8000", "bad bracketed entry '\\[::1\\]8000'"),
        ("[127.0.0.1]:80", "brackets are for IPv6: '\\[127.0.0.1\\]:80'"),
        ("fd00::zz", "not an address or network: 'fd00::zz'"),
        ("pages.test/path", "not a host name: 'pages.test/path'"),
        ("*.pages.test", "not a host name: '\\*.pages.test'"),
        ("http://pages.test", "bad port in 'http://pages.test'"),
    ],
)
def test_a_bad_allow_list_entry_is_named_in_the_error(setting, message):
    with pytest.raises(ValueError, match="LINKLOG_ALLOW_HOSTS: " + message):
        AllowList.parse(f"pages.test {setting}")


@pytest.mark.parametrize(
    "host, ip",
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0x7F.0X0.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("1.2.3.4.", "1.2.3.4"),
        ("::1", "::1"),
        ("::ffff:7f00:1", "::ffff:127.0.0.1"),
        ("pages.test", None),
        ("localhost", None),
        ("1.2.3.0x1g", None),
        ("123.example", None),
    ],
)
def test_url_hosts_are_read_as_addresses_the_way_browsers_read_them(host, ip):
    expected = ipaddress.ip_address(ip) if ip else None

    assert ip_literal(host) == expected


@pytest.mark.parametrize(
    "host",
    ["256.0.0.1", "1.2.3.4.5", "08.0.0.1", "0x1g.1", "4294967296", "1.2.3.256", "1.16777216", "pages.1", "1..2", "fe80::1%eth0", "1:2:3"],
)
def test_hosts_that_end_in_a_number_but_are_no_address_are_invalid(host):
    with pytest.raises(ValueError):
        ip_literal(host)


@pytest.mark.parametrize(
    "ip, inner",
    [
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("::1.2.3.4", "1.2.3.4"),
        ("64:ff9b::102:304", "1.2.3.4"),
        ("2002:102:304::99", "1.2.3.4"),
        ("2606:4700::1", None),
    ],
)
def test_ipv6_forms_that_carry_an_ipv4_address_give_it_up(ip, inner):
    expected = ipaddress.IPv4Address(inner) if inner else None

    assert embedded_ipv4(ipaddress.IPv6Address(ip)) == expected
