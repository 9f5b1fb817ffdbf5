"""What an import yields per bookmark, and the cleaning every format shares."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

MAX_TITLE_CHARS = 2000
MAX_TAG_CHARS = 200
# Unix times before this are not real save dates (0, -1, "1970" from a
# broken exporter); after it, milliseconds pretending to be seconds.
EARLIEST = datetime(1990, 1, 1, tzinfo=timezone.utc)
MS_THRESHOLD = 100_000_000_000

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SPACES = re.compile(r"\s+")


class ImportFileError(ValueError):
    """The file is not in the format it claims to be (or any we know); nothing is imported."""


@dataclass(frozen=True)
class ImportedLink:
    """One bookmark as a file describes it.

    ``position`` is its place in the file (0-based, in file order), which
    makes the ids of what it becomes stable across runs of one file.
    ``url`` is as written (stripped); screening decides whether it is saved.
    """

    position: int
    url: str
    title: str | None = None
    tags: tuple[str, ...] = ()
    saved_at: datetime | None = None
    read: bool = False
    # Why the file's entry cannot be a link at all (a text note), if so.
    not_a_link: str | None = None


def clean_text(value: object, limit: int) -> str | None:
    """A one-line string: control characters and runs of spaces collapsed, cut at ``limit``."""
    if not isinstance(value, str):
        return None
    text = _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()
    return text[:limit] or None


def clean_title(value: object) -> str | None:
    """A title as the event carries it, or None when there is none."""
    return clean_text(value, MAX_TITLE_CHARS)


def clean_tags(values) -> tuple[str, ...]:
    """Tag names, trimmed, without empties or case-insensitive repeats, in order."""
    seen: set[str] = set()
    tags = []
    for value in values:
        name = clean_text(value, MAX_TAG_CHARS)
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            tags.append(name)
    return tuple(tags)


def unix_time(value: object) -> datetime | None:
    """A save time given as Unix seconds (or milliseconds), or None when it is no real date."""
    if isinstance(value, str):
        value = value.strip()
        if not re.fullmatch(r"-?\d+(\.\d+)?", value):
            return None
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value > MS_THRESHOLD:
        value = value / 1000
    try:
        moment = datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment if moment >= EARLIEST else None


def iso_time(value: object) -> datetime | None:
    """A save time given as ISO 8601 text (a time without a zone is taken as UTC), or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return unix_time(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment if moment >= EARLIEST else None


def truthy(value: object) -> bool:
    """A flag written as a bool, 0/1 or a word ("true", "1", "yes")."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value) and not isinstance(value, (dict, list))
