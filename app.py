"""linklog's Chalice app: routes and event handlers, thin (DESIGN §1, §8).

Each route parses the request, calls one function in chalicelib and shapes
the answer. The store, the queue and the token verifier are built once per
container, on first use, from the environment (chalicelib.config).
"""

from __future__ import annotations

import faulthandler
import functools
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from chalice import Chalice, Response

from chalicelib import (
    config,
    cyclelog,
    dueindex,
    exports,
    imports,
    params,
    reads,
    settings_api,
    sync,
    triggers,
    web,
)
from chalicelib.api_errors import STATUSES, ApiError
from chalicelib.auth import Principal, Verify, make_verifier
from chalicelib.jwt_secret import token_secret
from chalicelib.keptstate import KeptStates
from chalicelib.links.addresses import AllowList
from chalicelib.queue import Queue, open_queue
from chalicelib.store import ObjectStore, open_store

# A crash inside a C extension (lxml, apsw, zstd) kills the process with
# one line from libc; with this its stderr (CloudWatch on Lambda, the
# terminal under `make run`) also gets every thread's Python stack.
try:
    faulthandler.enable()
except (AttributeError, OSError, ValueError):  # a stderr with no file behind it
    pass

app = Chalice(app_name="linklog")
log = logging.getLogger("linklog.api")

PUSH_CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/octet-stream",
]


@dataclass
class Services:
    """What the handlers need, built once per container."""

    settings: config.Settings
    store: ObjectStore
    queue: Queue
    verify: Verify
    index: sync.LogIndex
    read_cache: reads.ReadCache = field(default_factory=reads.ReadCache)
    push_marks: dueindex.PushMarks = field(default_factory=dueindex.PushMarks)

    def notify(self, org: str) -> None:
        """Wake the processor of ``org`` after a commit, and leave a due
        index entry as the net under that wake-up (the sweep reads it)."""
        try:
            self.push_marks.after_commit(self.store, org, datetime.now(timezone.utc))
        finally:
            self.queue.send(org)


def build_services(
    settings: config.Settings, *, store: ObjectStore | None = None, queue: Queue | None = None
) -> Services:
    """Services from settings; the dev server hands in the store and queue its worker shares."""
    return Services(
        settings=settings,
        store=store if store is not None else open_store(settings.store),
        queue=queue if queue is not None else open_queue(settings.queue),
        verify=make_verifier(
            secret=token_secret(settings),
            jwks_url=settings.jwks_url,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        ),
        index=sync.LogIndex(),
    )


_services: Services | None = None
_services_lock = threading.Lock()


def services() -> Services:
    """The container's services, built from the environment on first use."""
    global _services
    with _services_lock:
        if _services is None:
            _services = build_services(config.load())
            _start_local_worker(_services)
        return _services


_local_worker: threading.Thread | None = None


def _start_local_worker(current: Services) -> None:
    """Under `chalice local` with the local queue, run `make run`'s worker beside the API, once.

    Only the Chalice CLI sets AWS_CHALICE_CLI_MODE, and of its commands only
    `chalice local` serves requests, so only it gets here with the variable
    set. On Lambda the SQS handler and the schedule do this work.
    """
    global _local_worker
    if _local_worker is not None or current.settings.queue != "local":
        return
    if os.environ.get("AWS_CHALICE_CLI_MODE") != "true":
        return
    from chalicelib.worker import start_worker

    _local_worker = start_worker(current.store, current.queue, process=_process_link())


def use_services(chosen: Services | None) -> None:
    """Use ``chosen`` from now on (None: build again from the environment on next use)."""
    global _services
    with _services_lock:
        _services = chosen


def _error_response(error: ApiError) -> Response:
    return Response(
        body=error.body_json(), status_code=error.status, headers=error.response_headers()
    )


def _json_response(body: dict, status: int = 200) -> Response:
    return Response(
        body=json.dumps(body), status_code=status, headers={"Content-Type": "application/json"}
    )


def answers_errors(route: Callable[..., dict | Response]) -> Callable[..., Response]:
    """Run a route; a dict answers as JSON; refusals and surprises leave in the one error shape."""

    @functools.wraps(route)
    def handler(**uri_params: str) -> Response:
        try:
            answer = route(**uri_params)
            return answer if isinstance(answer, Response) else _json_response(answer)
        except ApiError as error:
            return _error_response(error)
        except config.ConfigError as error:
            # Said to the client too: every request fails until the
            # deployment is fixed, and the message names the variable.
            log.error("linklog is misconfigured: %s", error)
            return _error_response(
                ApiError(500, f"linklog is misconfigured: {error}", code="misconfigured")
            )
        except Exception:
            log.exception("unexpected error in %s", route.__name__)
            return _error_response(ApiError(500, "internal error"))

    return handler


@app.middleware("http")
def one_error_shape(event, get_response) -> Response:
    """Chalice's own refusals (415, 405, a failed view) in the one error shape.

    Chalice answers those before or around a route with
    ``{"Code": ..., "Message": ...}``; a client should meet one shape only.
    """
    response = get_response(event)
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and set(body) == {"Code", "Message"}:
        status = response.status_code if response.status_code in STATUSES else 500
        error = ApiError(status, str(body["Message"]))
        headers = {**(response.headers or {}), **error.response_headers()}
        return Response(body=error.body_json(), status_code=status, headers=headers)
    return response


def _caller() -> Principal:
    return services().verify(app.current_request.headers.get("authorization"))


def _asset(name: str) -> Response:
    found = web.asset(name)
    if found is None:
        return _error_response(ApiError(404, "no such file"))
    body, headers = found
    return Response(body=body, status_code=200, headers=headers)


@app.route("/", methods=["GET"])
def web_page() -> Response:
    """The web app (chalicelib/web): a client of this API like any other."""
    return _asset("index.html")


@app.route("/share", methods=["GET"])
def share_target() -> Response:
    """The web app's share target and bookmarklet address: the page saves ``?url=``."""
    return _asset("index.html")


@app.route("/web/{name}", methods=["GET"])
def web_asset(name: str) -> Response:
    return _asset(name)


@app.route("/favicon.ico", methods=["GET"])
def favicon() -> Response:
    return _asset("icon.svg")


@app.route("/manifest.webmanifest", methods=["GET"])
def web_manifest() -> Response:
    return _asset("manifest.webmanifest")


# A service worker controls the pages under its own path: served from the
# root, it may control the whole app.
@app.route("/sw.js", methods=["GET"])
def service_worker() -> Response:
    return _asset("sw.js")


@app.route("/openapi.json", methods=["GET"])
@answers_errors
def openapi() -> dict:
    """The API's OpenAPI 3.1 document (no token needed)."""
    from chalicelib.openapi.document import openapi_document

    return openapi_document()


@app.route("/health", methods=["GET"])
@answers_errors
def health() -> dict:
    return {"status": "ok"}


# curl -d sends form-urlencoded unless told otherwise; the body is JSON either way.
@app.route("/v1/sync/push", methods=["POST"], content_types=PUSH_CONTENT_TYPES)
@answers_errors
def push() -> dict:
    caller = _caller()
    current = services()
    return sync.push(
        current.store,
        caller.org,
        app.current_request.raw_body or b"",
        notify=current.notify,
        index=current.index,
    )


@app.route("/v1/sync/pull", methods=["GET"])
@answers_errors
def pull() -> dict:
    caller = _caller()
    query = _query()
    current = services()
    return sync.pull(
        current.store,
        caller.org,
        params.integer(query, "since", 0),
        params.integer(query, "limit", sync.MAX_PULL_EVENTS),
        index=current.index,
    )


@app.route("/v1/links", methods=["GET"])
@answers_errors
def links() -> dict:
    caller = _caller()
    current = services()
    return reads.list_links(current.read_cache, current.store, caller.org, _query())


@app.route("/v1/tags", methods=["GET"])
@answers_errors
def tags() -> dict:
    caller = _caller()
    current = services()
    return reads.list_tags(current.read_cache, current.store, caller.org, _query())


@app.route("/v1/links/{link_id}", methods=["GET"])
@answers_errors
def link(link_id: str) -> dict:
    caller = _caller()
    current = services()
    return reads.get_link(
        current.read_cache, current.store, caller.org, params.check_text("id", link_id)
    )


@app.route("/v1/search", methods=["GET"])
@answers_errors
def search() -> dict:
    caller = _caller()
    current = services()
    return reads.search(current.read_cache, current.store, caller.org, _query())


@app.route("/v1/query", methods=["POST"], content_types=PUSH_CONTENT_TYPES)
@answers_errors
def query() -> dict:
    caller = _caller()
    current = services()
    return reads.run_query(
        current.read_cache, current.store, caller.org, app.current_request.raw_body or b""
    )


@app.route("/v1/import", methods=["POST"], content_types=imports.UPLOAD_CONTENT_TYPES)
@answers_errors
def import_upload() -> dict:
    caller = _caller()
    current = services()
    with current.read_cache.state(current.store, caller.org) as state:
        return imports.import_file(
            current.store,
            caller.org,
            state.db,
            app.current_request.raw_body or b"",
            format=_query().get("format"),
            allow=AllowList.parse(current.settings.allow_hosts),
            notify=current.notify,
            index=current.index,
        )


@app.route("/v1/export", methods=["GET"])
@answers_errors
def export_download() -> dict | Response:
    caller = _caller()
    current = services()
    with current.read_cache.state(current.store, caller.org) as state:
        export = exports.export_links(current.store, caller.org, state.db, _query().get("format"))
    if export.download_url is not None:
        return {
            "download_url": export.download_url,
            "filename": export.filename,
            "count": export.count,
            "size": export.size,
        }
    return Response(
        body=export.body.decode("utf-8"),
        status_code=200,
        headers={
            "Content-Type": export.content_type,
            "Content-Disposition": f'attachment; filename="{export.filename}"',
        },
    )


@app.route("/v1/stats", methods=["GET"])
@answers_errors
def stats() -> dict:
    caller = _caller()
    current = services()
    return reads.stats(
        current.read_cache,
        current.store,
        caller.org,
        last_cycle=cyclelog.process_cycles.last(caller.org),
    )


@app.route("/v1/settings", methods=["GET"])
@answers_errors
def org_settings() -> dict:
    caller = _caller()
    current = services()
    return settings_api.show_settings(current.read_cache, current.store, caller.org)


@app.route("/v1/settings", methods=["PUT"], content_types=PUSH_CONTENT_TYPES)
@answers_errors
def change_org_settings() -> dict:
    caller = _caller()
    current = services()
    return settings_api.change_settings(
        current.read_cache,
        current.store,
        caller.org,
        app.current_request.raw_body or b"",
        now=datetime.now(timezone.utc),
        notify=current.notify,
        index=current.index,
    )


def _query() -> dict:
    return params.checked_query(app.current_request.query_params or {})


# Event handlers (SQS, S3 notifications, schedule) follow below; they are
# the TRIGGERS area. They reach the store and queue through services().

# Chalice needs a queue name to register the handler; infra/template.json
# replaces the ARN Chalice builds from it with the stack's own queue's ARN,
# so the deployed queue's name is whatever CloudFormation gives it.
PROCESS_QUEUE = "linklog-process"


@functools.cache
def _process_link():
    # Imported on first use: the pipeline pulls in lxml and readability, which
    # the API routes never need.
    from chalicelib.links.pipeline import make_link_processor

    return make_link_processor()


# The state of the org a cycle in this container ran last, kept for that
# org's next cycle here (chalicelib.keptstate); one per container.
_KEPT_STATES = KeptStates()


@app.on_sqs_message(queue=PROCESS_QUEUE, batch_size=10, maximum_batching_window_in_seconds=1)
def process_org_messages(event) -> dict:
    """One cycle per org in the batch; orgs to try again go back as batch item failures."""
    current = services()
    run = triggers.cycle_runner(
        current.store,
        process=_process_link(),
        enqueue=current.queue.send,
        holder_prefix="lambda",
        lease_seconds=current.settings.lease_seconds,
        kept=_KEPT_STATES,
    )
    return triggers.handle_sqs_records(event.to_dict()["Records"], run=run)


@app.schedule("rate(5 minutes)")
def sweep_orgs(event) -> None:
    """Enqueue the orgs whose log is ahead of their snapshot or that have retries due."""
    current = services()
    triggers.sweep(current.store, now=datetime.now(timezone.utc), enqueue=current.queue.send)
