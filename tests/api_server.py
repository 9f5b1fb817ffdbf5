"""The API served over real HTTP by chalice.local in a thread, for API tests."""

from __future__ import annotations

import functools
import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import requests
from chalice.config import Config

import app as api
from chalicelib import config
from chalicelib.auth import issue_token
from chalicelib.localserver import OneShapeRequestHandler, create_server
from chalicelib.queue import LocalQueue, Queue

SECRET = "api-test-secret-long-enough-for-hs256-signing"


@dataclass
class RunningApi:
    url: str
    queue: Queue
    http: requests.Session

    def token(self, org: str = "acme", sub: str = "user-1", lifetime: int = 3600) -> str:
        return issue_token(SECRET, sub=sub, org=org, lifetime_seconds=lifetime, now=time.time())

    def auth(self, org: str = "acme") -> dict:
        return {"Authorization": f"Bearer {self.token(org)}"}

    def push(self, body, org: str = "acme", headers: dict | None = None) -> requests.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.http.post(
            f"{self.url}/v1/sync/push",
            data=raw,
            headers={"Content-Type": "application/json", **self.auth(org), **(headers or {})},
            timeout=30,
        )

    def pull(self, org: str = "acme", **params) -> requests.Response:
        return self.http.get(
            f"{self.url}/v1/sync/pull", params=params, headers=self.auth(org), timeout=30
        )


class QuietHandler(OneShapeRequestHandler):
    """chalice.local's handler without a stderr line per request."""

    def log_message(self, *args) -> None:
        pass


_started: list[str] = []
_lock = threading.Lock()


def _url() -> str:
    # One server serves every test of the process; create_server copes with
    # an app an earlier server (another test file's) already made local.
    with _lock:
        if not _started:
            server = create_server(api.app, "127.0.0.1", 0)
            server.server.RequestHandlerClass = functools.partial(
                QuietHandler, app_object=api.app, config=Config()
            )
            threading.Thread(target=server.server.serve_forever, daemon=True).start()
            _started.append(f"http://127.0.0.1:{server.server.server_address[1]}")
        return _started[0]


@contextmanager
def serving(store, queue: Queue | None = None):
    """Serve the app over ``store`` on 127.0.0.1 until the block ends; pushes
    wake ``queue`` (a fresh LocalQueue unless given)."""
    queue = queue if queue is not None else LocalQueue()
    settings = config.Settings(store="(test)", jwt_secret=SECRET)
    api.use_services(api.build_services(settings, store=store, queue=queue))
    try:
        with requests.Session() as http:
            yield RunningApi(_url(), queue, http)
    finally:
        api.use_services(None)
