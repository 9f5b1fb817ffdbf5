"""linklog's own JSON export: everything about each link, and reading it back.

``{"format": "linklog", "version": 1, "exported_at", "links": [{"id", "url",
"title", "description", …, "tags": [names], "read", "read_at", "saved_at",
"status", "error", "summary", "summary_model", "summary_fallback_from",
"summary_fallback_reason", "text", "word_count"}]}``: the summary's model is
who wrote it (``extractive`` or ``bedrock:<model id>``), the fallback fields
say which summarizer failed and why when the extractive one stood in.
Written one link at a time, so an org of any size streams out in constant
memory.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import IO, Iterable

from chalicelib.formats import jsonfiles
from chalicelib.formats.record import ImportedLink, ImportFileError, clean_tags, clean_title, iso_time

FORMAT = "linklog"
VERSION = 1


def looks_like(document: object) -> bool:
    """Whether a parsed JSON document is a linklog export."""
    return isinstance(document, dict) and document.get("format") == FORMAT


def parse(text: str) -> list[ImportedLink]:
    """The links of a linklog JSON export, in file order."""
    document = jsonfiles.load(text, "linklog")
    if not looks_like(document):
        raise ImportFileError('not a linklog export: no "format": "linklog"')
    items = jsonfiles.objects(document.get("links"), "links", "linklog")
    return [
        ImportedLink(
            position=position,
            url=jsonfiles.text_field(item, "url"),
            title=clean_title(item.get("title")),
            tags=clean_tags(tag for tag in item.get("tags") or () if isinstance(tag, str)),
            saved_at=iso_time(item.get("saved_at")),
            read=item.get("read") is True,
        )
        for position, item in enumerate(items)
    ]


def write(out: IO[str], links: Iterable[dict], *, now: datetime | None = None) -> int:
    """Write ``links`` (JSON-ready dicts) as a linklog export; return how many."""
    exported_at = (now or datetime.now(timezone.utc)).isoformat()
    out.write(f'{{"format": "{FORMAT}", "version": {VERSION}, "exported_at": "{exported_at}", "links": [')
    count = 0
    for link in links:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(link, ensure_ascii=False))
        count += 1
    out.write("\n]}\n")
    return count
