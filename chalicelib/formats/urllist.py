"""A plain list of URLs, one a line; blank lines and ``#`` comments are skipped."""

from __future__ import annotations

from chalicelib.formats.record import ImportedLink, ImportFileError


def parse(text: str) -> list[ImportedLink]:
    """One unread, untitled link per non-blank, non-comment line."""
    links = []
    for line in text.splitlines():
        url = line.strip()
        if url and not url.startswith("#"):
            links.append(ImportedLink(position=len(links), url=url))
    if not any("://" in link.url for link in links):
        raise ImportFileError("no URL found: the file is not a list of URLs, nor an export linklog knows")
    return links
