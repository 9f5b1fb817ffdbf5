"""`make run`: the API and a processing worker on one machine (DESIGN §9).

Serves the Chalice app with chalice.local on 127.0.0.1:$LINKLOG_PORT over
$LINKLOG_STORE (a local directory by default; an s3:// URL with
AWS_ENDPOINT_URL serves over moto's server, MinIO or a real bucket), and
runs the local worker that processes saved links. Without a token setting
it uses a development JWT secret kept in the data directory (made up on the
first run), so a token it printed stays valid across restarts, and prints a
development token and a curl line that saves a link (with fresh ids each
time it is run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import signal
import sys
import threading
import time

from chalicelib import config
from chalicelib.auth import issue_token
from chalicelib.jwt_secret import token_secret
from chalicelib.links.pipeline import make_link_processor
from chalicelib.localserver import create_server
from chalicelib.queue import open_queue
from chalicelib.store import open_store
from chalicelib.worker import start_worker

HOST = "127.0.0.1"
DEV_ORG = "demo"
DEV_TOKEN_SECONDS = 30 * 24 * 3600
LISTEN_BACKLOG = 128
# Starts with a dot: the local store ignores it (not an object), so it sits
# beside the org data without becoming part of it.
DEV_SECRET_FILE = ".dev-jwt-secret"
DEFAULT_DATA_DIRECTORY = "./data"
# An idle worker notices a stop within its queue poll (a second); only a
# cycle in progress is worth a word.
STOP_NOTICE_SECONDS = 2.0


EXAMPLE_URL = "https://example.com/"
# Stand-ins in the example push for values the shell makes each time the
# printed line runs, so running it again saves again instead of repeating
# ids the log has already seen. %N (nanoseconds) is GNU date's; BSD date
# prints a plain N, which leaves ids fresh once a second.
_SHELL_MADE = {
    "@NANOS@": '"$(date +%s%N)"',
    "@NOW@": '"$(date -u +%Y-%m-%dT%H:%M:%SZ)"',
}
_SHELL_MADE_PATTERN = re.compile("(" + "|".join(_SHELL_MADE) + ")")


def example_push() -> dict:
    """A push body that saves one link, with stand-ins (see _SHELL_MADE)
    for its ids and times."""
    return {
        "batch_id": "batch-@NANOS@",
        "client_id": "curl",
        "events": [
            {
                "id": "event-@NANOS@",
                "name": "v1.LinkCreated",
                "args": {"id": "link-@NANOS@", "url": EXAMPLE_URL, "createdAt": "@NOW@"},
                "at": "@NOW@",
            }
        ],
    }


def shell_word(text: str) -> str:
    """``text`` as one sh word: quoted, but with each stand-in replaced by
    the command substitution that makes its value."""
    pieces = _SHELL_MADE_PATTERN.split(text)
    return "".join(_SHELL_MADE.get(piece) or shlex.quote(piece) for piece in pieces if piece)


def curl_line(base_url: str, token: str, body: dict) -> str:
    """A ready-to-paste curl command (sh, bash, zsh) that pushes ``body``."""
    return " ".join(
        [
            "curl -X POST",
            shlex.quote(f"{base_url}/v1/sync/push"),
            "-H",
            shlex.quote(f"Authorization: Bearer {token}"),
            "-H",
            shlex.quote("Content-Type: application/json"),
            "-d",
            shell_word(json.dumps(body)),
        ]
    )


def dev_secret(store_url: str) -> str:
    """The development JWT secret kept in the data directory, made on first use.

    The directory is the ``file://`` store's; for another store it is
    ``./data``. The file is readable by its owner only.
    """
    directory = (
        store_url[len("file://"):] if store_url.startswith("file://") else DEFAULT_DATA_DIRECTORY
    )
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, DEV_SECRET_FILE)
    try:
        with open(path, encoding="ascii") as existing:
            secret = existing.read().strip()
        if len(secret) >= 32:
            return secret
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(32)
    # A new file, then a rename: a run killed half-way leaves no empty secret.
    temporary = f"{path}.{os.getpid()}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as new:
        new.write(secret + "\n")
    os.replace(temporary, path)
    return secret


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted."""
    # It takes no arguments; --help says where its settings come from
    # rather than starting a server.
    argparse.ArgumentParser(
        prog="python -m chalicelib.devserver",
        description="linklog on this machine (make run): the API and a processing worker. "
        "Settings come from the environment: LINKLOG_STORE (default file://./data), "
        "LINKLOG_PORT (default 8000), LINKLOG_ALLOW_HOSTS, LINKLOG_LEASE_SECONDS and the "
        "token settings; see the README's Configuration.",
    ).parse_args(argv)
    import app as api  # app.py lives at the project root, beside chalicelib

    settings = config.load()
    if not (settings.jwt_secret or settings.jwt_secret_from or settings.jwks_url):
        # One secret per data directory: the address printed by an earlier
        # run, and the token an open page keeps, stay valid after a restart.
        secret = dev_secret(settings.store)
        settings = config.load({**os.environ, "LINKLOG_JWT_SECRET": secret})
    store = open_store(settings.store)
    queue = open_queue(settings.queue)
    api.use_services(api.build_services(settings, store=store, queue=queue))
    stop = threading.Event()
    worker = start_worker(
        store, queue, process=make_link_processor(), lease_seconds=settings.lease_seconds,
        stop_event=stop,
    )

    server = create_server(api.app, HOST, settings.port)
    # socketserver listens with a backlog of 5: a burst of clients connecting
    # at once (a sync storm, the load test) would be reset. Listening again
    # raises the backlog of the same socket.
    server.server.socket.listen(LISTEN_BACKLOG)
    port = server.server.server_address[1]
    base_url = f"http://{HOST}:{port}"
    print(f"linklog serving on {base_url} over {settings.store} (queue: {settings.queue})")
    secret = token_secret(settings)
    if secret:
        now = time.time()
        token = issue_token(
            secret, sub="dev", org=DEV_ORG, lifetime_seconds=DEV_TOKEN_SECONDS, now=now
        )
        print(f"open {base_url}/#token={token}")
        print(f"development token (org {DEV_ORG!r}, valid 30 days):")
        print(token)
        print("save a link:")
        print(curl_line(base_url, token, example_push()))
    else:
        print(f"tokens are checked against {settings.jwks_url} (RS256)")
    sys.stdout.flush()
    # `kill`, `docker stop` and systemd stop with SIGTERM: the same way out as Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server.server_close()
        finish_worker(stop, worker)


def finish_worker(stop: threading.Event, worker: threading.Thread) -> None:
    """Stop the worker after the cycle it is running, if any.

    Exiting under a cycle would lose the links it has read (they are done
    again) and, killed before its release, leave its lease held, so the next
    `make run` would wait out LINKLOG_LEASE_SECONDS before processing. A
    second Ctrl-C quits at once, as before.
    """
    stop.set()
    worker.join(timeout=STOP_NOTICE_SECONDS)
    if not worker.is_alive():
        return
    print("stopping: the worker is finishing its cycle (Ctrl-C again to quit now)", flush=True)
    try:
        worker.join()
    except KeyboardInterrupt:
        print("quit: the cycle's links are done again after its lease runs out", flush=True)


if __name__ == "__main__":
    main()
