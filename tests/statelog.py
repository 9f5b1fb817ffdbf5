"""Building logs for the state tests, and comparing states.

A ``Log`` hands out versions in order, so a test reads as the story of an
org: ``log.client(created("l1", "https://example.com/"))``.
"""

from __future__ import annotations

import itertools

import apsw

from chalicelib import log as commit_log
from chalicelib.state import apply_commits, new_database

ORG = "acme"
T0 = "2026-11-23T20:00:00Z"
_event_ids = itertools.count(1)


def event(name: str, args: dict, *, event_id: str | None = None, at: str = T0) -> dict:
    return {"id": event_id or f"ev-{next(_event_ids)}", "name": name, "args": args, "at": at}


def created(link_id: str, url: str, *, created_at: str = T0, event_id: str | None = None, **extra) -> dict:
    return event(
        "v1.LinkCreated", {"id": link_id, "url": url, "createdAt": created_at, **extra},
        event_id=event_id,
    )


def started(link_id: str, attempt: int = 1, at: str = T0) -> dict:
    return event("v1.LinkProcessingStarted", {"linkId": link_id, "attempt": attempt, "startedAt": at})


def failed(link_id: str, *, retryable: bool, at: str, code: str = "timeout", **extra) -> dict:
    return event(
        "v1.LinkProcessingFailed",
        {"linkId": link_id, "code": code, "message": "it failed", "retryable": retryable,
         "failedAt": at, **extra},
    )


def completed(link_id: str, at: str = T0) -> dict:
    return event("v1.LinkProcessingCompleted", {"linkId": link_id, "completedAt": at})


class Log:
    """Commits of one org, numbered from 1."""

    def __init__(self) -> None:
        self.commits: list[dict] = []

    def _commit(self, author: dict, events: tuple[dict, ...], batch_id: str | None) -> dict:
        version = len(self.commits) + 1
        commit = {
            "version": version,
            "org": "acme",
            "batch_id": batch_id or f"batch-{version}",
            "committed_at": T0,
            "author": author,
            "events": list(events),
        }
        self.commits.append(commit)
        return commit

    def client(self, *events: dict, batch_id: str | None = None) -> dict:
        return self._commit({"kind": "client", "id": "device-1"}, events, batch_id)

    def processor(self, *events: dict, epoch: int = 1) -> dict:
        return self._commit({"kind": "processor", "id": "worker-1", "epoch": epoch}, events, None)


def dump(db: apsw.Connection) -> dict[str, list[tuple]]:
    """Every row of every table, in a fixed order, and the full-text index
    as (term, document, column, offset) rows: two states are equal when
    their dumps are. FTS5's own storage tables are left out because their
    layout depends on how commits were grouped into transactions; the
    vocabulary rows say exactly what the index holds."""
    tables = [
        name for (name,) in db.execute(
            """SELECT name FROM sqlite_master WHERE type = 'table'
               AND name NOT LIKE 'link_search%' AND name NOT LIKE 'sqlite_%' ORDER BY name"""
        )
    ]
    result = {}
    for table in tables:
        columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        order = ", ".join(f'"{column}"' for column in columns)
        result[table] = db.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.search_terms USING fts5vocab(main, link_search, instance)")
    result["link_search"] = db.execute(
        "SELECT term, doc, col, offset FROM temp.search_terms ORDER BY term, doc, col, offset"
    ).fetchall()
    db.execute("INSERT INTO link_search (link_search, rank) VALUES ('integrity-check', 1)")
    return result


def story() -> Log:
    """Six commits of one org: links, tags, processing, a delete."""
    log = Log()
    log.client(created("l1", "https://example.com/1"), created("l2", "https://example.com/2"))
    log.client(event("v1.TagCreated", {"id": "t1", "name": "bread", "createdAt": T0}))
    log.processor(started("l1"),
                  event("v1.LinkMetadataFetched", {"linkId": "l1", "title": "Rye bread"}),
                  event("v1.LinkContentExtracted", {"linkId": "l1", "text": "Rye and salt.",
                                                    "wordCount": 3, "readingMinutes": 1}),
                  completed("l1"))
    log.client(event("v1.LinkTagged", {"id": "lt1", "linkId": "l1", "tagId": "t1", "createdAt": T0}),
               created("l3", "https://example.com/1?utm_source=feed"))
    log.client(event("v1.LinkDeleted", {"id": "l2", "deletedAt": T0}))
    log.processor(started("l3"),
                  event("v1.LinkContentExtracted", {"linkId": "l3", "text": "Now with caraway.",
                                                    "wordCount": 3, "readingMinutes": 1}),
                  completed("l3"), epoch=2)
    return log


def push(store, commits) -> None:
    for commit in commits:
        commit_log.append(store, ORG, commit["events"], batch_id=commit["batch_id"],
                          author=commit["author"])


def state_at(commits) -> apsw.Connection:
    db = new_database()
    apply_commits(db, commits)
    return db


def all_commits(store, org: str = ORG) -> list[dict]:
    """Every commit of the org's log, paging through it."""
    commits: list[dict] = []
    while page := commit_log.read_commits(store, org, len(commits)):
        commits.extend(page)
    return commits


def replay(store, org: str = ORG) -> apsw.Connection:
    """The org's state built from its whole log, no snapshot."""
    return state_at(all_commits(store, org))
