"""Instapaper's CSV export: ``URL,Title,Selection,Folder,Timestamp`` and,
in newer exports, ``Tags`` (a JSON list of names).

``Folder`` is ``Unread``, ``Archive`` (read), ``Starred`` or a folder of
the user's; a folder of the user's (and ``Starred``) becomes a tag.
``Timestamp`` is Unix seconds.
"""

from __future__ import annotations

import json

from chalicelib.formats import csvfiles
from chalicelib.formats.record import ImportedLink, clean_tags, clean_title, unix_time

COLUMNS = ("URL", "Title", "Selection", "Folder", "Timestamp")


def looks_like(text: str) -> bool:
    """Whether the file's header is Instapaper's."""
    return set(COLUMNS) <= set(csvfiles.header_of(text))


def _tags(row: dict[str, str]) -> list[str]:
    folder = row["Folder"].strip()
    tags = [] if folder.lower() in ("unread", "archive", "") else [folder]
    try:
        listed = json.loads(row.get("Tags") or "[]")
    except ValueError:
        listed = []
    if isinstance(listed, list):
        tags.extend(str(tag) for tag in listed if isinstance(tag, (str, int)))
    return tags


def parse(text: str) -> list[ImportedLink]:
    """The bookmarks of an Instapaper CSV export, in file order."""
    return [
        ImportedLink(
            position=position,
            url=row["URL"].strip(),
            title=clean_title(row["Title"]),
            tags=clean_tags(_tags(row)),
            saved_at=unix_time(row["Timestamp"]),
            read=row["Folder"].strip().lower() == "archive",
        )
        for position, row in enumerate(csvfiles.rows(text, COLUMNS, "Instapaper"))
    ]
