"""The normalized form of a saved URL: two saves of one page are one link.

Normalization only removes what cannot change which page is served to the
user (case of scheme and host, a default port, the fragment, tracking
parameters); everything else, including the order of the remaining query
parameters, is kept as written, because servers may depend on it.
"""

import ipaddress
import re
from urllib.parse import unquote, urlsplit

MAX_URL_LENGTH = 8192

DEFAULT_PORTS = {"http": 80, "https": 443}

# Parameters added by ad platforms and newsletters to follow a click; they
# never select content. Compared lowercased; utm_* is matched as a prefix.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "ttclid",
        "li_fat_id",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "_openstat",
    }
)

_ASCII_HOST = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f]")


def normalize_url(url: str) -> str:
    """The canonical form of an http(s) URL, for finding duplicate saves.

    Lowercases scheme and host, punycodes an internationalized host, drops a
    default port, the fragment and tracking parameters (``utm_*``,
    ``fbclid``, ``gclid``, ...), keeps the other parameters in their order
    and turns an empty path into ``/``. Raises ValueError for anything that
    is not an absolute http or https URL with a valid host.
    """
    if not isinstance(url, str):
        raise ValueError(f"a URL must be a string, not {type(url).__name__}")
    url = url.strip()
    if not url:
        raise ValueError("empty URL")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"URL longer than {MAX_URL_LENGTH} characters")
    if _UNSAFE_CHARS.search(url):
        raise ValueError("URL contains whitespace or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"only http and https URLs can be saved, not {url!r}")
    try:
        port = parts.port
    except ValueError as error:
        raise ValueError(f"invalid port in {url!r}") from error
    host = _normalize_host(parts.hostname or "", url)
    netloc = host
    if "@" in parts.netloc:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + host
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = parts.path or "/"
    query = _strip_tracking(parts.query)
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def _normalize_host(host: str, url: str) -> str:
    if not host:
        raise ValueError(f"URL has no host: {url!r}")
    if ":" in host:
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError as error:
            raise ValueError(f"invalid IPv6 host in {url!r}") from error
    host = host.lower()
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as error:
            raise ValueError(f"invalid internationalized host in {url!r}") from error
    if not _ASCII_HOST.fullmatch(host):
        raise ValueError(f"invalid host in {url!r}")
    return host


def _strip_tracking(query: str) -> str:
    kept = []
    for part in query.split("&"):
        if not part:
            continue
        name = unquote(part.split("=", 1)[0]).lower()
        if name.startswith("utm_") or name in TRACKING_PARAMS:
            continue
        kept.append(part)
    return "&".join(kept)
