"""Which format a bookmark file is in, and reading it whole.

Formats are told apart by content, not by file name: a Netscape doctype,
a zip, a CSV header, the keys of a JSON document. A text that is none of
these is read as a list of URLs.
"""

from __future__ import annotations

import json

from chalicelib.formats import (
    instapaper,
    karakeep,
    linklog_json,
    linkwarden,
    netscape,
    omnivore,
    pocket,
    urllist,
    wallabag,
)
from chalicelib.formats.record import ImportedLink, ImportFileError

PARSERS = {
    "netscape": netscape.parse,
    "pocket": pocket.parse,
    "instapaper": instapaper.parse,
    "karakeep": karakeep.parse,
    "linkwarden": linkwarden.parse,
    "omnivore": omnivore.parse,
    "wallabag": wallabag.parse,
    "linklog": linklog_json.parse,
    "urls": urllist.parse,
}
FORMATS = tuple(PARSERS)
_JSON_FORMATS = (
    ("linklog", linklog_json.looks_like),
    ("karakeep", karakeep.looks_like),
    ("linkwarden", linkwarden.looks_like),
    ("omnivore", omnivore.looks_like),
    ("wallabag", wallabag.looks_like),
)


def decode(data: bytes) -> str:
    """A file's text (UTF-8, with or without a byte order mark); ImportFileError otherwise."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFileError(
            f"the file is not UTF-8 text (byte {error.start} cannot be read); "
            "export it again as UTF-8"
        ) from None


def detect_format(data: bytes) -> str:
    """The name of the format of ``data`` (one of FORMATS)."""
    if omnivore.is_zip(data):
        return "omnivore"
    text = decode(data)
    stripped = text.lstrip()
    if netscape.looks_like(stripped):
        return "netscape"
    if stripped[:1] in ("{", "["):
        try:
            document = json.loads(text)
        except ValueError:
            raise ImportFileError(_json_error(text)) from None
        for name, looks_like in _JSON_FORMATS:
            if looks_like(document):
                return name
        raise ImportFileError(
            "a JSON file, but not an export linklog knows "
            "(Karakeep, Linkwarden, Omnivore, Wallabag or linklog)"
        )
    if pocket.looks_like(stripped):
        return "pocket"
    if instapaper.looks_like(stripped):
        return "instapaper"
    first_line = stripped.split("\n", 1)[0]
    if "," in first_line and "://" not in first_line:
        raise ImportFileError(
            f"a CSV file whose header ({first_line.strip()[:200]}) is neither Pocket's "
            f"({','.join(pocket.COLUMNS)}) nor Instapaper's ({','.join(instapaper.COLUMNS)})"
        )
    return "urls"


def _json_error(text: str) -> str:
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        return f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
    return "not valid JSON"


def read_links(data: bytes, format: str | None = None) -> tuple[str, list[ImportedLink]]:
    """The format and the bookmarks of a file's bytes.

    ``format`` forces one of FORMATS; by default it is detected. Raises
    ImportFileError, with a message for the user, for a file that is not
    in the format (or in none we know).
    """
    name = format or detect_format(data)
    if name not in PARSERS:
        raise ImportFileError(f"unknown format {name!r}; known: {', '.join(FORMATS)}")
    if name == "omnivore" and omnivore.is_zip(data):
        return name, omnivore.parse_documents(omnivore.texts_in_zip(data))
    return name, PARSERS[name](decode(data))
