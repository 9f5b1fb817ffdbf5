"""The web app's files: plain HTML, JavaScript and CSS, served by the API itself.

No build step and no Node toolchain: the files in this directory are what
the browser gets. Only the names in ASSETS are served, so a request can
never name another file.
"""

from __future__ import annotations

from pathlib import Path

DIRECTORY = Path(__file__).parent

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
    "manifest.webmanifest": "application/manifest+json",
    "sw.js": "text/javascript; charset=utf-8",
}

# The page inserts every text it did not write as text (textContent), and
# this policy backs that up: no inline script, no script from elsewhere, no
# plugins, no framing. Images may come from anywhere: cards show the pages'
# own images.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' http: https: data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'; manifest-src 'self'"
)


def asset(name: str) -> tuple[str, dict[str, str]] | None:
    """The text and headers of the asset ``name``, or None if there is no such asset."""
    content_type = ASSETS.get(name)
    if content_type is None:
        return None
    headers = {
        "Content-Type": content_type,
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # The files change with the code; a deploy must not leave a stale page.
        "Cache-Control": "no-cache",
    }
    if name == "sw.js":
        headers["Service-Worker-Allowed"] = "/"
    return (DIRECTORY / name).read_text(encoding="utf-8"), headers
