"""An org with links to process, a deterministic link processor, and ways to
read back what the processor did, for the cycle tests."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from chalicelib import log, state
from chalicelib.links.outcome import (
    LinkFailure,
    LinkJob,
    LinkOutcome,
    PageMetadata,
    TagSuggestion,
)

CLIENT = {"kind": "client", "id": "device-1"}
AT = "2026-11-23T20:00:00Z"


def link_id(n: int) -> str:
    return f"link-{n:04d}"


def save_links(store, org: str, numbers, *, host: str = "example.com") -> dict:
    """One client commit creating a link per number; returns the commit."""
    events = [
        {
            "id": f"create-{link_id(n)}",
            "name": "v1.LinkCreated",
            "args": {"id": link_id(n), "url": f"https://{host}/page/{n}", "createdAt": AT},
            "at": AT,
        }
        for n in numbers
    ]
    return log.append(store, org, events, batch_id=uuid.uuid4().hex, author=CLIENT)


def client_commit(store, org: str, name: str, args: dict) -> dict:
    event = {"id": uuid.uuid4().hex, "name": name, "args": args, "at": AT}
    return log.append(store, org, [event], batch_id=uuid.uuid4().hex, author=CLIENT)


@dataclass
class FakeProcessor:
    """Answers from the URL alone: ``/fail-retry/`` fails retryably,
    ``/fail-hard/`` fails for good, ``/boom/`` raises; anything else
    completes with a title, text and summary. Counts calls per link."""

    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, job: LinkJob) -> LinkOutcome:
        with self.lock:
            self.calls[job.link_id] += 1
        if "/fail-retry/" in job.url:
            return LinkOutcome(
                link_id=job.link_id,
                failure=LinkFailure("http_503", "Service Unavailable", True),
            )
        if "/fail-hard/" in job.url:
            return LinkOutcome(
                link_id=job.link_id, failure=LinkFailure("http_404", "Not Found", False)
            )
        if "/boom/" in job.url:
            raise RuntimeError("parser fell over\non two lines")
        return LinkOutcome(
            link_id=job.link_id,
            metadata=PageMetadata(title=f"Title of {job.url}", lang="en"),
            text=f"Text of {job.url}. " * 20,
            word_count=80,
            reading_minutes=1,
            summary=f"Summary of {job.url}.",
            suggestions=tuple(TagSuggestion(tag.id, 0.5) for tag in job.tags[:1]),
        )


def all_commits(store, org: str) -> list[dict]:
    commits: list[dict] = []
    while page := log.read_commits(store, org, len(commits)):
        commits.extend(page)
    return commits


def replay(store, org: str):
    """The org's state built from the whole log, no snapshot."""
    db = state.new_database()
    commits = all_commits(store, org)
    if commits:
        state.apply_commits(db, commits)
    return db


def state_rows(db) -> dict[str, list[tuple]]:
    """Every row of every ordinary table, sorted: what "equal state" means.

    FTS5's shadow tables are left out: their internal segments depend on
    how inserts were batched, while their content is covered by the
    tables they index.
    """
    tables = [
        row[1]
        for row in db.execute("PRAGMA table_list")
        if row[2] == "table" and not row[1].startswith("sqlite_")
    ]
    return {
        table: sorted(db.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
        for table in sorted(tables)
    }


@dataclass
class LinkHistory:
    attempts_started: list[int] = field(default_factory=list)
    terminal: list[str] = field(default_factory=list)


def processor_history(commits: list[dict]) -> dict[str, LinkHistory]:
    """Per link: the attempts started and the terminal events, in log order,
    counting only processor commits the state applies (not fenced off)."""
    history: dict[str, LinkHistory] = defaultdict(LinkHistory)
    highest = 0
    for commit in commits:
        author = commit["author"]
        if author["kind"] != "processor":
            continue
        if author["epoch"] < highest:
            continue
        highest = author["epoch"]
        for event in commit["events"]:
            args = event["args"]
            if event["name"] == "v1.LinkProcessingStarted":
                history[args["linkId"]].attempts_started.append(args["attempt"])
            elif event["name"] in ("v1.LinkProcessingCompleted", "v1.LinkProcessingFailed"):
                history[args["linkId"]].terminal.append(event["name"])
    return history


def processor_commits(commits: list[dict]) -> list[dict]:
    return [c for c in commits if c["author"]["kind"] == "processor"]
