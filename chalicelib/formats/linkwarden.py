"""Linkwarden's JSON backup (Settings → Data → export).

``{"collections": [{"id", "name", "parentId", "links": [{"name", "url",
"createdAt", "importDate", "tags": [{"name"}], …}]}], …}``. A link's
collection and the collections above it become tags, except the default
``Unorganized``. ``importDate`` (when Linkwarden itself imported the link)
is the older, truer save time and wins over ``createdAt``.
"""

from __future__ import annotations

from chalicelib.formats import jsonfiles
from chalicelib.formats.record import ImportedLink, clean_tags, clean_title, iso_time

DEFAULT_COLLECTION = "unorganized"
MAX_DEPTH = 100


def looks_like(document: object) -> bool:
    """Whether a parsed JSON document is a Linkwarden backup."""
    return isinstance(document, dict) and isinstance(document.get("collections"), list)


def _paths(collections: list[dict]) -> dict[object, list[str]]:
    by_id = {item.get("id"): item for item in collections}
    paths = {}
    for item in collections:
        names, current, seen = [], item, set()
        # A parent loop in a damaged file must not hang the import.
        while current is not None and id(current) not in seen and len(names) < MAX_DEPTH:
            seen.add(id(current))
            names.insert(0, jsonfiles.text_field(current, "name"))
            current = by_id.get(current.get("parentId"))
        paths[item.get("id")] = [name for name in names if name.lower() != DEFAULT_COLLECTION]
    return paths


def parse(text: str) -> list[ImportedLink]:
    """The links of a Linkwarden backup, collection by collection."""
    document = jsonfiles.load(text, "Linkwarden")
    if not looks_like(document):
        raise jsonfiles.ImportFileError('not a Linkwarden backup: no "collections" list')
    collections = jsonfiles.objects(document["collections"], "collections", "Linkwarden")
    paths = _paths(collections)
    links = []
    for collection in collections:
        items = collection.get("links", [])
        for item in jsonfiles.objects(items, "a collection's links", "Linkwarden"):
            tags = item.get("tags") if isinstance(item.get("tags"), list) else []
            names = [tag.get("name") for tag in tags if isinstance(tag, dict)]
            links.append(
                ImportedLink(
                    position=len(links),
                    url=jsonfiles.text_field(item, "url"),
                    title=clean_title(item.get("name")),
                    tags=clean_tags([*paths[collection.get("id")], *names]),
                    saved_at=iso_time(item.get("importDate")) or iso_time(item.get("createdAt")),
                )
            )
    return links
