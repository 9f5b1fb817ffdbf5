"""``POST /v1/import``: a bookmark file uploaded whole becomes pushed events.

The file is read by chalicelib.formats (any format it knows, detected by
content), screened (refused URLs and repeats), and compared with the org's
links, so a page already saved is not saved again. What is left becomes
client events (``v1.TagCreated`` for new tag names, then per link
``v1.LinkCreated``, ``v1.LinkTagged``, and ``v1.LinkCompleted`` when the
file says it was read), committed through sync.push in batches within the
push limits, exactly as a client would push them.

Ids are made from the file's hash and each bookmark's position, and batch
ids from the hash and the batch's number: uploading the same file again
(after a timeout, say) commits nothing new.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Callable, Iterable

import apsw
from pydantic import ValidationError

from chalicelib import sync
from chalicelib.api_errors import ApiError
from chalicelib.events import MAX_BODY_BYTES, MAX_EVENTS_PER_PUSH, LinkCreatedArgs
from chalicelib.formats import ImportFileError, read_links
from chalicelib.formats.screen import screen
from chalicelib.links.addresses import AllowList
from chalicelib.params import invalid_field
from chalicelib.store.base import ObjectStore

# API Gateway takes at most 10 MB in a request.
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# The body is read as raw bytes whatever it is labelled: curl -d's form type,
# the push route's types, and those bookmark files come as.
UPLOAD_CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/octet-stream",
    "application/zip",
    "text/html",
    "text/csv",
]
CLIENT_ID = "import"
# A batch is cut well below the push body limit: the JSON around the events
# and a long URL's escaping must still fit.
BATCH_BYTES = MAX_BODY_BYTES - 64 * 1024
# Refused bookmarks named in the answer; the count covers all of them.
MAX_REFUSALS_SHOWN = 50


def import_file(
    store: ObjectStore,
    org: str,
    db: apsw.Connection,
    data: bytes,
    *,
    format: str | None,
    allow: AllowList,
    notify: Callable[[str], None],
    index: sync.LogIndex,
    now: datetime | None = None,
) -> dict:
    """Save the bookmarks of ``data`` to ``org``; ``db`` is the org's state, read-only here.

    Raises ApiError: 413 for a file over 10 MB, 422 for a file that is not
    in the format (or in none we know), nothing saved.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiError(
            413,
            f"the file is {len(data)} bytes; at most {MAX_UPLOAD_BYTES} can be uploaded",
            code="body_too_large",
            details={"limit_bytes": MAX_UPLOAD_BYTES},
        )
    if not data.strip():
        raise invalid_field("file", "the file is empty")
    try:
        found_format, links = read_links(data, format)
    except ImportFileError as error:
        raise invalid_field("file", str(error)) from None
    screened = screen(links, allow)
    saved = {url for (url,) in db.execute("SELECT normalized_url FROM links WHERE normalized_url IS NOT NULL")}
    fresh = [(link, normalized) for link, normalized in screened.accepted if normalized not in saved]
    digest = hashlib.sha256(data).hexdigest()[:24]
    at = (now or datetime.now(timezone.utc)).isoformat().replace("+00:00", "Z")
    tag_events, tag_ids = _tags(db, fresh, digest, at)
    refusals = [(refused.link.url, refused.reason) for refused in screened.refused]
    events = list(tag_events)
    saved_count = 0
    for link, _ in fresh:
        try:
            events += _link_events(link, digest, at, tag_ids, found_format)
            saved_count += 1
        except ValidationError as error:
            # Screening and the push API disagree on this URL; the push
            # would refuse the whole batch, so it is refused alone here.
            refusals.append((link.url, f"not a URL the API accepts: {error.errors()[0]['msg']}"))
    version = None
    for number, batch in enumerate(_batches(events)):
        body = json.dumps({"batch_id": f"import-{digest}-{number}", "client_id": CLIENT_ID, "events": batch})
        version = sync.push(store, org, body.encode("utf-8"), notify=notify, index=index)["version"]
    return {
        "format": found_format,
        "found": len(links),
        "saved": saved_count,
        "duplicates": screened.duplicates + len(screened.accepted) - len(fresh),
        "refused": len(refusals),
        "refusals": [
            {"url": url[:300], "reason": reason} for url, reason in refusals[:MAX_REFUSALS_SHOWN]
        ],
        "tags_created": len(tag_events),
        "version": version,
    }


def _event(event_id: str, name: str, args: dict, at: str) -> dict:
    return {"id": event_id, "name": name, "args": args, "at": at}


def _tags(db: apsw.Connection, fresh: list, digest: str, at: str) -> tuple[list[dict], dict[str, str]]:
    """TagCreated events for tag names the org lacks, and every name's tag id (by casefold)."""
    ids = {
        name.casefold(): tag_id
        for tag_id, name in db.execute("SELECT id, name FROM tags WHERE deleted_at IS NULL ORDER BY created_at DESC")
    }
    events = []
    for link, _ in fresh:
        for name in link.tags:
            if name.casefold() not in ids:
                tag_id = f"imp-{digest[:16]}-t{len(events)}"
                ids[name.casefold()] = tag_id
                events.append(
                    _event(tag_id, "v1.TagCreated", {"id": tag_id, "name": name, "createdAt": at}, at)
                )
    return events, ids


def _link_events(link, digest: str, at: str, tag_ids: dict[str, str], found_format: str) -> list[dict]:
    link_id = f"imp-{digest[:16]}-{link.position}"
    saved_at = link.saved_at.isoformat().replace("+00:00", "Z") if link.saved_at else at
    created = {"id": link_id, "url": link.url, "createdAt": saved_at, "source": f"import:{found_format}"}
    if link.title:
        created["title"] = link.title
    LinkCreatedArgs.model_validate(created)
    events = [_event(link_id, "v1.LinkCreated", created, at)]
    for number, name in enumerate(link.tags):
        event_id = f"{link_id}-g{number}"
        events.append(
            _event(
                event_id,
                "v1.LinkTagged",
                {"id": event_id, "linkId": link_id, "tagId": tag_ids[name.casefold()], "createdAt": at},
                at,
            )
        )
    if link.read:
        events.append(_event(f"{link_id}-r", "v1.LinkCompleted", {"id": link_id, "completedAt": at}, at))
    return events


def _batches(events: list[dict]) -> Iterable[list[dict]]:
    """``events`` in order, cut into pushes within the event and byte limits."""
    batch: list[dict] = []
    size = 0
    for event in events:
        event_size = len(json.dumps(event).encode("utf-8")) + 2
        if batch and (len(batch) == MAX_EVENTS_PER_PUSH or size + event_size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += event_size
    if batch:
        yield batch
