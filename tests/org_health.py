"""Checking that an org still works: every read route answers 200, a new
link can be saved, and a processor cycle runs and processes it. The poison
tests call it after each hostile push or hand-written log entry."""

from __future__ import annotations

import json
import uuid

from chalicelib import log
from chalicelib.keys import log_key
from chalicelib.cycle import run_cycle
from chalicelib.state import apply_commits, new_database
from processing_org import FakeProcessor
from statelog import all_commits

AT = "2026-11-23T20:00:00Z"
# What an accepted client event may be skipped for: naming a link, tag or
# suggestion that is not there, or an id already taken. Never a value.
HARMLESS_SKIPS = ("unknown link", "unknown tag", "unknown suggestion", "already exists")


def read_routes(api, org: str, link_id: str) -> dict[str, int]:
    """The status of every read route for ``org``, by route."""
    headers = api.auth(org)
    get = lambda path, **params: api.http.get(  # noqa: E731
        f"{api.url}{path}", params=params, headers=headers, timeout=30
    ).status_code
    query = lambda sql: api.http.post(  # noqa: E731
        f"{api.url}/v1/query", json={"sql": sql}, headers=headers, timeout=30
    ).status_code
    return {
        "links": get("/v1/links"),
        "link": get(f"/v1/links/{link_id}"),
        "search": get("/v1/search", q="text"),
        "stats": get("/v1/stats"),
        "pull": get("/v1/sync/pull"),
        "query": query("SELECT 1"),
        "query tags": query("SELECT * FROM tags"),
    }


def check_org_works(api, store, org: str) -> None:
    """Save a new link through the API; every read route answers 200 and a
    cycle completes the link."""
    link_id = f"healthy-{uuid.uuid4().hex[:8]}"
    saved = api.push(
        {
            "batch_id": uuid.uuid4().hex,
            "client_id": "health-check",
            "events": [
                {
                    "id": uuid.uuid4().hex,
                    "name": "v1.LinkCreated",
                    "args": {"id": link_id, "url": f"https://example.com/{link_id}", "createdAt": AT},
                    "at": AT,
                }
            ],
        },
        org=org,
    )
    assert saved.status_code == 200, saved.text
    assert set(read_routes(api, org, link_id).values()) == {200}

    report = run_cycle(store, org, process=FakeProcessor(), holder="health", emit=lambda line: None)

    assert report.outcome == "done", report.record
    assert link_id in report.links_done
    link = api.http.get(f"{api.url}/v1/links/{link_id}", headers=api.auth(org), timeout=30).json()
    assert link["status"] == "completed"


def skip_reasons(store, org: str) -> dict[str, int]:
    """Why events of ``org``'s log were skipped, replaying it from scratch."""
    reasons: dict[str, int] = {}
    db = new_database()
    for commit in all_commits(store, org):
        for reason, count in apply_commits(db, [commit]).skip_reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
    return reasons


def harmful_skips(store, org: str) -> dict[str, int]:
    """Skips of ``org``'s log that are about a value, not a missing reference."""
    return {
        reason: count
        for reason, count in skip_reasons(store, org).items()
        if not reason.endswith(HARMLESS_SKIPS)
    }


def write_raw_commit(store, org: str, author: dict, events: list) -> int:
    """Put a commit holding ``events`` as they are (no shape check) at the next version."""
    version = log.find_head(store, org) + 1
    commit = {
        "version": version,
        "org": org,
        "batch_id": uuid.uuid4().hex,
        "committed_at": AT,
        "author": author,
        "events": events,
    }
    store.put(log_key(org, version), json.dumps(commit).encode("utf-8"), if_absent=True)
    return version
