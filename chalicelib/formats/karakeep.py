"""Karakeep's (formerly Hoarder's) JSON export.

``{"bookmarks": [{"createdAt": <Unix seconds>, "title", "tags": [names],
"content": {"type": "link", "url", …} | {"type": "text", "text"}, "note",
"archived", "favourited", …}], "lists": […]}``. Text notes and assets have
no URL: they are reported as refused, not saved.
"""

from __future__ import annotations

from chalicelib.formats import jsonfiles
from chalicelib.formats.record import ImportedLink, clean_tags, clean_title, truthy, unix_time


def looks_like(document: object) -> bool:
    """Whether a parsed JSON document is a Karakeep export."""
    return isinstance(document, dict) and isinstance(document.get("bookmarks"), list)


def parse(text: str) -> list[ImportedLink]:
    """The bookmarks of a Karakeep export, in file order."""
    document = jsonfiles.load(text, "Karakeep")
    if not looks_like(document):
        raise jsonfiles.ImportFileError('not a Karakeep export: no "bookmarks" list')
    links = []
    for position, item in enumerate(jsonfiles.objects(document["bookmarks"], "bookmarks", "Karakeep")):
        content = item.get("content") if isinstance(item.get("content"), dict) else {}
        url = jsonfiles.text_field(content, "url") if content.get("type") == "link" else ""
        tags = item.get("tags") if isinstance(item.get("tags"), list) else []
        links.append(
            ImportedLink(
                position=position,
                url=url,
                not_a_link=None if url else f"a Karakeep {content.get('type') or 'entry'} without a URL",
                title=clean_title(item.get("title")),
                tags=clean_tags(tag for tag in tags if isinstance(tag, str)),
                saved_at=unix_time(item.get("createdAt")),
                read=truthy(item.get("archived")),
            )
        )
    return links
