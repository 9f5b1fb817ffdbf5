"""The web app in a real browser (Debian's Chromium, driven by Playwright),
against `python -m chalicelib.devserver` as `make run` starts it, with the
pages it saves served on 127.0.0.1 (allow-listed, as a user would).

Each step asserts what the user sees on the page. Screenshots at 390 and
1280 px go to ``screenshots/`` under the test's tmp path (or to
``$LINKLOG_SCREENSHOTS`` when set).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from bedrock_stub import unreachable_bedrock
from devserver_process import running_devserver

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(
        f"the browser tests need Chromium at {CHROMIUM}: install it with "
        "`sudo apt-get install -y chromium` (Debian/Ubuntu); no test downloads a browser",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need Playwright: pip install -r requirements-dev.txt"
)
expect = sync_api.expect

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WAIT_MS = 45_000

IMAGE = b"""<svg xmlns="http://www.w3.org/2000/svg" width="400" height="210">
<rect width="400" height="210" fill="#c98b3a"/><circle cx="200" cy="105" r="70" fill="#f3d9a4"/></svg>"""


def article(title: str, paragraphs: list[str], image: str | None = None) -> bytes:
    head = f'<meta property="og:image" content="{image}">' if image else ""
    body = "".join(f"<p>{text}</p>" for text in paragraphs)
    return (
        f'<!doctype html><html lang="en"><head><title>{title}</title>{head}'
        f'<meta name="description" content="{paragraphs[0][:120]}"></head>'
        f"<body><article><h1>{title}</h1>{body}</article></body></html>"
    ).encode()


SOURDOUGH = [
    "A sourdough starter is a culture of wild yeast and bacteria that lives in flour and water. "
    "Feed it every day with equal weights of flour and water and keep it somewhere warm.",
    "After a week the starter rises and falls on a schedule, smells pleasantly sour, and is ready "
    "to leaven bread. Keep a little back each time you bake, and feed it again.",
    "Bakers who keep a starter for years give it a name; some starters are older than their bakers.",
]
HOSTILE_TITLE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


class Pages(BaseHTTPRequestHandler):
    """Local test pages; ``/flaky`` answers 404 until the test heals it."""

    def do_GET(self):
        server = self.server
        path = self.path.split("?", 1)[0]
        if path == "/image.svg":
            self._send(200, IMAGE, "image/svg+xml")
        elif path == "/flaky" and not server.healed:
            self._send(404, b"not here yet", "text/plain")
        elif path == "/hostile":
            escaped = HOSTILE_TITLE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            self._send(200, article(escaped, [escaped + " is what this page says, twice: " + escaped,
                                              "A second paragraph with enough words to be read as text."]))
        elif path == "/sourdough":
            self._send(200, article("Tending a sourdough starter", SOURDOUGH, image="/image.svg"))
        else:
            name = path.strip("/").replace("-", " ") or "home"
            self._send(200, article(f"A page about {name}", [
                f"This page is about {name}. It has a few sentences so that it reads as an article.",
                f"More words about {name} follow here, in a second paragraph of plain text.",
            ]))

    def _send(self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def pages():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    server.healed = False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def linklog(pages, tmp_path_factory):
    data = tmp_path_factory.mktemp("linklog") / "data"
    # While the org's summarizer is Bedrock, Bedrock refuses: summaries fall back.
    with unreachable_bedrock() as bedrock, running_devserver(
        data, allow_hosts=f"127.0.0.1:{pages.server_address[1]}", env=bedrock
    ) as server:
        yield server


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
            accept_downloads=True,
        )
        yield context
        context.close()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    directory = Path(os.environ.get("LINKLOG_SCREENSHOTS") or tmp_path / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def page(browser):
    opened = browser.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.errors = errors
    yield opened
    opened.close()


def page_url(pages, path: str) -> str:
    return f"http://127.0.0.1:{pages.server_address[1]}{path}"


def card(page, text: str):
    return page.locator("#cards > li", has_text=text)


def no_sideways_scrolling(page) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
        " document.body.scrollWidth]"
    )
    scroll_width, client_width, body_width = widths
    assert scroll_width <= client_width and body_width <= client_width, widths


def sign_in(page, linklog) -> None:
    page.goto(f"{linklog.url}/#token={linklog.token}")
    expect(page.locator("#sign-in")).not_to_be_visible()
    expect(page.locator("#view-title")).to_have_text("Unread")


def save(page, url: str, tags: str = "") -> None:
    page.get_by_label("Link to save").fill(url)
    page.get_by_label("Tags, separated by commas (optional)").fill(tags)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#save-url")).to_have_value("")


def test_the_page_asks_for_a_token_and_keeps_it(page, linklog):
    page.goto(f"{linklog.url}/")
    page.evaluate("() => localStorage.clear()")
    page.reload()
    dialog = page.get_by_role("dialog", name="Sign in to linklog")
    expect(dialog).to_be_visible()

    page.get_by_label("Token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(dialog).to_be_visible()
    expect(page.locator("#sign-in-why")).to_contain_text("no longer works")

    page.get_by_label("Token").fill(linklog.token)
    page.get_by_role("button", name="Sign in").click()
    expect(dialog).not_to_be_visible()
    expect(page.locator("#view-title")).to_have_text("Unread")
    page.reload()
    expect(page.locator("#view-title")).to_have_text("Unread")
    expect(dialog).not_to_be_visible()
    assert page.evaluate("() => localStorage.getItem('linklog.token')") == linklog.token


def test_a_day_with_linklog(page, linklog, pages, screenshots, tmp_path):
    sign_in(page, linklog)
    assert page.evaluate("() => location.hash") == ""  # the token left the address bar

    # A tag the processor can suggest for pages that mention it.
    page.get_by_text("Manage tags").click()
    page.get_by_label("New tag", exact=True).fill("sourdough")
    page.get_by_role("button", name="Create tag").click()
    expect(page.locator("#tag-views")).to_contain_text("sourdough")

    # Save, see it processed, open the reader.
    save(page, page_url(pages, "/sourdough"), tags="to bake")
    sourdough = card(page, "Tending a sourdough starter")
    expect(sourdough).to_be_visible(timeout=WAIT_MS)
    expect(sourdough.locator(".badge.completed")).to_have_text("Ready", timeout=WAIT_MS)
    expect(sourdough).to_contain_text("127.0.0.1")
    expect(sourdough).to_contain_text("min read")
    expect(sourdough.locator(".chip")).to_contain_text("to bake")
    expect(sourdough.locator("img.thumb")).to_have_attribute("src", page_url(pages, "/image.svg"))

    sourdough.get_by_role("button", name="Tending a sourdough starter").click()
    reader = page.locator("#reader")
    expect(reader).to_be_visible()
    expect(reader.get_by_role("heading", name="Tending a sourdough starter")).to_be_visible()
    expect(reader.locator(".summary")).to_contain_text("starter")
    # Readable text in paragraphs: each of the page's paragraphs is one.
    for paragraph in SOURDOUGH:
        expect(reader.locator(".text p", has_text=paragraph)).to_have_text(paragraph)
    expect(reader.get_by_role("link", name="Open the original page")).to_have_attribute(
        "href", page_url(pages, "/sourdough")
    )
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=screenshots / "reader-390.png")
    no_sideways_scrolling(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=screenshots / "reader-1280.png")

    # Accept a suggestion (in the reader), tag from the card.
    suggestions = reader.get_by_role("group", name="Suggested tags")
    expect(suggestions).to_contain_text("sourdough")
    suggestions.get_by_role("button", name="Accept sourdough").click()
    expect(reader.get_by_role("group", name="Suggested tags")).to_have_count(0)
    expect(reader.locator(".tags")).to_contain_text("sourdough")
    reader.get_by_role("button", name="Close").click()
    sourdough.get_by_label("Add a tag").fill("bread")
    sourdough.get_by_role("button", name="Tag", exact=True).click()
    expect(sourdough.locator(".tags")).to_contain_text("bread")
    expect(page.locator("#tag-views")).to_contain_text("bread(1)")

    # Archive; the filters show it where it belongs.
    sourdough.get_by_role("button", name="Archive").click()
    expect(sourdough).to_have_count(0)
    page.locator("#views").get_by_role("button", name="Archived").click()
    expect(page.locator("#view-title")).to_have_text("Archived")
    expect(sourdough.locator(".badge.archived")).to_have_text("Archived")
    page.locator("#tag-views").get_by_role("button", name=re.compile("^bread")).click()
    expect(page.locator("#view-title")).to_have_text("Tag: bread")
    expect(page.locator("#cards > li")).to_have_count(1)
    sourdough.get_by_role("button", name="Unarchive").click()
    expect(sourdough.get_by_role("button", name="Archive")).to_be_visible()

    # Search, with the matches marked, not bracketed.
    page.get_by_label("Search saved pages").fill("starter")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#view-title")).to_have_text("Search: starter")
    marks = sourdough.locator(".snippet mark")
    expect(marks.first).to_have_text(re.compile("starter", re.I))
    assert "[" not in sourdough.locator(".snippet").inner_text()
    page.get_by_role("button", name="Clear search").click()

    # Delete, then undo.
    page.locator("#views").get_by_role("button", name="All").click()
    expect(sourdough).to_have_count(1)
    sourdough.get_by_role("button", name="Delete").click()
    expect(sourdough).to_have_count(0)
    expect(page.locator("#toast")).to_contain_text("Deleted “Tending a sourdough starter”")
    page.get_by_role("button", name="Undo").click()
    expect(sourdough).to_have_count(1)

    # A failed link, retried once the page is there.
    save(page, page_url(pages, "/flaky"))
    flaky = card(page, page_url(pages, "/flaky"))
    expect(flaky.locator(".badge.failed")).to_have_text("Failed", timeout=WAIT_MS)
    expect(flaky.locator(".error")).to_contain_text("404")
    page.locator("#views").get_by_role("button", name="Failed").click()
    expect(page.locator("#cards > li")).to_have_count(1)
    pages.healed = True
    flaky.get_by_role("button", name="Retry").click()
    page.locator("#views").get_by_role("button", name="All").click()
    healed = card(page, "A page about flaky")
    expect(healed.locator(".badge.completed")).to_have_text("Ready", timeout=WAIT_MS)

    # A hostile title and text are shown as text and run nothing.
    save(page, page_url(pages, "/hostile"))
    hostile = card(page, "<script>window.__pwned = 1</script>")
    expect(hostile.locator(".badge.completed")).to_have_text("Ready", timeout=WAIT_MS)
    expect(hostile.locator("h3")).to_have_text(HOSTILE_TITLE)
    hostile.get_by_role("button", name=HOSTILE_TITLE).click()
    expect(reader.get_by_role("heading", name=HOSTILE_TITLE)).to_be_visible()
    expect(reader.locator(".text")).to_contain_text('<img src=x onerror="window.__pwned = 2">')
    reader.get_by_role("button", name="Close").click()
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator("#cards img[onerror], #reader img[onerror], #cards script, #reader script").count() == 0

    # Import a Netscape file, then export.
    bookmarks = tmp_path / "bookmarks.html"
    bookmarks.write_text(
        "<!DOCTYPE NETSCAPE-Bookmark-file-1>\n<DL><p>\n"
        + "".join(
            f'<DT><A HREF="{page_url(pages, f"/imported-{n}")}" TAGS="imported">Imported {n}</A>\n'
            for n in range(3)
        )
        + "</DL><p>\n"
    )
    page.get_by_label(re.compile("^Bookmark file")).set_input_files(str(bookmarks))
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-result")).to_have_text("Imported 3 links from a netscape file.", timeout=WAIT_MS)
    for n in range(3):
        expect(card(page, f"A page about imported {n}")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#tag-views")).to_contain_text("imported(3)")
    with page.expect_download() as downloading:
        page.get_by_role("button", name="Browser bookmarks (HTML)").click()
    exported = tmp_path / "export.html"
    downloading.value.save_as(exported)
    assert downloading.value.suggested_filename.startswith("linklog-demo-")
    text = exported.read_text()
    for path in ("/sourdough", "/flaky", "/hostile", "/imported-0", "/imported-2"):
        assert page_url(pages, path) in text

    # The share target's address saves a link, through the same path as the form.
    page.goto(f"{linklog.url}/share?title=Shared&text=" + "look%20at%20" + page_url(pages, "/shared-page"))
    expect(page.locator("#status-line")).to_contain_text("Saved " + page_url(pages, "/shared-page"))
    assert page.evaluate("() => location.pathname + location.search") == "/"
    expect(card(page, "A page about shared page").locator(".badge.completed")).to_have_text("Ready", timeout=WAIT_MS)

    # Both widths: nothing scrolls sideways; screenshots of the list.
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.locator("#views").get_by_role("button", name="All").click()
        expect(page.locator("#cards > li")).to_have_count(7)
        no_sideways_scrolling(page)
        page.screenshot(path=screenshots / f"all-{width}.png", full_page=True)
    sourdough.get_by_label("Select Tending a sourdough starter").check()
    card(page, "A page about imported 0").get_by_label("Select A page about imported 0").check()
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=screenshots / "selection-390.png")
    no_sideways_scrolling(page)
    page.get_by_role("button", name="Archive selected", exact=True).click()
    page.locator("#views").get_by_role("button", name="Archived").click()
    expect(page.locator("#cards > li")).to_have_count(2)
    page.set_viewport_size({"width": 1280, "height": 900})
    assert page.errors == []


def test_settings_turn_on_new_tags_and_choose_a_summarizer(page, linklog, pages, screenshots):
    sign_in(page, linklog)
    settings = page.get_by_role("form", name="Settings")
    expect(settings.get_by_label("Summaries")).to_have_value("extractive")
    expect(settings.get_by_label("Bedrock model id")).to_be_hidden()
    expect(settings.get_by_label("Suggest new tags from the page")).not_to_be_checked()

    # A model id the server refuses: the field and why, nothing saved.
    settings.get_by_label("Summaries").select_option("bedrock")
    settings.get_by_label("Bedrock model id").fill("not a model")
    settings.get_by_role("button", name="Save settings").click()
    expect(settings.locator("#settings-result")).to_contain_text("Not saved: summarizer: Value error, must be")
    page.reload()
    expect(settings.get_by_label("Summaries")).to_have_value("extractive")

    settings.get_by_label("Summaries").select_option("bedrock")
    settings.get_by_label("Bedrock model id").fill("anthropic.claude-3-haiku-20240307-v1:0")
    settings.get_by_label(re.compile("^Seconds a model summary may take")).fill("3")
    settings.get_by_role("button", name="Save settings").click()
    expect(settings.locator("#settings-result")).to_contain_text("Settings saved")
    page.reload()
    expect(settings.get_by_label("Bedrock model id")).to_have_value("anthropic.claude-3-haiku-20240307-v1:0")
    expect(settings.get_by_label(re.compile("^Seconds a model summary may take"))).to_have_value("3")

    # Back to offline summaries, with new tags on; a new tag is accepted from the reader.
    settings.get_by_label("Summaries").select_option("extractive")
    settings.get_by_label("Suggest new tags from the page").check()
    settings.get_by_role("button", name="Save settings").click()
    expect(settings.locator("#settings-result")).to_contain_text("Settings saved")
    page.screenshot(path=screenshots / "settings-1280.png")
    save(page, page_url(pages, "/kayak-touring"))
    kayak = card(page, "A page about kayak touring")
    expect(kayak.locator(".badge.completed")).to_have_text("Ready", timeout=WAIT_MS)
    kayak.get_by_role("button", name="A page about kayak touring").click()
    suggested = page.locator("#reader").get_by_role("group", name="Suggested tags")
    expect(suggested).to_contain_text("kayak touringnew")
    suggested.get_by_role("button", name="Accept kayak touring").click()
    expect(page.locator("#reader .tags")).to_contain_text("kayak touring")
    expect(page.locator("#tag-views")).to_contain_text("kayak touring(1)")
    page.locator("#reader").get_by_role("button", name="Close").click()
    assert page.errors == []


def test_the_reader_says_which_model_wrote_the_summary(page, linklog, pages):
    sign_in(page, linklog)
    settings = page.get_by_role("form", name="Settings")
    reader = page.locator("#reader")

    def read_summary_of(path: str, title: str):
        save(page, page_url(pages, path))
        saved = card(page, title)
        expect(saved.locator(".badge.completed")).to_have_text("Ready", timeout=WAIT_MS)
        saved.get_by_role("button", name=title).click()
        expect(reader.locator(".summary")).to_contain_text(f"This page is about {title[13:]}.")
        return reader.locator(".summary h3")

    # Bedrock chosen but refusing: the offline summary, and the reader says why.
    settings.get_by_label("Summaries").select_option("bedrock")
    settings.get_by_label("Bedrock model id").fill("anthropic.claude-3-haiku-20240307-v1:0")
    settings.get_by_role("button", name="Save settings").click()
    expect(settings.locator("#settings-result")).to_contain_text("Settings saved")
    expect(read_summary_of("/pear-harvest", "A page about pear harvest")).to_have_text(re.compile(
        r"^Summary \(extractive; bedrock:anthropic\.claude-3-haiku-20240307-v1:0 failed: "
        r"EndpointConnectionError: Could not connect to the endpoint URL: .*\)$"))
    reader.get_by_role("button", name="Close").click()

    settings.get_by_label("Summaries").select_option("extractive")
    settings.get_by_role("button", name="Save settings").click()
    expect(settings.locator("#settings-result")).to_contain_text("Settings saved")
    expect(read_summary_of("/plum-harvest", "A page about plum harvest")).to_have_text("Summary (extractive)")
    reader.get_by_role("button", name="Close").click()
    assert page.errors == []


def test_the_bookmarklet_opens_the_share_address(page, linklog):
    sign_in(page, linklog)
    code = page.get_by_role("link", name="Save to linklog").get_attribute("href")

    assert code.startswith("javascript:")
    assert f"{linklog.url}/share?url=" in code


def test_the_side_list_shows_every_tag_past_one_page(page, linklog):
    # More tags than the largest page of GET /v1/tags (200): the page walks the cursor.
    linklog.push({"batch_id": "many-tags", "client_id": "browser-test", "events": [
        {"id": f"many-tag-{n}", "name": "v1.TagCreated", "at": "2026-11-23T20:00:00Z",
         "args": {"id": f"many-{n}", "name": f"zz many {n:03d}", "createdAt": "2026-11-23T20:00:00Z"}}
        for n in range(230)
    ]})
    sign_in(page, linklog)

    views = page.locator("#tag-views")
    expect(views).to_contain_text("zz many 229")
    assert views.locator("li", has_text="zz many").count() == 230


def test_chromium_is_not_downloaded():
    # The suite drives the system's Chromium; Playwright's own browsers are never fetched.
    assert shutil.which(CHROMIUM) == CHROMIUM
