"""Web pages served on 127.0.0.1 for the benches that process links.

``PageServer(page)`` starts a threaded HTTP server on a free port; every
GET is answered with ``page(path)``, an HTML page's bytes, or a 404 when it
returns None. A delay before each answer stands in for a slow site.

    with PageServer(lambda path: b"<title>Hi</title>") as pages:
        fetch(pages.url("/a/1"))
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Page = Callable[[str], "bytes | None"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A backlog's worker opens many connections at once; past the default
    # listen queue of 5 the kernel drops connection attempts, which the
    # client tries again only a second later. It is read when the socket
    # starts listening, so it is set on the class.
    request_queue_size = 64


class PageServer:
    """Serves ``page(path)`` on a free port of 127.0.0.1, after
    ``delay_seconds`` each; ``close()`` (or leaving the ``with``) stops it."""

    def __init__(self, page: Page, delay_seconds: float = 0.0):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if delay_seconds:
                    time.sleep(delay_seconds)
                body = page(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args) -> None:
                # A bench prints its figures alone.
                pass

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        """The address of ``path`` (starting with "/") on this server."""
        return f"http://{self.host}{path}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> PageServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

