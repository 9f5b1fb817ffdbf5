"""The local HTTP server of `make run`, answering every refusal in the one error shape.

chalice.local answers what never reaches the app in its own ways: a path
no route has is a 403 that, like API Gateway's, echoes the request's
Authorization header back; a request line or header too long is http.server's
HTML page. The handler here answers those as the API answers everything
else, ``{"error": {"code", "message", "details"}}`` (an unknown route is a
404, as the stack's gateway responses make it on AWS).
"""

from __future__ import annotations

import functools
from http import HTTPStatus

from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    ForbiddenError,
    LocalChalice,
    LocalDevServer,
    create_local_server,
)

from chalicelib.api_errors import STATUSES, ApiError


class OneShapeRequestHandler(ChaliceRequestHandler):
    """chalice.local's handler, with its own and http.server's refusals reshaped."""

    def _send_error_response(self, error) -> None:
        if isinstance(error, ForbiddenError):
            # chalice.local's "no such route"; its body would echo the token.
            refusal = ApiError(404, f"no route for {self.command} {self.path.split('?')[0]}")
        else:
            refusal = ApiError(error.CODE if error.CODE in STATUSES else 500, "refused locally")
        self._send_http_response(refusal.status, refusal.response_headers(), refusal.body_json())

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        """http.server's refusals (a line or header too long, a bad request line) as JSON."""
        status = code if code in STATUSES else (400 if code < 500 else 500)
        refusal = ApiError(status, message or HTTPStatus(code).phrase)
        body = refusal.body_json().encode()
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)


def create_server(app, host: str, port: int) -> LocalDevServer:
    """chalice.local's server for ``app`` on ``host:port``, with OneShapeRequestHandler."""
    config = Config()
    if isinstance(app, LocalChalice):
        # An earlier server in this process already made the app local (one
        # request per thread); making it so twice is an error in chalice.local.
        return LocalDevServer(app, config, host, port, handler_cls=OneShapeRequestHandler)
    server = create_local_server(app, config, host, port)
    server.server.RequestHandlerClass = functools.partial(
        OneShapeRequestHandler, app_object=app, config=config
    )
    return server
