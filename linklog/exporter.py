"""The view's links, one dict at a time, for the export formats.

Links are read a page at a time with the same queries the API serves
(chalicelib.state.queries), so an export of any size streams.
"""

from __future__ import annotations

from typing import Iterator

import apsw

from chalicelib.state.queries import MAX_PAGE, get_link, list_links
from chalicelib.state.times import parse_time


def count(view: apsw.Connection) -> int:
    """How many links an export writes (the saved, not deleted ones)."""
    return view.execute("SELECT count(*) FROM links WHERE deleted_at IS NULL").get


def links(view: apsw.Connection) -> Iterator[dict]:
    """Every saved link, newest first, with everything the replica knows of it."""
    cursor = None
    while True:
        page = list_links(view, cursor=cursor, limit=MAX_PAGE)
        for listed in page.links:
            yield export_dict(get_link(view, listed["id"]))
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def export_dict(link: dict) -> dict:
    """One link as the JSON export writes it."""
    metadata = link.get("metadata") or {}
    return {
        "id": link["id"],
        "url": link["url"],
        "title": metadata.get("title"),
        "description": metadata.get("description"),
        "image": metadata.get("image"),
        "site_name": metadata.get("site_name"),
        "author": metadata.get("author"),
        "published_at": metadata.get("published_at"),
        "lang": metadata.get("lang"),
        "canonical_url": metadata.get("canonical_url"),
        "domain": link.get("domain"),
        "tags": [tag["name"] for tag in link.get("tags", [])],
        "read": link.get("completed_at") is not None,
        "read_at": link.get("completed_at"),
        "saved_at": link["created_at"],
        "status": link.get("status"),
        "error": link.get("error"),
        "summary": link.get("summary"),
        "summary_model": link.get("summary_model"),
        "summary_fallback_from": link.get("summary_fallback_from"),
        "summary_fallback_reason": link.get("summary_fallback_reason"),
        "text": link.get("text"),
        "word_count": link.get("word_count"),
        "suggestions": link.get("suggestions"),
    }


def for_netscape(link: dict) -> dict:
    """An export dict as netscape.write takes it (the save time as a datetime)."""
    return {**link, "saved_at": parse_time(link["saved_at"]) if link.get("saved_at") else None}
