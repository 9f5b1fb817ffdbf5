"""A page's HTML parsed once into an lxml tree, shared by every extraction step.

The tree is built exactly the way readability-lxml builds its own from a
string (text encoded to UTF-8, parsed with a UTF-8 parser), so handing it
the tree instead of the string gives readability the same input.
"""

from __future__ import annotations

import lxml.etree
import lxml.html

from chalicelib.links.charset import decode, guess_encoding

_UTF8_PARSER = lxml.html.HTMLParser(encoding="utf-8")


def parse_document(html: str | bytes) -> lxml.html.HtmlElement:
    """Parse page text into an HTML tree; never raises.

    Bytes are decoded as a browser would (BOM, <meta charset>, UTF-8 if
    valid, else detection). Empty, whitespace-only or unparseable input
    gives an empty ``<html><body></body></html>`` document, so a bad page
    yields an empty extraction rather than an exception.
    """
    if isinstance(html, bytes):
        html = decode(html, guess_encoding(html, None))
    # "replace" drops lone surrogates, which lxml refuses outright.
    data = html.encode("utf-8", "replace")
    # NUL bytes make libxml2 stop reading the document at that point.
    data = data.replace(b"\x00", b"")
    if data.strip():
        try:
            return lxml.html.document_fromstring(data, parser=_UTF8_PARSER)
        except (lxml.etree.ParserError, ValueError):
            pass
    return lxml.html.document_fromstring(b"<html><body></body></html>", parser=_UTF8_PARSER)

