"""Wallabag's JSON export (all entries, or one tag or category).

A list of ``{"id", "title", "url", "is_archived": 0 | 1, "is_starred",
"tags": [names], "created_at": "2019-03-05T10:12:33+0100", …}``.
"""

from __future__ import annotations

from chalicelib.formats import jsonfiles
from chalicelib.formats.record import ImportedLink, clean_tags, clean_title, iso_time, truthy


def looks_like(document: object) -> bool:
    """Whether a parsed JSON document is a Wallabag export."""
    return (
        isinstance(document, list)
        and bool(document)
        and isinstance(document[0], dict)
        and "is_archived" in document[0]
    )


def parse(text: str) -> list[ImportedLink]:
    """The entries of a Wallabag export, in file order."""
    items = jsonfiles.objects(jsonfiles.load(text, "Wallabag"), "the file", "Wallabag")
    links = []
    for position, item in enumerate(items):
        tags = item.get("tags") if isinstance(item.get("tags"), list) else []
        links.append(
            ImportedLink(
                position=position,
                url=jsonfiles.text_field(item, "url"),
                title=clean_title(item.get("title")),
                tags=clean_tags(tag for tag in tags if isinstance(tag, str)),
                saved_at=iso_time(item.get("created_at")),
                read=truthy(item.get("is_archived")),
            )
        )
    return links
