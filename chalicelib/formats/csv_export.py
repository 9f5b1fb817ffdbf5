"""linklog's CSV export: one row per link, for spreadsheets."""

from __future__ import annotations

import csv
from typing import IO, Iterable

COLUMNS = (
    "url", "title", "tags", "saved_at", "read", "read_at", "status", "error",
    "domain", "description", "summary", "summary_model", "summary_fallback_from",
    "summary_fallback_reason", "word_count",
)


def write(out: IO[str], links: Iterable[dict]) -> int:
    """Write ``links`` (the dicts of the JSON export) as CSV; return how many.

    Tags are joined with ``|`` as Pocket does, since a tag may hold a comma.
    """
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    count = 0
    for link in links:
        error = link.get("error") or {}
        row = {
            **link,
            "tags": "|".join(link.get("tags") or ()),
            "read": "true" if link.get("read") else "false",
            "error": error.get("code") or "",
        }
        writer.writerow(["" if row.get(name) is None else row[name] for name in COLUMNS])
        count += 1
    return count
