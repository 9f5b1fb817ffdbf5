"""Netscape bookmark HTML: what every browser, Pinboard, Raindrop, Linkwarden
and Karakeep export, and what browsers import.

The format is loose HTML: ``<DT><H3>`` opens a folder whose ``<DL>`` holds
its bookmarks, ``<DT><A HREF ADD_DATE TAGS TOREAD>`` is a bookmark, and
``</DL>`` closes the folder. Real files leave ``<DT>``, ``<p>`` and ``<DD>``
unclosed, so it is read as a stream of tags (html.parser), keeping a stack
of folders, never as a tree.

Folders become tags, except the browser's own top folders (marked
``PERSONAL_TOOLBAR_FOLDER`` or ``UNFILED_BOOKMARKS_FOLDER``), which hold
everything and say nothing. ``TAGS`` (comma-separated, Pinboard and
Raindrop) adds tags; ``TOREAD="0"`` marks a bookmark read, ``"1"`` or no
attribute unread.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser
from typing import IO, Iterable

from chalicelib.formats.record import (
    ImportedLink,
    ImportFileError,
    clean_tags,
    clean_title,
    unix_time,
)

DOCTYPE = "<!DOCTYPE NETSCAPE-Bookmark-file-1>"
BROWSER_ROOT_FOLDERS = ("personal_toolbar_folder", "unfiled_bookmarks_folder")


def looks_like(text: str) -> bool:
    """Whether ``text`` (the start of a file) is a Netscape bookmark file."""
    head = text.lstrip("\ufeff \t\r\n")[:2000].upper()
    return head.startswith(DOCTYPE.upper()) or ("<DL" in head and "<DT" in head)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[ImportedLink] = []
        # One entry per open <DL>: the folder's tag name, or None.
        self.folders: list[str | None] = []
        self.pending_folder: str | None = None  # an <H3> whose <DL> has not opened yet
        self.in_folder_name: dict | None = None
        self.in_anchor: dict | None = None
        self.text: list[str] = []
        self.saw_list = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "dl":
            self.saw_list = True
            self.folders.append(self.pending_folder)
            self.pending_folder = None
        elif tag == "h3":
            self._finish_anchor()
            self.in_folder_name = attributes
            self.text = []
        elif tag == "a":
            self._finish_anchor()
            self.in_anchor = attributes
            self.text = []
        elif tag in ("dt", "dd"):
            self._finish_anchor()

    def handle_endtag(self, tag: str) -> None:
        if tag == "dl":
            self._finish_anchor()
            if self.folders:
                self.folders.pop()
        elif tag == "h3" and self.in_folder_name is not None:
            is_root = any(key in self.in_folder_name for key in BROWSER_ROOT_FOLDERS)
            name = clean_title("".join(self.text))
            self.pending_folder = None if is_root else name
            self.in_folder_name = None
        elif tag == "a":
            self._finish_anchor()

    def handle_data(self, data: str) -> None:
        if self.in_anchor is not None or self.in_folder_name is not None:
            self.text.append(data)

    def _finish_anchor(self) -> None:
        attributes = self.in_anchor
        if attributes is None:
            return
        self.in_anchor = None
        folder_tags = [name for name in self.folders if name]
        listed = attributes.get("tags", "").split(",")
        self.links.append(
            ImportedLink(
                position=len(self.links),
                url=html.unescape(attributes.get("href", "")).strip(),
                title=clean_title("".join(self.text)),
                tags=clean_tags([*folder_tags, *listed]),
                saved_at=unix_time(attributes.get("add_date")),
                read=attributes.get("toread", "").strip() == "0",
            )
        )


def parse(text: str) -> list[ImportedLink]:
    """The bookmarks of a Netscape bookmark file, in file order.

    Raises ImportFileError when the text is not one (no bookmark list).
    """
    if not looks_like(text):
        raise ImportFileError(
            "not a Netscape bookmark file: it should start with " + DOCTYPE
        )
    reader = _Reader()
    reader.feed(text)
    reader.close()
    reader._finish_anchor()
    if not reader.saw_list:
        raise ImportFileError("not a Netscape bookmark file: it has no <DL> bookmark list")
    return reader.links


def _attribute(value: str) -> str:
    return html.escape(value, quote=True)


def write(out: IO[str], links: Iterable[dict], title: str = "linklog") -> int:
    """Write ``links`` as a Netscape bookmark file browsers import; return how many.

    Each link is a dict with ``url``, ``title``, ``tags`` (names),
    ``saved_at`` (aware datetime) and ``read``. The file is flat: tags go
    in ``TAGS`` (commas inside a tag name become spaces, the format has no
    escape for them), read state in ``TOREAD``.
    """
    out.write(
        f"{DOCTYPE}\n"
        "<!-- This is an automatically generated file. It will be read and overwritten. -->\n"
        '<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=UTF-8">\n'
        f"<TITLE>{html.escape(title)}</TITLE>\n<H1>{html.escape(title)}</H1>\n<DL><p>\n"
    )
    count = 0
    for link in links:
        tags = ",".join(tag.replace(",", " ") for tag in link.get("tags") or ())
        saved = link.get("saved_at")
        add_date = f' ADD_DATE="{int(saved.timestamp())}"' if saved else ""
        out.write(
            f'    <DT><A HREF="{_attribute(link["url"])}"{add_date}'
            f' TAGS="{_attribute(tags)}" TOREAD="{0 if link.get("read") else 1}">'
            f"{html.escape(link.get('title') or '')}</A>\n"
        )
        count += 1
    out.write("</DL><p>\n")
    return count
