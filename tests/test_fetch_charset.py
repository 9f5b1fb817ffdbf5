"""Which encoding a fetched page is decoded with: a BOM, the header, a
<meta> declaration, valid UTF-8, then detection; a wrong declaration is
passed over."""

from __future__ import annotations

import codecs

import pytest

from chalicelib.links.charset import codec_for, guess_encoding, split_content_type
from chalicelib.links.fetch import fetch_page
from fetch_servers import guard, PageServer, policy_for, respond

# Nothing these tests do may leave the machine, even if the fetcher is wrong.
pytestmark = pytest.mark.usefixtures("guard")

FRENCH = "<p>Un été à Besançon : café, crème brûlée et façades élégantes, où l'on flâne des heures.</p>"
JAPANESE = "<p>日本語のページです。東京の天気は晴れ、気温は二十度でした。明日も良い天気になるでしょう。</p>"


def page(body: bytes, content_type: str | None):
    headers = {"Content-Type": content_type} if content_type else {}
    return lambda handler: respond(handler, 200, body, headers)


# path -> (body, Content-Type, expected encoding, expected text)
CASES = {
    "/utf8": (FRENCH.encode("utf-8"), "text/html; charset=utf-8", "utf-8", FRENCH),
    "/utf8-undeclared": (FRENCH.encode("utf-8"), "text/html", "utf-8", FRENCH),
    "/latin1": (FRENCH.encode("latin-1"), "text/html; charset=ISO-8859-1", "cp1252", FRENCH),
    "/latin1-meta": (
        b'<html><head><meta charset="iso-8859-1"></head>' + FRENCH.encode("latin-1"),
        "text/html",
        "cp1252",
        '<html><head><meta charset="iso-8859-1"></head>' + FRENCH,
    ),
    "/latin1-http-equiv": (
        b'<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">' + FRENCH.encode("cp1252"),
        "text/html",
        "cp1252",
        '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">' + FRENCH,
    ),
    "/sjis": (JAPANESE.encode("shift_jis"), "text/html; charset=Shift_JIS", "cp932", JAPANESE),
    "/sjis-meta": (
        b"<meta charset=shift_jis>" + JAPANESE.encode("shift_jis"),
        "text/html",
        "cp932",
        "<meta charset=shift_jis>" + JAPANESE,
    ),
    "/utf8-bom": (codecs.BOM_UTF8 + FRENCH.encode("utf-8"), "text/html", "utf-8", FRENCH),
    "/utf16-bom": (codecs.BOM_UTF16_LE + JAPANESE.encode("utf-16-le"), "text/html", "utf-16-le", JAPANESE),
    "/bom-beats-header": (codecs.BOM_UTF8 + FRENCH.encode("utf-8"), "text/html; charset=iso-8859-1", "utf-8", FRENCH),
    "/wrong-header-meta-right": (
        b'<meta charset="windows-1252">' + FRENCH.encode("cp1252"),
        "text/html; charset=utf-8",
        "cp1252",
        '<meta charset="windows-1252">' + FRENCH,
    ),
    "/wrong-header-detected": (JAPANESE.encode("shift_jis"), "text/html; charset=utf-8", "cp932", JAPANESE),
    "/unknown-header": (FRENCH.encode("utf-8"), "text/html; charset=klingon", "utf-8", FRENCH),
    "/utf7-header": (b"<p>+ADw-script+AD4-</p>", "text/html; charset=utf-7", "utf-8", "<p>+ADw-script+AD4-</p>"),
}


@pytest.fixture(scope="module")
def server():
    pages = PageServer({path: page(body, content_type) for path, (body, content_type, _, _) in CASES.items()})
    yield pages
    pages.close()


@pytest.mark.parametrize("path", list(CASES))
def test_fetched_pages_are_decoded_with_the_right_charset(server, path):
    _, _, encoding, text = CASES[path]

    fetched = fetch_page(f"{server.url}{path}", policy_for(server))

    assert (fetched.encoding, fetched.text()) == (encoding, text)


@pytest.mark.parametrize(
    "body, content_type, encoding",
    [
        (b"plain ascii", None, "utf-8"),
        (b"", "text/html", "utf-8"),
        ("café".encode("latin-1"), "text/html; charset=latin1", "cp1252"),
        ("café".encode("utf-8"), 'text/html; charset="UTF-8"', "utf-8"),
        (b'<meta charset="utf-16">caf\xc3\xa9', None, "utf-8"),
        (b"\xfe\xff\x00h\x00i", None, "utf-16-be"),
        (b"\x81\x82\x83\xff", "text/html; charset=base64", "cp1252"),
    ],
)
def test_guess_encoding(body, content_type, encoding):
    assert guess_encoding(body, content_type) == encoding


@pytest.mark.parametrize(
    "label, codec",
    [
        ("UTF-8", "utf-8"),
        ("utf8", "utf-8"),
        ("ISO-8859-1", "cp1252"),
        ("us-ascii", "cp1252"),
        ("Shift_JIS", "cp932"),
        ("x-sjis", "cp932"),
        ("gb2312", "gbk"),
        ("euc-kr", "cp949"),
        ("koi8-r", "koi8-r"),
        ("utf-7", None),
        ("base64", None),
        ("unicode_escape", None),
        ("klingon", None),
        ("", None),
        (None, None),
    ],
)
def test_charset_labels_are_read_the_way_browsers_read_them(label, codec):
    assert codec_for(label) == codec


@pytest.mark.parametrize(
    "header, parts",
    [
        ("text/html; charset=utf-8", ("text/html", "utf-8")),
        ('Text/HTML;Charset="Shift_JIS"', ("text/html", "Shift_JIS")),
        ("application/pdf", ("application/pdf", None)),
        ("text/html; charset=", ("text/html", None)),
        ("", ("", None)),
        (None, ("", None)),
    ],
)
def test_split_content_type(header, parts):
    assert split_content_type(header) == parts
