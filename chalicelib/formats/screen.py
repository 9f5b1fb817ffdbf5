"""Which imported bookmarks may be saved, and which are the same page.

A bookmark is refused, with a reason, when its URL is not one the push API
takes (http or https, at most 2,048 characters, no spaces) or is unsafe to
save: credentials in the URL (they would be kept in the log for good), or
a host the fetcher must not reach (loopback, private networks, instance
metadata; ``LINKLOG_ALLOW_HOSTS`` opens chosen ones, as it does for the
fetcher). Bookmarks of the same page (the project's URL normalization)
collapse into one: the first one's URL and title, every tag, the earliest
save time, read if any copy was read.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from chalicelib.events import MAX_URL_CHARS
from chalicelib.links.addresses import AllowList, ip_literal, refusal_reason
from chalicelib.links.urls import normalize_url

LOCAL_NAMES = ("localhost", "localhost.localdomain")
LOOPBACK = ipaddress.ip_address("127.0.0.1")


@dataclass(frozen=True)
class Refused:
    link: object  # an ImportedLink
    reason: str


@dataclass
class Screened:
    """The outcome of screening a file's bookmarks, in file order."""

    accepted: list = field(default_factory=list)  # (ImportedLink, normalized URL)
    refused: list[Refused] = field(default_factory=list)
    duplicates: int = 0


def refusal(url: str, allow: AllowList) -> str | None:
    """Why ``url`` must not be saved, or None when it may be."""
    if not url:
        return "no URL"
    if len(url) > MAX_URL_CHARS:
        return f"URL longer than {MAX_URL_CHARS} characters"
    try:
        normalize_url(url)
    except ValueError as error:
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme and scheme not in ("http", "https") and scheme.isalnum():
            return f"unsupported scheme {scheme}:"
        return str(error)
    parts = urlsplit(url.strip())
    if parts.username is not None or parts.password is not None:
        return "URL carries credentials (user:password@)"
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        ip = ip_literal(host)
    except ValueError as error:
        return str(error)
    if ip is None:
        if host in LOCAL_NAMES or host.endswith(".localhost"):
            if not allow.permits(host, LOOPBACK, port):
                return _with_allow_hint("local host name (localhost)", host, port)
        return None
    reason = refusal_reason(ip)
    if reason is not None and not allow.permits(host, ip, port):
        if reason == "instance metadata":
            return f"{reason} address {ip}"
        return _with_allow_hint(f"{reason} address {ip}", host, port)
    return None


def _with_allow_hint(reason: str, host: str, port: int) -> str:
    # The fetcher's refusals name the entry that opens them too; a user
    # importing a bookmark of a local server needs it on both sides.
    shown = f"[{host}]" if ":" in host else host
    return f"{reason}; to save it anyway, add {shown}:{port} to LINKLOG_ALLOW_HOSTS"


def screen(links, allow: AllowList = AllowList()) -> Screened:
    """Split ``links`` (ImportedLink, file order) into accepted, refused and duplicates."""
    result = Screened()
    index: dict[str, int] = {}
    for link in links:
        reason = link.not_a_link or refusal(link.url, allow)
        if reason is not None:
            result.refused.append(Refused(link, reason))
            continue
        url = link.url.strip()
        normalized = normalize_url(url)
        if normalized in index:
            at = index[normalized]
            first, _ = result.accepted[at]
            result.accepted[at] = (_merge(first, link), normalized)
            result.duplicates += 1
            continue
        index[normalized] = len(result.accepted)
        result.accepted.append((replace(link, url=url), normalized))
    return result


def _merge(first, later):
    saved = [moment for moment in (first.saved_at, later.saved_at) if moment is not None]
    tags = list(first.tags)
    known = {tag.casefold() for tag in tags}
    tags += [tag for tag in later.tags if tag.casefold() not in known]
    return replace(
        first,
        title=first.title or later.title,
        tags=tuple(tags),
        saved_at=min(saved) if saved else None,
        read=first.read or later.read,
    )
