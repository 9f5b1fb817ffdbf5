"""``POST /v1/import``: a bookmark file uploaded whole becomes pushed events.

The file is read by chalicelib.formats (any format it knows, detected by
content), screened (refused URLs and repeats), and planned against the
org's links by chalicelib.formats.plan, the same plan ``linklog import``
queues: pages the org already has are not saved again, and the rest become
client events (``v1.LinkCreated``, ``v1.TagCreated`` for new tag names,
``v1.LinkTagged``, and ``v1.LinkCompleted`` when the file says it was
read), committed through sync.push in batches within the push limits,
exactly as a client would push them.

Batch, event, link and tag ids come from the file's hash: uploading the
same file again (after a timeout, say), or after importing it with the
command line, commits nothing new.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Callable

import apsw

from chalicelib import sync
from chalicelib.api_errors import ApiError
from chalicelib.formats import ImportFileError, read_links
from chalicelib.formats.plan import plan_import
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
    plan = plan_import(data, found_format, len(links), screened, db, now or datetime.now(timezone.utc))
    version = None
    for batch in plan.batches:
        body = json.dumps({"batch_id": batch.batch_id, "client_id": CLIENT_ID, "events": batch.events})
        version = sync.push(store, org, body.encode("utf-8"), notify=notify, index=index)["version"]
    return {
        "format": found_format,
        "found": len(links),
        "saved": plan.queued_links,
        "duplicates": plan.duplicates + plan.earlier_run + plan.already_there,
        "refused": len(plan.refused),
        "refusals": [
            {"url": item.link.url[:300], "reason": item.reason} for item in plan.refused[:MAX_REFUSALS_SHOWN]
        ],
        "tags_created": plan.tags_created,
        "version": version,
    }
