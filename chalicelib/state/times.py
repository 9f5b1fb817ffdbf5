"""The one text form of a time in the state database.

Times are stored as fixed-width UTC text (``2026-11-23T20:00:00.000000Z``),
so comparing the text in SQL compares the times.
"""

from datetime import datetime, timezone

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_time(moment: datetime) -> str:
    """``moment`` (timezone-aware) as stored; raises ValueError for a naive time."""
    if moment.tzinfo is None:
        raise ValueError(f"a naive time is ambiguous: {moment!r}")
    return moment.astimezone(timezone.utc).strftime(FORMAT)


def parse_time(text: str) -> datetime:
    """A stored time back as an aware UTC datetime."""
    return datetime.strptime(text, FORMAT).replace(tzinfo=timezone.utc)
