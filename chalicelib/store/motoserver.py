"""moto's S3 server (ThreadedMotoServer) in a child process: S3 over real HTTP without AWS.

Tests, benches and a local run use it as a stand-in for S3. It runs in its
own process because moto keeps its state in module globals shared by an
in-process server and ``mock_aws``, and ``mock_aws`` wipes that state when it
starts and stops: a server inside the test process would lose its buckets
whenever any test used ``mock_aws``. A process of its own also gives the
server its own interpreter lock.

moto's conditional writes are not atomic on their own; the server, and any
in-process ``mock_aws`` that calls ``make_s3_requests_atomic``, are made so.
moto is a development dependency; nothing here imports it until asked.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass

# moto accepts any credentials; explicit ones keep clients independent of
# whatever AWS settings the environment holds.
FAKE_AWS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class ServerProcess:
    """A server running in a child process (moto's, or a bench's proxy);
    ``url`` is its endpoint, e.g. ``http://127.0.0.1:40123``."""

    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        """Stop the server and wait for its process to end."""
        self.process.terminate()
        self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def make_s3_requests_atomic() -> None:
    """Serialize moto's S3 request handlers, so conditional writes are atomic as on S3.

    moto checks If-None-Match / If-Match and then writes, with nothing
    between the two to stop another thread: two racing put-if-absent calls
    can both win, and a put that replaces a key can close the old object's
    buffer while another request is still reading it. Real S3 does neither,
    and linklog's log and lease stand on that, so moto (our stand-in for S3)
    is made to keep the promise. Safe to call more than once.
    """
    # moto reloads its S3 URL table (importlib.reload) on every request it
    # routes; threads reloading it at once race in the import system
    # ("module moto.s3.urls not in sys.modules"). Import it here, once, and
    # let one thread at a time reload it.
    import moto.s3.urls  # noqa: F401
    from moto.s3.models import S3Backend
    from moto.s3.responses import S3Response

    if getattr(S3Response, "_linklog_atomic", False):
        return
    lock = threading.RLock()

    def serialized(handler):
        @functools.wraps(handler)
        def run(*args, **kwargs):
            with lock:
                return handler(*args, **kwargs)

        return run

    S3Backend._url_module = property(serialized(S3Backend._url_module.fget))
    S3Response.key_response = serialized(S3Response.key_response)
    S3Response.bucket_response = serialized(S3Response.bucket_response)
    S3Response._linklog_atomic = True


_session_lock = threading.Lock()
_session = None


def moto_client(endpoint_url: str | None = None):
    """A boto3 S3 client with fake credentials, for moto's server at ``endpoint_url`` or for mock_aws.

    Every client comes from one boto3 session, kept for the process: a new
    session reads botocore's S3 model again (0.1 to 0.5 s), and ``mock_aws``
    hands boto3 a new default session each time it starts, so clients made
    the plain way paid that in every test. The session is made after moto
    is imported, so its clients carry the hook that ``mock_aws`` turns on.
    Sessions are not safe to share between threads; the lock lets one
    thread at a time make a client (the clients themselves are safe).
    """
    global _session
    import boto3
    import moto.core.models  # noqa: F401  (registers mock_aws's hook for new sessions)

    from chalicelib.store.s3 import CLIENT_CONFIG

    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client("s3", endpoint_url=endpoint_url, config=CLIENT_CONFIG, **FAKE_AWS)


def start_server_process(module: str, arguments: list[str]) -> ServerProcess:
    """Run ``python -m module arguments`` and return once it prints its URL.

    The child serves until its stdin closes, which happens when it is
    stopped or when this process dies.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", module, *arguments],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        process.wait()
        raise RuntimeError(f"{module} did not start (exit code {process.returncode})")
    return ServerProcess(url=url, process=process)


def start_moto_server(host: str = "127.0.0.1", *, keep_alive: bool = False) -> ServerProcess:
    """Start moto's server on a free port of ``host`` and return once it answers.

    moto's own server (werkzeug's) closes the connection after every
    answer. ``keep_alive`` serves moto's same application with waitress
    instead, which keeps connections open as S3 does: what a bench over a
    simulated link needs, where a new connection costs its handshakes.
    """
    return start_server_process(
        "chalicelib.store.motoserver", [host] + (["--keep-alive"] if keep_alive else [])
    )


def _serve_keep_alive(host: str) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from waitress.server import create_server

    make_s3_requests_atomic()
    # Threads for as many requests at once as the benches' writers make.
    server = create_server(DomainDispatcherApplication(create_backend_app),
                           host=host, port=0, threads=32)
    print(f"http://{server.effective_host}:{server.effective_port}", flush=True)
    threading.Thread(target=server.run, daemon=True).start()
    sys.stdin.read()
    server.close()


def _serve(host: str) -> None:
    from moto.server import ThreadedMotoServer

    make_s3_requests_atomic()
    # werkzeug logs every request at INFO; thousands of lines help nobody.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    bound_host, port = server.get_host_and_port()
    print(f"http://{bound_host}:{port}", flush=True)
    # Serve until the parent closes our stdin, or dies and so closes it.
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    arguments = sys.argv[1:]
    serve = _serve_keep_alive if "--keep-alive" in arguments else _serve
    hosts = [a for a in arguments if not a.startswith("--")]
    serve(hosts[0] if hosts else "127.0.0.1")
