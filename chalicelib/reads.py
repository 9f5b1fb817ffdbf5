"""The read side of the API: links, one link, search, read-only SQL, stats.

Reads are served from the org's newest snapshot plus the log after it, so a
client reads its own pushes (DESIGN §8). A warm container keeps each org's
database in memory and, on the next request, applies only the commits
written since: one list request when nothing changed.

Each function takes the query parameters as the client sent them (strings)
and raises ApiError for bad values, so app.py only shapes the answer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator

from chalicelib import log as commit_log
from chalicelib.api_errors import ApiError
from chalicelib.jsonbody import parse_json_body
from chalicelib.params import boolean, check_text, integer, invalid_field
from chalicelib.keys import check_org
from chalicelib.orgstate import OrgState, catch_up, open_state
from chalicelib.state import queries
from chalicelib.state.schema import version
from chalicelib.store.base import NotFound, ObjectStore, Transient
from chalicelib.sync import store_failures_as_api_errors

# Orgs kept warm per container; past this the least recently read is dropped
# (a 10,000-link org is a 90 MB scratch file in /tmp, see infra/template.json).
MAX_WARM_ORGS = 8
MAX_QUERY_BODY = 20_000
QUERY_MAX_ROWS = 1000
QUERY_MAX_BYTES = queries.MAX_RESULT_BYTES
QUERY_TIME_LIMIT_MS = 1000
# A too-long query is a body too large; every other refusal is about its
# content.
_QUERY_STATUS = {"too_long": 413}


@dataclass
class _Warm:
    lock: threading.Lock = field(default_factory=threading.Lock)
    state: OrgState | None = None


class ReadCache:
    """Each org's state database, kept warm in this container."""

    def __init__(self, max_orgs: int = MAX_WARM_ORGS):
        self.max_orgs = max_orgs
        self._orgs: OrderedDict[str, _Warm] = OrderedDict()
        self._lock = threading.Lock()

    def _entry(self, org: str) -> _Warm:
        with self._lock:
            entry = self._orgs.pop(org, None) or _Warm()
            self._orgs[org] = entry
            while len(self._orgs) > self.max_orgs:
                self._orgs.popitem(last=False)
            return entry

    @contextmanager
    def state(self, store: ObjectStore, org: str) -> Iterator[OrgState]:
        """The org's state at the head of its log, held for the caller alone.

        A catch-up writes to the database, so it must not run under a
        reader: one request reads an org at a time in a container.
        """
        check_org(org)
        entry = self._entry(org)
        with entry.lock:
            with store_failures_as_api_errors():
                try:
                    if entry.state is None:
                        entry.state = open_state(store, org)
                    else:
                        entry.state.commits_applied += catch_up(store, org, entry.state.db)
                        entry.state.version = version(entry.state.db)
                except (Transient, commit_log.CorruptLog):
                    # A half-applied catch-up must not be served next time.
                    entry.state = None
                    raise
            yield entry.state


def list_links(cache: ReadCache, store: ObjectStore, org: str, params: dict) -> dict:
    """``GET /v1/links``: ``status``, ``tag``, ``archived``, ``cursor`` and ``limit`` filters."""
    limit = integer(params, "limit", queries.DEFAULT_PAGE)
    archived = boolean(params, "archived")
    with cache.state(store, org) as state:
        try:
            page = queries.list_links(
                state.db,
                status=params.get("status"),
                tag=params.get("tag"),
                archived=archived,
                cursor=params.get("cursor"),
                limit=limit,
            )
        except ValueError as error:
            raise invalid_field(_field_named_in(str(error)), str(error)) from None
        return {"links": page.links, "next_cursor": page.next_cursor, "version": state.version}


def list_tags(cache: ReadCache, store: ObjectStore, org: str, params: dict) -> dict:
    """``GET /v1/tags``: the org's tags with how many links carry each; ``cursor`` and ``limit``."""
    limit = integer(params, "limit", queries.DEFAULT_PAGE)
    with cache.state(store, org) as state:
        try:
            page = queries.list_tags(state.db, cursor=params.get("cursor"), limit=limit)
        except ValueError as error:
            raise invalid_field(_field_named_in(str(error)), str(error)) from None
        return {"tags": page.tags, "next_cursor": page.next_cursor, "version": state.version}


def _field_named_in(message: str) -> str:
    # queries' ValueErrors open with the parameter they are about.
    return message.split(" ", 1)[0]


def get_link(cache: ReadCache, store: ObjectStore, org: str, link_id: str) -> dict:
    """``GET /v1/links/{id}``: one link with text, summary, tags, suggestions."""
    with cache.state(store, org) as state:
        link = queries.get_link(state.db, link_id)
    if link is None:
        raise ApiError(404, f"no link {link_id!r}")
    return link


def search(cache: ReadCache, store: ObjectStore, org: str, params: dict) -> dict:
    """``GET /v1/search?q=``: full-text search, best first, with snippets."""
    q = params.get("q")
    if q is None or not q.strip():
        raise invalid_field("q", "a search text is required")
    limit = integer(params, "limit", 20)
    with cache.state(store, org) as state:
        try:
            results = queries.search(state.db, q, limit)
        except ValueError as error:
            raise invalid_field(_field_named_in(str(error)), str(error)) from None
        return {"results": results, "version": state.version}


def run_query(cache: ReadCache, store: ObjectStore, org: str, body: bytes) -> dict:
    """``POST /v1/query`` with ``{"sql": "SELECT ..."}``: read-only SQL."""
    if len(body) > MAX_QUERY_BODY:
        raise ApiError(413, f"the body is larger than {MAX_QUERY_BODY} bytes")
    document = parse_json_body(body)
    if not isinstance(document, dict) or set(document) != {"sql"}:
        raise invalid_field("sql", 'the body must be {"sql": "SELECT ..."}')
    if isinstance(document["sql"], str):
        check_text("sql", document["sql"])
    with cache.state(store, org) as state:
        try:
            result = queries.run_readonly_sql(
                state.db,
                document["sql"],
                max_rows=QUERY_MAX_ROWS,
                max_bytes=QUERY_MAX_BYTES,
                time_limit_ms=QUERY_TIME_LIMIT_MS,
            )
        except queries.QueryRejected as error:
            raise ApiError(
                _QUERY_STATUS.get(error.code, 422),
                error.message,
                code=f"query_{error.code}",
                details=[{"path": "sql", "message": error.message}],
            ) from None
        return {
            "columns": result.columns,
            "rows": [list(row) for row in result.rows],
            "truncated": result.truncated,
            "truncated_reason": result.truncated_reason,
            "version": state.version,
        }


def stats(
    cache: ReadCache,
    store: ObjectStore,
    org: str,
    *,
    last_cycle: dict | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> dict:
    """``GET /v1/stats``: version, snapshot size, age and chain, the last cycle seen here.

    The snapshot's age is the time since its newest commit was written:
    how far behind the log a cold start begins. ``last_cycle`` is the last
    processor cycle this process ran for the org (None on an API-only
    container, where cycles run elsewhere).
    """
    with cache.state(store, org) as state:
        meta = state.db.execute(
            "SELECT processor_epoch, duplicate_events, unknown_events, skipped_events, "
            "fenced_commits FROM meta"
        ).fetchone()
        links = state.db.execute("SELECT count(*) FROM links WHERE deleted_at IS NULL").get
        snapshot = {
            "key": state.snapshot_key,
            "version": state.snapshot_version,
            "size": state.snapshot_size,
            "age_seconds": _age_of_version(store, org, state.snapshot_version, now()),
            # The full snapshot and the deltas on it that the restore used.
            "chain": state.chain.as_dict() if state.chain is not None else None,
        }
        figures = {
            "version": state.version,
            "links": links,
            "snapshot": snapshot,
            "restore_ms": {name: round(seconds * 1000, 3) for name, seconds in state.timings.items()},
            "processor_epoch": meta[0],
            "events": {
                "duplicate": meta[1],
                "unknown": meta[2],
                "skipped": meta[3],
                "fenced_commits": meta[4],
            },
            "last_cycle": last_cycle,
        }
    return figures


def _age_of_version(store: ObjectStore, org: str, at_version: int, now: datetime) -> float | None:
    if at_version < 1:
        return None
    try:
        commit = commit_log.read_commits(store, org, after=at_version - 1, limit=1)
    except (NotFound, Transient, commit_log.CorruptLog):
        return None
    if not commit:
        return None
    try:
        written = datetime.fromisoformat(commit[0]["committed_at"])
        return round((now - written).total_seconds(), 3)
    except (KeyError, ValueError, TypeError, OverflowError):
        # A hand-written or damaged commit's time (or one without a zone)
        # says nothing about the snapshot's age; stats must answer all the same.
        return None
