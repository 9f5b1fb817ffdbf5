"""Omnivore's export: a zip of ``metadata_<from>_to_<to>.json`` files, each a
list of ``{"id", "slug", "title", "url", "labels": [names], "savedAt",
"state": "Succeeded" | "Archived" | …, …}``. A single metadata file, or the
files merged into one list, reads the same.
"""

from __future__ import annotations

import io
import re
import zipfile

from chalicelib.formats import jsonfiles
from chalicelib.formats.record import ImportedLink, ImportFileError, clean_tags, clean_title, iso_time

_METADATA_FILE = re.compile(r"(^|/)metadata_(\d+)_to_\d+\.json$")
# A zip's metadata files together; past this it is no export but a bomb.
MAX_UNZIPPED_BYTES = 500 * 1024 * 1024


def looks_like(document: object) -> bool:
    """Whether a parsed JSON document is an Omnivore metadata list."""
    return (
        isinstance(document, list)
        and bool(document)
        and isinstance(document[0], dict)
        and "savedAt" in document[0]
        and "url" in document[0]
    )


def is_zip(data: bytes) -> bool:
    """Whether the file is a zip archive."""
    return data[:4] == b"PK\x03\x04"


def texts_in_zip(data: bytes) -> list[str]:
    """The metadata files of an Omnivore zip, in the order of their numbering."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise ImportFileError(f"damaged zip file: {error}") from None
    members = []
    for info in archive.infolist():
        found = _METADATA_FILE.search(info.filename)
        if found:
            members.append((int(found.group(2)), info))
    if not members:
        raise ImportFileError("not an Omnivore export: the zip holds no metadata_*.json file")
    if sum(info.file_size for _, info in members) > MAX_UNZIPPED_BYTES:
        raise ImportFileError("the zip's metadata files are larger than 500 MB unpacked")
    try:
        return [archive.read(info).decode("utf-8-sig") for _, info in sorted(members, key=lambda m: m[0])]
    except (zipfile.BadZipFile, UnicodeDecodeError, OSError) as error:
        raise ImportFileError(f"cannot read the zip's metadata files: {error}") from None


def parse_documents(texts: list[str]) -> list[ImportedLink]:
    """The articles of one or more Omnivore metadata files, in order."""
    links = []
    for text in texts:
        items = jsonfiles.objects(jsonfiles.load(text, "Omnivore"), "the file", "Omnivore")
        for item in items:
            labels = item.get("labels") if isinstance(item.get("labels"), list) else []
            links.append(
                ImportedLink(
                    position=len(links),
                    url=jsonfiles.text_field(item, "url"),
                    title=clean_title(item.get("title")),
                    tags=clean_tags(label for label in labels if isinstance(label, str)),
                    saved_at=iso_time(item.get("savedAt")),
                    read=jsonfiles.text_field(item, "state").lower() == "archived",
                )
            )
    return links


def parse(text: str) -> list[ImportedLink]:
    """The articles of one Omnivore metadata file."""
    return parse_documents([text])
