"""Which character encoding a fetched page's bytes are in.

The order follows what a browser does (WHATWG Encoding Standard), because
pages are written to be read by browsers: a byte order mark, then the
Content-Type header, then a ``<meta charset>`` (or ``http-equiv``) near the
top, then UTF-8 if the bytes are valid UTF-8, then chardet's guess. A
declared charset that the bytes do not decode with is treated as a lie and
the next source is asked.
"""

from __future__ import annotations

import codecs
import re

import chardet

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Browsers decode these labels with a superset encoding; pages labelled
# latin-1 routinely hold Windows-1252 quotes, Shift_JIS pages hold cp932
# symbols, and so on.
_SUPERSETS = {
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "shift_jis": "cp932",
    "gb2312": "gbk",
    "euc_kr": "cp949",
    "big5": "big5hkscs",
}

_EXTRA_LABELS = {"x-sjis": "cp932", "windows-31j": "cp932", "ms_kanji": "cp932", "x-gbk": "gbk"}

# Python text codecs that no web page is written in, some of them harmful
# to honour (UTF-7 smuggles markup past filters).
_REFUSED = {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "utf-7", "undefined"}

_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([a-zA-Z0-9_.:+-]+)""", re.IGNORECASE)

# Enough to find a <meta charset>, which must come early; browsers scan 1024.
_PRESCAN_BYTES = 4096
_DETECT_BYTES = 64 * 1024

_TEXT_TYPES = {"application/xhtml+xml", "application/xml", "application/json", "application/javascript"}


def split_content_type(header: str | None) -> tuple[str, str | None]:
    """The media type (lower case, "" when absent) and the charset
    parameter (or None) of a Content-Type header value."""
    if not header:
        return "", None
    media_type, *params = header.split(";")
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'").strip() or None
    return media_type.strip().lower(), charset


def is_textual(media_type: str) -> bool:
    """Whether a body of this media type is text (worth decoding).

    An absent type counts as text: the pipeline may still sniff it.
    """
    return (
        media_type == ""
        or media_type.startswith("text/")
        or media_type in _TEXT_TYPES
        or media_type.endswith(("+xml", "+json"))
    )


def codec_for(label: str | None) -> str | None:
    """Python's codec for a charset label as browsers read it, or None
    when the label names nothing a web page can be in."""
    if not label:
        return None
    label = label.strip().lower()
    try:
        name = codecs.lookup(_EXTRA_LABELS.get(label, label)).name
    except LookupError:
        return None
    if name in _REFUSED:
        return None
    try:
        b"x".decode(name, "ignore")
    except LookupError:
        # base64, rot13 and the like: codecs, but not text encodings.
        return None
    return _SUPERSETS.get(name, name)


def _decodes(body: bytes, codec: str) -> bool:
    try:
        body.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:_PRESCAN_BYTES])
    if not match:
        return None
    codec = codec_for(match.group(1).decode("ascii"))
    # A meta tag readable as ASCII cannot be in UTF-16: browsers read UTF-8.
    if codec and codec.startswith("utf-16"):
        return "utf-8"
    return codec


def guess_encoding(body: bytes, content_type: str | None) -> str:
    """The codec to decode ``body`` with, given its Content-Type header."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return codec
    for declared in (codec_for(split_content_type(content_type)[1]), _meta_charset(body)):
        if declared and _decodes(body, declared):
            return declared
    if _decodes(body, "utf-8"):
        return "utf-8"
    detected = codec_for(chardet.detect(body[:_DETECT_BYTES]).get("encoding"))
    return detected or "cp1252"


def decode(body: bytes, encoding: str | None) -> str:
    """``body`` as text: undecodable bytes become U+FFFD, a BOM is dropped."""
    text = body.decode(encoding or "utf-8", errors="replace")
    return text[1:] if text.startswith("\ufeff") else text
