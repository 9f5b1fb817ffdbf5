"""``GET /v1/export``: an org's links as a file, within Lambda's answer limit.

The file is written by chalicelib.formats (Netscape HTML for browsers,
linklog JSON with everything, or CSV) into a temporary file, one link at a
time. A file that fits in an answer is the answer. A larger one, on S3, is
written to the store under ``exports/{org}/`` and answered with a presigned
link valid for an hour: Lambda cannot answer more than 6 MB. The local store
has no such limit (the dev server answers any size), so there it is always
answered directly.
"""

from __future__ import annotations

import io
import secrets
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

import apsw

from chalicelib.formats import csv_export, linklog_json, netscape
from chalicelib.keys import check_org
from chalicelib.params import invalid_field
from chalicelib.store.base import ObjectStore

# Lambda answers at most 6 MB; headers and base64 need room.
INLINE_LIMIT = 4 * 1024 * 1024
LINK_SECONDS = 3600
# name → (file extension, content type)
FORMATS = {
    "netscape": ("html", "text/html; charset=utf-8"),
    "json": ("json", "application/json"),
    "csv": ("csv", "text/csv; charset=utf-8"),
}


@dataclass(frozen=True)
class Export:
    """Either the file (``body``) or where to download it (``download_url``)."""

    filename: str
    content_type: str
    count: int
    size: int
    body: bytes | None = None
    download_url: str | None = None


def export_links(
    store: ObjectStore,
    org: str,
    db: apsw.Connection,
    format: str | None,
    *,
    inline_limit: int | None = None,
    now: datetime | None = None,
) -> Export:
    """The org's saved links as a ``format`` file (default ``netscape``).

    Raises ApiError 422 for an unknown format.
    """
    check_org(org)
    format = format or "netscape"
    if format not in FORMATS:
        raise invalid_field("format", f"must be one of {', '.join(FORMATS)}")
    extension, content_type = FORMATS[format]
    moment = now or datetime.now(timezone.utc)
    filename = f"linklog-{org}-{moment.strftime('%Y%m%d-%H%M%S')}.{extension}"
    with tempfile.TemporaryFile() as spool:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
        links = _links(db, with_text=format == "json")
        if format == "netscape":
            count = netscape.write(text, (_for_netscape(link) for link in links))
        elif format == "json":
            count = linklog_json.write(text, links, now=moment)
        else:
            count = csv_export.write(text, links)
        text.flush()
        size = spool.tell()
        spool.seek(0)
        presign = getattr(getattr(store, "inner", store), "presigned_get", None)
        if size <= (INLINE_LIMIT if inline_limit is None else inline_limit) or presign is None:
            return Export(filename, content_type, count, size, body=spool.read())
        key = f"exports/{org}/{moment.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(8)}.{extension}"
        store.put(key, spool.read())
    url = presign(key, seconds=LINK_SECONDS, filename=filename)
    return Export(filename, content_type, count, size, download_url=url)


def _links(db: apsw.Connection, *, with_text: bool) -> Iterator[dict]:
    """Each saved link (newest first) as the JSON export has it."""
    tags: dict[str, list[str]] = {}
    for link_id, name in db.execute(
        """SELECT link_tags.link_id, tags.name FROM link_tags JOIN tags ON tags.id = link_tags.tag_id
           WHERE tags.deleted_at IS NULL ORDER BY tags.sort_order IS NULL, tags.sort_order, tags.name"""
    ):
        tags.setdefault(link_id, []).append(name)
    text_column = "text.text" if with_text else "NULL"
    rows = db.execute(
        f"""SELECT links.id, links.url, meta.title, meta.description, meta.image, meta.site_name,
                   meta.author, meta.published_at, links.domain, links.completed_at, links.created_at,
                   status.status, status.error_code, status.error_message, summary.summary,
                   summary.model, summary.fallback_from, summary.fallback_reason,
                   {text_column}, text.word_count
            FROM links
            LEFT JOIN link_metadata AS meta ON meta.link_id = links.id
            LEFT JOIN link_status AS status ON status.link_id = links.id
            LEFT JOIN link_summaries AS summary ON summary.link_id = links.id
            LEFT JOIN link_text AS text ON text.link_id = links.id
            WHERE links.deleted_at IS NULL ORDER BY links.seq DESC"""
    )
    for (link_id, url, title, description, image, site_name, author, published_at, domain,
         completed_at, created_at, status, error_code, error_message, summary, summary_model,
         fallback_from, fallback_reason, text, word_count) in rows:
        link = {
            "id": link_id, "url": url, "title": title, "description": description,
            "image": image, "site_name": site_name, "author": author,
            "published_at": published_at, "domain": domain, "tags": tags.get(link_id, []),
            "read": completed_at is not None, "read_at": completed_at, "saved_at": created_at,
            "status": status or "new",
            "error": {"code": error_code, "message": error_message} if error_code else None,
            "summary": summary, "summary_model": summary_model,
            "summary_fallback_from": fallback_from, "summary_fallback_reason": fallback_reason,
            "word_count": word_count,
        }
        if with_text:
            link["text"] = text
        yield link


def _for_netscape(link: dict) -> dict:
    try:
        saved = datetime.fromisoformat(link["saved_at"].replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        saved = None
    return {**link, "saved_at": saved if saved and saved.tzinfo else None}
