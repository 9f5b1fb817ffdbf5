"""Pocket's CSV export: ``title,url,time_added,cursor,tags,status``.

``time_added`` is Unix seconds, ``tags`` are separated by ``|`` (so a tag
may hold a comma), ``status`` is ``unread`` or ``archive`` (read).
"""

from __future__ import annotations

from chalicelib.formats import csvfiles
from chalicelib.formats.record import ImportedLink, clean_tags, clean_title, unix_time

COLUMNS = ("title", "url", "time_added", "tags", "status")


def looks_like(text: str) -> bool:
    """Whether the file's header is Pocket's."""
    return set(COLUMNS) <= set(csvfiles.header_of(text))


def parse(text: str) -> list[ImportedLink]:
    """The bookmarks of a Pocket CSV export, in file order."""
    return [
        ImportedLink(
            position=position,
            url=row["url"].strip(),
            # Pocket writes the URL as the title of a page it has no title for.
            title=None if row["title"].strip() == row["url"].strip() else clean_title(row["title"]),
            tags=clean_tags(row["tags"].split("|")),
            saved_at=unix_time(row["time_added"]),
            read=row["status"].strip().lower() == "archive",
        )
        for position, row in enumerate(csvfiles.rows(text, COLUMNS, "Pocket"))
    ]
