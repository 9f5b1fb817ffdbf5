"""Import parsers: each fixture (written to match the app's published export
format) reads to the expected links; malformed files get a clear error."""

import io
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.formats import ImportFileError, detect_format, read_links
from chalicelib.formats import csv_export, linklog_json, netscape
from chalicelib.formats.record import ImportedLink
from chalicelib.formats.screen import screen
from chalicelib.links.addresses import AllowList

FIXTURES = Path(__file__).parent / "fixtures" / "imports"


def at(text):
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def summary(links):
    return [(link.url, link.title, link.tags, link.saved_at, link.read) for link in links]


def read(name):
    return read_links((FIXTURES / name).read_bytes())


def test_netscape_folders_become_tags_and_browser_roots_do_not():
    fmt, links = read("firefox.html")
    assert fmt == "netscape"
    assert summary(links)[:3] == [
        ("https://www.mozilla.org/en-US/firefox/central/", "Getting Started", (), at("2021-01-21T11:56:41"), False),
        ("https://www.theperfectloaf.com/beginners-sourdough-bread/?utm_source=newsletter",
         "Beginner’s Sourdough Bread | The Perfect Loaf",
         ("Recipes, bread & baking", "sourdough", "weekend"), at("2021-01-30T09:46:40"), False),
        ("https://fr.wikipedia.org/wiki/Cr%C3%A8me_br%C3%BBl%C3%A9e", "Crème brûlée — Wikipédia",
         ("Recipes, bread & baking", "Crème brûlée"), at("2021-01-31T13:33:20"), False),
    ]
    by_url = {link.url: link for link in links}
    # ADD_DATE="0" is no date; milliseconds are read as such; TOREAD="0" is read.
    assert by_url["https://peps.python.org/pep-0008/"].saved_at is None
    assert by_url["https://peps.python.org/pep-0008/"].title is None
    lwn = by_url["https://lwn.net/Articles/912345/"]
    assert (lwn.tags, lwn.saved_at, lwn.read) == ((), at("2023-11-14T22:13:20"), True)
    assert by_url["https://例え.jp/パス?q=日本語"].title == "日本語のページ"
    assert len(links) == 11


def test_netscape_screening_refuses_unsafe_and_collapses_duplicates():
    _, links = read("firefox.html")
    result = screen(links)
    assert [(r.link.position, r.reason) for r in result.refused] == [
        (3, "unsupported scheme javascript:"),
        (7, "private address 192.168.1.1; to save it anyway,"
            " add 192.168.1.1:80 to LINKLOG_ALLOW_HOSTS"),
        (8, "unsupported scheme place:"),
    ]
    assert result.duplicates == 1
    python_docs = [link for link, normalized in result.accepted
                   if normalized == "https://docs.python.org/3/library/html.parser.html"]
    # The first copy's URL and title, every tag, the earliest time.
    assert summary(python_docs) == [(
        "https://docs.python.org/3/library/html.parser.html",
        "html.parser — Simple HTML and XHTML parser",
        ("Python", "stdlib"), at("2021-12-20T11:33:20"), False,
    )]
    assert len(result.accepted) == 7


def test_allow_list_opens_a_refused_host():
    _, links = read("firefox.html")
    result = screen(links, AllowList.parse("192.168.1.1"))
    assert [r.link.position for r in result.refused] == [3, 8]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8078/page", "http://localhost/notes", "https://[::1]:8443/x",
    "http://10.1.2.3/", "http://printer.localhost:631/",
])
def test_the_entry_a_refusal_names_opens_exactly_that_bookmark(url):
    [refused] = screen([ImportedLink(position=0, url=url)]).refused
    entry = refused.reason.split("add ", 1)[1].removesuffix(" to LINKLOG_ALLOW_HOSTS")
    assert not screen([ImportedLink(position=0, url=url)], AllowList.parse(entry)).refused


def test_the_metadata_service_gets_no_hint():
    [refused] = screen([ImportedLink(position=0, url="http://169.254.169.254/latest/")]).refused
    assert refused.reason == "instance metadata address 169.254.169.254"


def test_pocket():
    fmt, links = read("pocket.csv")
    assert fmt == "pocket"
    assert summary(links) == [
        ("https://jackcheng.com/the-slow-web/", 'Why the "slow web" matters, and how to join it',
         ("reading", "essays"), at("2020-01-01T00:00:00"), False),
        ("https://example.org/untitled-page", None, (), at("2020-09-13T12:26:40"), True),
        ("https://es.wikipedia.org/wiki/Rhea_(ave)", "Ñandú — la guía",
         ("animales", "aves, América"), at("2021-01-07T06:13:20"), False),
        ("https://news.ycombinator.com/item?id=1&utm_medium=rss", None, (), None, False),
        ("https://jackcheng.com/the-slow-web/?fbclid=abc", "Duplicate with a tracker",
         ("slow web",), at("2017-07-14T02:40:00"), True),
        ("ftp://files.example.com/readme.txt", "Broken", (), at("2020-09-13T12:26:41"), False),
    ]
    result = screen(links)
    assert result.duplicates == 1
    first, _ = result.accepted[0]
    assert (first.tags, first.saved_at, first.read) == (
        ("reading", "essays", "slow web"), at("2017-07-14T02:40:00"), True)


def test_instapaper():
    fmt, links = read("instapaper.csv")
    assert fmt == "instapaper"
    assert summary(links) == [
        ("https://www.paulgraham.com/greatwork.html", "How to Do Great Work",
         ("essays", "career"), at("2023-07-09T07:48:08"), False),
        ("https://craigmod.com/essays/fast_software/", "Fast Software, the Best Software",
         (), at("2019-04-18T02:45:55"), True),
        ("https://www.nytimes.com/2020/01/01/opinion/new-year.html", None,
         ("Starred",), at("2020-01-01T12:00:00"), False),
        ("http://localhost:8080/notes", "Local notes", (), at("2020-09-13T12:26:40"), False),
    ]
    assert [r.reason for r in screen(links).refused] == [
        "local host name (localhost); to save it anyway, add localhost:8080 to LINKLOG_ALLOW_HOSTS"
    ]


def test_karakeep():
    fmt, links = read("karakeep.json")
    assert fmt == "karakeep"
    assert summary(links) == [
        ("https://antonz.org/sqlite-is-not-a-toy-database/", "SQLite is not a toy database",
         ("databases", "sqlite"), at("2024-05-31T16:08:37"), True),
        ("https://www.zeit.de/kultur/2024-05/über-das-lesen", None, (), at("2024-05-31T16:10:00"), False),
        ("", "A note to self", ("ideas",), at("2024-05-31T16:11:40"), False),
    ]
    assert [r.reason for r in screen(links).refused] == ["a Karakeep text without a URL"]


def test_linkwarden_collections_become_tags():
    fmt, links = read("linkwarden.json")
    assert fmt == "linkwarden"
    assert summary(links) == [
        ("https://aosabook.org/en/", "The Architecture of Open Source Applications",
         ("books",), at("2019-04-01T08:00:00"), False),
        ("https://jepsen.io/analyses/etcd-3.4.3", "Jepsen: etcd 3.4.3",
         ("Engineering", "Distributed systems", "consistency"), at("2024-03-03T10:30:00"), False),
        ("https://www.allthingsdistributed.com/files/amazon-dynamo-sosp2007.pdf", None,
         ("Engineering", "Distributed systems"), None, False),
    ]


def test_linkwarden_parent_loop_does_not_hang():
    text = ('{"collections": [{"id": 1, "name": "a", "parentId": 2, "links": '
            '[{"name": "x", "url": "https://example.com/", "createdAt": "2024-01-01T00:00:00Z", "tags": []}]},'
            '{"id": 2, "name": "b", "parentId": 1, "links": []}]}')
    _, links = read_links(text.encode())
    assert links[0].tags == ("b", "a")


OMNIVORE = [
    ("https://www.theguardian.com/books/2023/jan/01/the-joy-of-slow-reading", "The joy of slow reading",
     ("Books", "Newsletter"), at("2023-01-02T09:15:00"), True),
    ("https://blog.example.com/posts/42?ref=omnivore", None, (), at("2023-02-02T09:00:00"), False),
    ("mailto:someone@example.com", "Fehlerhafte Seite", ("Ärger",), at("2023-03-03T10:00:00"), False),
]


def test_omnivore_metadata_file():
    fmt, links = read("omnivore_metadata_0_to_3.json")
    assert fmt == "omnivore"
    assert summary(links) == OMNIVORE
    assert [r.reason for r in screen(links).refused] == ["unsupported scheme mailto:"]


def test_omnivore_zip_reads_metadata_files_in_their_order():
    text = (FIXTURES / "omnivore_metadata_0_to_3.json").read_text(encoding="utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("export/metadata_3_to_4.json",
                         '[{"title": "Later", "url": "https://later.example/", "labels": [], '
                         '"savedAt": "2023-04-04T00:00:00Z", "state": "Succeeded"}]')
        archive.writestr("export/metadata_0_to_3.json", text)
        archive.writestr("export/content/x.html", "<p>ignored</p>")
    fmt, links = read_links(buffer.getvalue())
    assert fmt == "omnivore"
    assert summary(links) == [*OMNIVORE, ("https://later.example/", "Later", (), at("2023-04-04T00:00:00"), False)]
    assert [link.position for link in links] == [0, 1, 2, 3]


def test_wallabag():
    fmt, links = read("wallabag.json")
    assert fmt == "wallabag"
    assert summary(links) == [
        ("https://www.postgresql.org/docs/current/routine-vacuuming.html", "Understanding Postgres VACUUM",
         ("ops", "postgres"), at("2019-03-05T09:12:33"), True),
        ("https://www.spiegel.de/kultur/öffentlichkeit-a-123.html", "Ein Artikel über Öffentlichkeit",
         (), at("2021-07-01T18:00:00"), False),
        ("", "No URL", ("x",), None, False),
    ]
    assert [r.reason for r in screen(links).refused] == ["no URL"]


def test_url_list():
    fmt, links = read("urls.txt")
    assert fmt == "urls"
    assert [link.url for link in links] == [
        "https://simonwillison.net/2024/Dec/31/llms-in-2024/",
        "https://sqlite.org/wal.html",
        "https://sqlite.org/wal.html#ckpt",
        "not a url at all",
        "https://user:hunter2@example.com/private",
    ]
    result = screen(links)
    assert result.duplicates == 1
    assert [r.reason for r in result.refused] == [
        "URL contains whitespace or control characters",
        "URL carries credentials (user:password@)",
    ]


@pytest.mark.parametrize("name, message", [
    ("netscape_no_list.html", "no <DL> bookmark list"),
    ("pocket_wrong_header.csv", "neither Pocket's"),
    ("karakeep_truncated.json", "not valid JSON: Unterminated string"),
    ("linkwarden_wrong_shape.json", "not an export linklog knows"),
    ("unknown.json", "not an export linklog knows"),
    ("binary.bin", "not UTF-8 text"),
    ("omnivore_damaged.zip", "damaged zip file"),
])
def test_malformed_files_get_a_clear_error(name, message):
    with pytest.raises(ImportFileError, match=message):
        read_links((FIXTURES / "malformed" / name).read_bytes())


@pytest.mark.parametrize("fmt, text, message", [
    ("pocket", "url,title\nhttps://a.example/,A\n", "missing column"),
    ("linkwarden", '{"collections": [{"id": 1, "links": "nope"}]}', "should be a list of objects"),
    ("wallabag", '{"entries": []}', "should be a list of objects"),
    ("karakeep", '{"bookmarks": [1, 2]}', "should be a list of objects"),
    ("netscape", "just text", "not a Netscape bookmark file"),
])
def test_a_forced_format_that_does_not_fit_is_refused(fmt, text, message):
    with pytest.raises(ImportFileError, match=message):
        read_links(text.encode(), fmt)


def test_netscape_export_reads_back():
    links = [
        {"url": "https://example.com/a?x=1&y=<2>", "title": 'Quotes " and <tags> & ünïcode',
         "tags": ["one", "two, three"], "saved_at": at("2022-02-02T02:02:02"), "read": True},
        {"url": "https://example.com/b", "title": None, "tags": [], "saved_at": None, "read": False},
    ]
    out = io.StringIO()
    assert netscape.write(out, links) == 2
    _, back = read_links(out.getvalue().encode())
    assert summary(back) == [
        ("https://example.com/a?x=1&y=<2>", 'Quotes " and <tags> & ünïcode',
         ("one", "two three"), at("2022-02-02T02:02:02"), True),
        ("https://example.com/b", None, (), None, False),
    ]


def test_linklog_json_and_csv_export():
    link = {"id": "l1", "url": "https://example.com/", "title": "T", "tags": ["a|b", "c"],
            "saved_at": "2022-02-02T02:02:02.000000Z", "read": True, "status": "completed",
            "error": None, "summary": "S", "text": "body", "word_count": 1}
    out = io.StringIO()
    linklog_json.write(out, iter([link, {**link, "url": "https://example.com/2", "read": False}]))
    fmt, back = read_links(out.getvalue().encode())
    assert fmt == "linklog"
    assert summary(back) == [
        ("https://example.com/", "T", ("a|b", "c"), at("2022-02-02T02:02:02"), True),
        ("https://example.com/2", "T", ("a|b", "c"), at("2022-02-02T02:02:02"), False),
    ]
    table = io.StringIO()
    csv_export.write(table, [link])
    header, row = table.getvalue().splitlines()
    assert header.startswith("url,title,tags,saved_at,read")
    assert row.startswith("https://example.com/,T,a|b|c,2022-02-02T02:02:02.000000Z,true")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_parse_or_fail_with_import_file_error(data):
    try:
        _, links = read_links(data)
    except ImportFileError:
        return
    screen(links)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_in_any_format_parses_or_fails_cleanly(text):
    for fmt in ("netscape", "pocket", "instapaper", "karakeep", "linkwarden", "omnivore", "wallabag", "linklog", "urls"):
        try:
            _, links = read_links(text.encode("utf-8", "surrogatepass"), fmt)
        except (ImportFileError, UnicodeEncodeError):
            continue
        screen(links)


def test_detect_format_names():
    assert detect_format((FIXTURES / "pocket.csv").read_bytes()) == "pocket"
