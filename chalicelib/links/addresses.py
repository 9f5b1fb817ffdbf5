"""Which network addresses the fetcher may connect to.

A crawler inside a cloud function fetches whatever URL a user typed, so it
must never become a door into the network it runs in: the instance
metadata service, the VPC, the loopback interface of the function itself.
Every address a host resolves to is judged here, after resolution, by
range membership (the ``ipaddress`` module), never by matching strings.

``LINKLOG_ALLOW_HOSTS`` opens chosen hosts, IPs or CIDRs (optionally with a
port) that the rules would otherwise refuse: tests and the local demo serve
their pages on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressRefused(Exception):
    """The address lies in a range the fetcher must not reach."""

    def __init__(self, ip: IPAddress, port: int, host: str, reason: str):
        self.ip = ip
        self.port = port
        self.host = host
        self.reason = reason
        named = f"{host} is" if host == str(ip) else f"{host} resolves to {ip},"
        super().__init__(f"{named} {reason}: refusing to connect")


def _table(*rows: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(net), reason) for net, reason in rows)


# Checked in order, so the precise reason wins over the broad one (the
# metadata address is also link-local or unique-local).
_REFUSED_V4 = _table(
    ("169.254.169.254/32", "instance metadata"),
    # Linux connects 0.0.0.0 to the local host, so all of 0/8 is refused.
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "reserved"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved"),
    ("198.51.100.0/24", "reserved"),
    ("203.0.113.0/24", "reserved"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)

_REFUSED_V6 = _table(
    ("fd00:ec2::254/128", "instance metadata"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "reserved"),
    ("100::/64", "reserved"),
    ("2001::/23", "reserved"),
    ("2001:db8::/32", "reserved"),
    ("3fff::/20", "reserved"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)

# IPv6 forms that carry an IPv4 address, which is what is really reached.
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the
    mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64 (64:ff9b::/96) or
    6to4 (2002:aabb:ccdd::/48) forms."""
    if ip in _MAPPED or ip in _COMPATIBLE or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def refusal_reason(ip: IPAddress) -> str | None:
    """Why the fetcher must not connect to ``ip``, or None if it may."""
    if ip.version == 6:
        for net, reason in _REFUSED_V6:
            if ip in net:
                return reason
        inner = embedded_ipv4(ip)
        if inner is not None:
            inner_reason = refusal_reason(inner)
            return f"{inner_reason} (as {inner})" if inner_reason else None
        if ip not in _GLOBAL_UNICAST:
            return "reserved"
        return None
    for net, reason in _REFUSED_V4:
        if ip in net:
            return reason
    return None


@dataclass(frozen=True)
class AllowEntry:
    """One item of the allow list: a host name or a network, maybe a port."""

    host: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    def permits(self, host: str, ip: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return self.host == host
        return ip.version == self.network.version and ip in self.network


_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"LINKLOG_ALLOW_HOSTS: bad port in {entry!r}")
    return int(text)


def _network(text: str, entry: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"LINKLOG_ALLOW_HOSTS: not an address or network: {entry!r}") from None


def _parse_entry(entry: str) -> AllowEntry:
    if entry.startswith("["):
        inside, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"LINKLOG_ALLOW_HOSTS: bad bracketed entry {entry!r}")
        network = _network(inside, entry)
        if network.version != 6:
            raise ValueError(f"LINKLOG_ALLOW_HOSTS: brackets are for IPv6: {entry!r}")
        return AllowEntry(network=network, port=_port(rest[1:], entry) if rest else None)
    if entry.count(":") > 1:
        # A bare IPv6 address or network; a port needs brackets.
        return AllowEntry(network=_network(entry, entry))
    name, colon, port_text = entry.partition(":")
    port = _port(port_text, entry) if colon else None
    if re.fullmatch(r"[0-9./]+", name):
        return AllowEntry(network=_network(name, entry), port=port)
    host = name.lower().rstrip(".")
    if not _HOST_NAME.match(host):
        raise ValueError(f"LINKLOG_ALLOW_HOSTS: not a host name: {entry!r}")
    return AllowEntry(host=host, port=port)


@dataclass(frozen=True)
class AllowList:
    """Hosts and networks opened despite the address rules."""

    entries: tuple[AllowEntry, ...] = ()

    @classmethod
    def parse(cls, setting: str) -> AllowList:
        """Parse ``LINKLOG_ALLOW_HOSTS``: comma- or space-separated host
        names, IPs or CIDRs, each optionally with ``:port``; IPv6 in
        brackets when a port follows (``[::1]:8080``). Raises ValueError
        naming the bad entry."""
        items = [item for item in re.split(r"[,\s]+", setting.strip()) if item]
        return cls(tuple(_parse_entry(item) for item in items))

    def permits(self, host: str, ip: IPAddress, port: int) -> bool:
        """Whether any entry opens this host name or address on this port."""
        return any(entry.permits(host, ip, port) for entry in self.entries)


def check_address(ip: IPAddress | str, port: int, host: str, allow: AllowList) -> None:
    """Refuse (raise AddressRefused) an address the fetcher must not reach,
    unless the allow list opens it; ``host`` is the URL's host name, for
    name entries of the allow list and for the message."""
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    reason = refusal_reason(address)
    if reason is None or allow.permits(host.lower().rstrip("."), address, port):
        return
    raise AddressRefused(address, port, host, reason)


def _ipv4_part(part: str) -> int | None:
    if part[:2].lower() == "0x":
        digits, base = part[2:], 16
        if digits == "":
            return 0
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    try:
        return int(digits, base) if digits.isalnum() and digits.isascii() else None
    except ValueError:
        return None


def _ends_in_number(parts: list[str]) -> bool:
    last = parts[-1]
    if last[:2].lower() == "0x":
        return all(c in "0123456789abcdefABCDEF" for c in last[2:])
    return last.isdigit()


def ip_literal(host: str) -> IPAddress | None:
    """The address a URL host names literally, or None for a host name.

    IPv4 is read the way browsers read it (WHATWG URL): ``2130706433``,
    ``0177.0.0.1``, ``0x7f.1`` and ``127.1`` all mean 127.0.0.1. A host
    that ends in a number but is no valid address raises ValueError, as it
    does in a browser. ``host`` is the bracket-less form for IPv6.
    """
    if ":" in host:
        if "%" in host:
            raise ValueError(f"zone identifiers are not allowed: {host!r}")
        return ipaddress.IPv6Address(host)
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if not parts[-1] or not _ends_in_number(parts):
        return None
    numbers = [_ipv4_part(part) for part in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise ValueError(f"not a valid IPv4 address: {host!r}")
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(parts)):
        raise ValueError(f"IPv4 address out of range: {host!r}")
    value = last
    for index, n in enumerate(head):
        value += n << (8 * (3 - index))
    return ipaddress.IPv4Address(value)
