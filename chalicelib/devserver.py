"""`make run`: the API and a processing worker on one machine (DESIGN §9).

Serves the Chalice app with chalice.local on 127.0.0.1:$LINKLOG_PORT over
$LINKLOG_STORE (a local directory by default; an s3:// URL with
AWS_ENDPOINT_URL serves over moto's server, MinIO or a real bucket), and
runs the local worker that processes saved links. Without a token setting
it makes up a JWT secret for this run and prints a development token and a
curl line that saves a link.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
import time
import uuid

from chalice.config import Config
from chalice.local import create_local_server

from chalicelib import config
from chalicelib.auth import issue_token
from chalicelib.links.pipeline import make_link_processor
from chalicelib.queue import open_queue
from chalicelib.store import open_store
from chalicelib.worker import start_worker

HOST = "127.0.0.1"
DEV_ORG = "demo"
DEV_TOKEN_SECONDS = 30 * 24 * 3600
LISTEN_BACKLOG = 128


def example_push(now: float) -> dict:
    """A push body that saves one link."""
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    link_id = f"link-{uuid.uuid4().hex[:12]}"
    return {
        "batch_id": f"batch-{uuid.uuid4().hex[:12]}",
        "client_id": "curl",
        "events": [
            {
                "id": f"event-{uuid.uuid4().hex[:12]}",
                "name": "v1.LinkCreated",
                "args": {"id": link_id, "url": "https://example.com/", "createdAt": at},
                "at": at,
            }
        ],
    }


def curl_line(base_url: str, token: str, body: dict) -> str:
    """A ready-to-paste curl command that pushes ``body``."""
    return " ".join(
        [
            "curl -X POST",
            shlex.quote(f"{base_url}/v1/sync/push"),
            "-H",
            shlex.quote(f"Authorization: Bearer {token}"),
            "-H",
            shlex.quote("Content-Type: application/json"),
            "-d",
            shlex.quote(json.dumps(body)),
        ]
    )


def main() -> None:
    """Serve until interrupted."""
    import app as api  # app.py lives at the project root, beside chalicelib

    settings = config.load()
    if not settings.jwt_secret and not settings.jwks_url:
        # A fresh secret per run: tokens printed by an earlier run stop working.
        settings = config.load({**os.environ, "LINKLOG_JWT_SECRET": secrets.token_urlsafe(32)})
    store = open_store(settings.store)
    queue = open_queue(settings.queue)
    api.use_services(api.build_services(settings, store=store, queue=queue))
    start_worker(store, queue, process=make_link_processor(), lease_seconds=settings.lease_seconds)

    server = create_local_server(api.app, Config(), HOST, settings.port)
    # socketserver listens with a backlog of 5: a burst of clients connecting
    # at once (a sync storm, the load test) would be reset. Listening again
    # raises the backlog of the same socket.
    server.server.socket.listen(LISTEN_BACKLOG)
    port = server.server.server_address[1]
    base_url = f"http://{HOST}:{port}"
    print(f"linklog serving on {base_url} over {settings.store} (queue: {settings.queue})")
    if settings.jwt_secret:
        now = time.time()
        token = issue_token(
            settings.jwt_secret, sub="dev", org=DEV_ORG, lifetime_seconds=DEV_TOKEN_SECONDS, now=now
        )
        print(f"open {base_url}/#token={token}")
        print(f"development token (org {DEV_ORG!r}, valid 30 days):")
        print(token)
        print("save a link:")
        print(curl_line(base_url, token, example_push(now)))
    else:
        print(f"tokens are checked against {settings.jwks_url} (RS256)")
    sys.stdout.flush()
    try:
        server.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server.server_close()


if __name__ == "__main__":
    main()
