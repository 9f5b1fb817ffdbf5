"""An org with links to process, a deterministic link processor, and ways to
read back what the processor did, for the cycle tests."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from chalicelib import log, orgstate
from chalicelib.links.outcome import (
    LinkFailure,
    LinkJob,
    LinkOutcome,
    PageMetadata,
    TagSuggestion,
)
from statelog import all_commits, dump, replay

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


def save_link(store, org: str, link_id: str) -> dict:
    """One client commit saving ``http://pages.test/{link_id}``; returns the commit."""
    event = {
        "id": f"created-{link_id}",
        "name": "v1.LinkCreated",
        "args": {"id": link_id, "url": f"http://pages.test/{link_id}", "createdAt": AT},
        "at": AT,
    }
    return log.append(store, org, [event], batch_id=f"batch-{link_id}", author=CLIENT)


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


def check_every_link_ended_once(store, org: str, links: int):
    """Links 0 to ``links - 1`` each have exactly one terminal event and no
    attempt started twice, and the state at the head of the log equals a
    full replay; returns that state."""
    history = processor_history(all_commits(store, org))
    assert sorted(history) == [link_id(n) for n in range(links)]
    for link, h in history.items():
        assert len(h.terminal) == 1, (link, h)
        assert len(set(h.attempts_started)) == len(h.attempts_started), (link, h)
    db = orgstate.load(store, org)
    assert dump(db) == dump(replay(store, org))
    return db


def processor_commits(commits: list[dict]) -> list[dict]:
    return [c for c in commits if c["author"]["kind"] == "processor"]
