"""A file's screened bookmarks into the events and batches an import pushes.

One plan serves both importers: the ``linklog import`` command (which
queues the batches in its outbox) and ``POST /v1/import`` (which pushes
them itself). Everything derives from the file's bytes, so the same file
planned again, by either path, gives the same ids and the log dedupes what
was already sent:

- batches ``imp-<hash>-<n>``, cut from the screened bookmarks in file order
  before the org is consulted, each within the push limits even if every
  tag in it were new;
- links ``l-<hash of the file's hash and the normalized URL>``;
- events ``i<hash>-<position>-c`` (created), ``-tN`` (tagged), ``-r`` (read);
- new tags ``t-<hash of the casefolded name>``, so two imports of one tag
  name agree (``i<hash>-tag-<tag id>`` for its ``v1.TagCreated``).

Against the org: a bookmark whose page the org has under the id this file
gives it was imported by an earlier run; under another id it is "already
there" and left alone (its tags are not added: importing must not rewrite
what the user has curated since). A tag name the org has (case ignored,
the oldest such tag) is reused.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

import apsw
from pydantic import ValidationError

from chalicelib.events import MAX_BODY_BYTES, MAX_EVENTS_PER_PUSH, LinkCreatedArgs
from chalicelib.formats.record import ImportedLink
from chalicelib.formats.screen import Refused, Screened
from chalicelib.state.times import format_time

# Batches are measured as if every tag were new and named with this plan's
# ids; the room left under the push body limit takes the envelope (batch
# and client ids) and the org's own tag ids, which may be longer: at most
# 64 characters instead of 22, in fewer than 250 LinkTagged a batch.
BATCH_BYTES = MAX_BODY_BYTES - 64 * 1024
# A bookmark's events must fit one push: its LinkCreated and LinkCompleted,
# and a TagCreated and a LinkTagged per tag.
MAX_TAGS = (MAX_EVENTS_PER_PUSH - 2) // 2


@dataclass
class Batch:
    """Events pushed together under an id the file determines."""

    batch_id: str
    events: list[dict]
    links: int


@dataclass
class ImportPlan:
    """What an import pushes, and what it found."""

    file_hash: str
    total: int
    duplicates: int
    refused: list[Refused]
    batches: list[Batch] = field(default_factory=list)
    earlier_run: int = 0
    already_there: int = 0
    tags_created: int = 0
    skipped_batches: int = 0

    @property
    def refused_by_reason(self) -> Counter:
        return Counter(item.reason for item in self.refused)

    @property
    def queued_links(self) -> int:
        return sum(batch.links for batch in self.batches)

    @property
    def queued_events(self) -> int:
        return sum(len(batch.events) for batch in self.batches)


def file_hash(data: bytes) -> str:
    """The file's identity for ids: the start of its SHA-256."""
    return hashlib.sha256(data).hexdigest()[:20]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:20]


@functools.lru_cache(maxsize=4096)
def tag_id_for(name: str) -> str:
    """The id an import gives a new tag: from its name, so two imports agree."""
    return "t-" + _digest("tag", name.casefold())


def plan_import(
    data: bytes,
    file_format: str,
    total: int,
    screened: Screened,
    org: apsw.Connection,
    now: datetime,
    sent: Callable[[str], bool] = lambda batch_id: False,
) -> ImportPlan:
    """The batches that save ``screened`` (read from ``data``, ``total`` bookmarks) to ``org``.

    ``org`` is the org's state (or a client's view of it), only read;
    ``now`` is the save time of bookmarks the file gives none. A batch
    ``sent`` says is already on its way is counted but left out.
    """
    digest = file_hash(data)
    plan = ImportPlan(file_hash=digest, total=total, duplicates=screened.duplicates, refused=list(screened.refused))
    drafts = _drafts(digest, file_format, format_time(now), screened.accepted, plan.refused)
    tags = _TagIds(org, digest)
    for number, chunk in enumerate(_chunks(drafts)):
        batch = Batch(batch_id=f"imp-{digest}-{number:05d}", events=[], links=0)
        for draft in chunk:
            existing = org.execute("SELECT id FROM links WHERE normalized_url = ?", (draft.normalized,)).get
            if existing == draft.link_id:
                plan.earlier_run += 1
            elif existing is not None:
                plan.already_there += 1
            else:
                batch.events += [adapted for event in draft.events if (adapted := tags.adapt(event))]
                batch.links += 1
        if sent(batch.batch_id):
            plan.skipped_batches += 1
        elif batch.events:
            plan.batches.append(batch)
    plan.tags_created = sum(
        1 for batch in plan.batches for event in batch.events if event["name"] == "v1.TagCreated"
    )
    return plan


@dataclass
class _Draft:
    """A bookmark's events as they would be in an org that has none of its tags.

    Against the org they only shrink (a tag it has is not created) or take
    the org's tag ids. ``size`` is the bytes in a push body of its events
    but the ``v1.TagCreated``, ``tags`` the bytes of each of those by tag id.
    """

    normalized: str
    link_id: str
    events: list[dict]
    size: int
    tags: dict[str, int]


def _drafts(digest: str, file_format: str, now: str, accepted: list, refused: list[Refused]) -> list[_Draft]:
    """The drafts of ``accepted`` (link, normalized URL); bookmarks no push could carry go to ``refused``."""
    drafts = []
    tag_sizes: dict[str, int] = {}  # by name: one tag's TagCreated is as long in every draft
    for link, normalized in accepted:
        if len(link.tags) > MAX_TAGS:
            refused.append(Refused(link, f"{len(link.tags)} tags; at most {MAX_TAGS} fit in one push"))
            continue
        link_id = "l-" + _digest(digest, normalized)
        try:
            events = _link_events(link, link_id, digest, file_format, now)
        except ValidationError as error:
            # Screening and the push API disagree on this URL: refused alone,
            # or the push would refuse the whole batch.
            refused.append(Refused(link, f"not a URL the API accepts: {error.errors()[0]['msg']}"))
            continue
        tags = {}
        for event in events:
            if event["name"] == "v1.TagCreated":
                name = event["args"]["name"]
                if name not in tag_sizes:
                    tag_sizes[name] = len(json.dumps(event)) + 2
                tags[event["args"]["id"]] = tag_sizes[name]
        # A list's JSON holds each element and 2 bytes (", " or the brackets) per element.
        size = len(json.dumps([event for event in events if event["name"] != "v1.TagCreated"]))
        drafts.append(_Draft(normalized, link_id, events, size, tags))
    return drafts


def _chunks(drafts: list[_Draft]) -> list[list[_Draft]]:
    """``drafts`` cut into batches that fit a push even if every tag in them were new.

    A tag is created once, so a batch counts one ``v1.TagCreated`` per tag
    name in it. Only the file decides the cut, so a batch id names the same
    bookmarks on every run.
    """
    chunks: list[list[_Draft]] = [[]]
    created: set[str] = set()
    events = size = 0
    for draft in drafts:
        cost = _cost(draft, created)
        if events + cost[0] > MAX_EVENTS_PER_PUSH or size + cost[1] > BATCH_BYTES:
            chunks.append([])
            created = set()
            events = size = 0
            cost = _cost(draft, created)
        chunks[-1].append(draft)
        created |= draft.tags.keys()
        events += cost[0]
        size += cost[1]
    return [chunk for chunk in chunks if chunk]


def _cost(draft: _Draft, created: set[str]) -> tuple[int, int]:
    """Events and bytes ``draft`` adds to a batch whose tags ``created`` are made already."""
    new = [size for tag_id, size in draft.tags.items() if tag_id not in created]
    return len(draft.events) - len(draft.tags) + len(new), draft.size + sum(new)


class _TagIds:
    """A draft's tags as the org has them: its live tag of that name (case
    ignored), else a tag the plan creates (once)."""

    def __init__(self, org: apsw.Connection, digest: str):
        self.org = org
        self.digest = digest
        # Draft tag id (tag_id_for the name) -> the id used. Oldest last, so
        # the oldest of several same-named tags wins.
        self.ids = {
            tag_id_for(name): tag_id
            for tag_id, name in org.execute(
                "SELECT id, name FROM tags WHERE deleted_at IS NULL ORDER BY created_at DESC, id DESC"
            )
        }

    def adapt(self, event: dict) -> dict | None:
        """``event`` of a draft with the org's tag ids; None for a tag not to create."""
        if event["name"] == "v1.TagCreated":
            args = event["args"]
            if args["id"] in self.ids:
                return None
            tag_id = args["id"]
            if self.org.execute("SELECT 1 FROM tags WHERE id = ?", (tag_id,)).get is not None:
                # The user deleted or renamed the tag an earlier import made
                # of this name: a new tag, not links tagged with that one.
                tag_id = "t-" + _digest("tag", self.digest, args["name"].casefold())
            self.ids[args["id"]] = tag_id
            return _tag_created(self.digest, {**args, "id": tag_id}, event["at"])
        if event["name"] == "v1.LinkTagged" and self.ids[event["args"]["tagId"]] != event["args"]["tagId"]:
            return {**event, "args": {**event["args"], "tagId": self.ids[event["args"]["tagId"]]}}
        return event


def _link_events(link: ImportedLink, link_id: str, digest: str, file_format: str, now: str) -> list[dict]:
    """The draft events of one bookmark; raises ValidationError for a URL the push API refuses."""
    saved_at = format_time(link.saved_at) if link.saved_at else now
    prefix = f"i{digest}-{link.position}"
    args = {"id": link_id, "url": link.url, "createdAt": saved_at, "source": f"import:{file_format}"}
    if link.title:
        args["title"] = link.title
    LinkCreatedArgs.model_validate(args)
    events = [_event(f"{prefix}-c", "v1.LinkCreated", args, saved_at)]
    for number, name in enumerate(link.tags):
        tag_id = tag_id_for(name)
        events.append(_tag_created(digest, {"id": tag_id, "name": name, "createdAt": saved_at}, saved_at))
        tagged = f"{prefix}-t{number}"
        events.append(_event(
            tagged, "v1.LinkTagged", {"id": tagged, "linkId": link_id, "tagId": tag_id, "createdAt": saved_at}, saved_at,
        ))
    if link.read:
        events.append(_event(f"{prefix}-r", "v1.LinkCompleted", {"id": link_id, "completedAt": saved_at}, saved_at))
    return events


def _tag_created(digest: str, args: dict, at: str) -> dict:
    return _event(f"i{digest}-tag-{args['id']}", "v1.TagCreated", args, at)


def _event(event_id: str, name: str, args: dict, at: str) -> dict:
    return {"id": event_id, "name": name, "args": args, "at": at}
