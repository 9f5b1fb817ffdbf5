"""Reading CSV exports: the checks Pocket's and Instapaper's readers share."""

from __future__ import annotations

import csv
import io

from chalicelib.formats.record import ImportFileError

# A CSV field longer than this is no bookmark (csv's own limit is 128 KiB).
MAX_FIELD = 1_000_000


def rows(text: str, required: tuple[str, ...], app: str) -> list[dict[str, str]]:
    """The rows of a CSV file with a header, keyed by column name.

    Raises ImportFileError naming the missing columns, or the line that
    csv cannot read.
    """
    csv.field_size_limit(MAX_FIELD)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [name for name in required if name not in header]
    if missing:
        raise ImportFileError(
            f"not a {app} CSV export: missing column(s) {', '.join(missing)} "
            f"(the header is {','.join(header) or 'empty'})"
        )
    try:
        return [{key: value or "" for key, value in row.items() if key} for row in reader]
    except csv.Error as error:
        raise ImportFileError(f"{app} CSV: line {reader.line_num}: {error}") from None


def header_of(text: str) -> list[str]:
    """The column names on the first line of ``text`` (empty if it is no CSV)."""
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    try:
        return next(csv.reader([first]))
    except (csv.Error, StopIteration):
        return []
