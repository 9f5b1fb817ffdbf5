"""A bookmark file into outbox batches that a second run of the same file
recognises.

Everything derives from the file's bytes: the batch ids
(``imp-<hash>-<n>``), the event ids and the link ids. Batches are cut from
the file's screened bookmarks in file order, before looking at the org, so
the same file always gives the same batches. A batch already in the outbox
or already committed (the replica's pulled batch ids) is not queued again:
an interrupted import, run again, queues only what did not get through,
and pushing uses the outbox's exactly-once protocol.

Against the org: a bookmark of a page the org already has under another id
is "already there" and left out of its batch (its tags are not added). A
tag whose name the org has (case-insensitively) is reused.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field

import apsw

from chalicelib.events import MAX_EVENTS_PER_PUSH
from chalicelib.formats import ImportedLink
from chalicelib.formats.screen import Screened
from chalicelib.state.times import format_time
from linklog.outbox import MAX_BATCH_BYTES, Outbox
from linklog.replica import Replica
from linklog.writes import find_tag, now

# Bookmarks per batch: with a few tags each, well inside 500 events and 1 MB.
LINKS_PER_BATCH = 100


@dataclass
class ImportPlan:
    """What an import queues, and what it found."""

    file_hash: str
    total: int = 0
    queued_links: int = 0
    earlier_run: int = 0
    already_there: int = 0
    duplicates: int = 0
    refused: list = field(default_factory=list)  # chalicelib.formats.screen.Refused
    batches: list[tuple[str, list[dict]]] = field(default_factory=list)
    skipped_batches: int = 0

    @property
    def refused_by_reason(self) -> Counter:
        return Counter(item.reason for item in self.refused)

    @property
    def queued_events(self) -> int:
        return sum(len(events) for _, events in self.batches)


def file_hash(data: bytes) -> str:
    """The file's identity for ids: the start of its SHA-256."""
    return hashlib.sha256(data).hexdigest()[:20]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:20]


def tag_id_for(name: str) -> str:
    """The id an import gives a new tag: from its name, so two imports agree."""
    return "t-" + _digest("tag", name.casefold())


def plan_import(
    data: bytes, screened: Screened, total: int, view: apsw.Connection, replica: Replica, outbox: Outbox
) -> ImportPlan:
    """The batches to queue for a file's screened bookmarks (``total`` read from it)."""
    digest = file_hash(data)
    plan = ImportPlan(file_hash=digest, total=total, duplicates=screened.duplicates, refused=screened.refused)
    tag_ids: dict[str, str] = {}
    created_tags: set[str] = set()
    chunks = _chunks(screened.accepted)
    for number, chunk in enumerate(chunks):
        batch_id = f"imp-{digest}-{number:05d}"
        events: list[dict] = []
        links = 0
        for link, normalized in chunk:
            link_id = "l-" + _digest(digest, normalized)
            existing = view.execute("SELECT id FROM links WHERE normalized_url = ?", (normalized,)).get
            if existing == link_id:
                plan.earlier_run += 1
                continue
            if existing is not None:
                plan.already_there += 1
                continue
            events += _link_events(link, link_id, digest, view, tag_ids, created_tags)
            links += 1
        if outbox.has_batch(batch_id) or replica.batch_committed(batch_id):
            plan.skipped_batches += 1
            continue
        if events:
            plan.batches.append((batch_id, events))
            plan.queued_links += links
    return plan


def _chunks(accepted: list) -> list[list]:
    chunks: list[list] = [[]]
    for item in accepted:
        if len(chunks[-1]) == LINKS_PER_BATCH:
            chunks.append([])
        chunks[-1].append(item)
    return [chunk for chunk in chunks if chunk]


def _link_events(
    link: ImportedLink, link_id: str, digest: str, view: apsw.Connection,
    tag_ids: dict[str, str], created_tags: set[str],
) -> list[dict]:
    saved_at = format_time(link.saved_at) if link.saved_at else now()
    prefix = f"i{digest}-{link.position}"
    args = {"id": link_id, "url": link.url, "createdAt": saved_at, "source": "import"}
    if link.title:
        args["title"] = link.title
    events = [{"id": f"{prefix}-c", "name": "v1.LinkCreated", "args": args, "at": saved_at}]
    for number, name in enumerate(link.tags):
        key = name.casefold()
        if key not in tag_ids:
            tag_ids[key] = find_tag(view, name) or tag_id_for(name)
        tag_id = tag_ids[key]
        if view.execute("SELECT 1 FROM tags WHERE id = ?", (tag_id,)).get is None and tag_id not in created_tags:
            created_tags.add(tag_id)
            events.append({
                "id": f"i{digest}-tag-{tag_id}", "name": "v1.TagCreated",
                "args": {"id": tag_id, "name": name, "createdAt": saved_at}, "at": saved_at,
            })
        events.append({
            "id": f"{prefix}-t{number}", "name": "v1.LinkTagged",
            "args": {"id": f"{prefix}-t{number}", "linkId": link_id, "tagId": tag_id, "createdAt": saved_at},
            "at": saved_at,
        })
    if link.read:
        events.append({
            "id": f"{prefix}-r", "name": "v1.LinkCompleted",
            "args": {"id": link_id, "completedAt": saved_at}, "at": saved_at,
        })
    return events


def check_batch(events: list[dict]) -> None:
    """Assert a batch is inside the push limits (a bookmark with hundreds of tags could break them)."""
    size = len(json.dumps(events, ensure_ascii=False).encode("utf-8"))
    if len(events) > MAX_EVENTS_PER_PUSH or size > MAX_BATCH_BYTES:
        raise ValueError(f"an import batch of {len(events)} events and {size} bytes is over the push limits")


def queue(plan: ImportPlan, replica: Replica, outbox: Outbox) -> None:
    """Put the plan's batches in the outbox (one transaction) and apply them to the view."""
    for _, events in plan.batches:
        check_batch(events)
    with outbox.db:
        for batch_id, events in plan.batches:
            outbox.add(events, batch_id=batch_id)
    replica.apply_local([event for _, events in plan.batches for event in events])
