"""The link processor end to end: the real fetcher against pages served on 127.0.0.1."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from fetch_servers import PageServer, policy_for, respond

from chalicelib.links import extract_page
from chalicelib.links.fetch import FetchedPage, fetch_page
from chalicelib.links.outcome import LinkFailure, LinkJob, TagChoice, TagSuggestion
from chalicelib.links.pipeline import MAX_TEXT_CHARS, make_link_processor

ARTICLE = """<!DOCTYPE html>
<html lang="en-GB">
<head>
  <meta charset="utf-8">
  <title>Growing tomatoes on a balcony | The Green Post</title>
  <meta name="description" content="Small space, big harvest: how to grow tomatoes in pots.">
  <meta property="og:title" content="Growing tomatoes on a balcony">
  <meta property="og:site_name" content="The Green Post">
  <meta property="og:image" content="/images/tomatoes.jpg">
  <meta name="author" content="Ada Gardener">
  <meta property="article:published_time" content="2024-05-02T08:30:00+02:00">
  <link rel="canonical" href="/garden/tomatoes-balcony">
  <link rel="icon" href="/static/icon.png">
</head>
<body>
  <nav class="menu"><a href="/">Home</a> <a href="/garden">Garden</a></nav>
  <article class="post-content">
    <h1>Growing tomatoes on a balcony</h1>
    <p>Tomatoes grow well in pots if they get six hours of sun a day. A balcony facing south
       is ideal, but east or west works for cherry tomatoes.</p>
    <p>Choose a pot of at least twenty litres for each plant, fill it with peat-free compost,
       and water the tomatoes every morning in summer so the soil never dries out.</p>
    <p>Feed the plants with a tomato fertiliser once the first flowers open. Pinch out side
       shoots each week so the plant puts its energy into the fruit.</p>
    <p>Harvest when the tomatoes are fully coloured and slightly soft. Gardening in a small
       space takes planning, but a balcony can give you tomatoes from July to October.</p>
  </article>
  <footer class="footer">Copyright The Green Post</footer>
</body>
</html>"""


def page(body: bytes, content_type: str = "text/html; charset=utf-8", status: int = 200, **headers):
    return lambda handler: respond(handler, status, body, {"Content-Type": content_type, **headers})


@pytest.fixture
def server():
    server = PageServer({})
    yield server
    server.close()


def processor_for(server, **kwargs):
    policy = policy_for(server)
    return make_link_processor(fetch=lambda url: fetch_page(url, policy), **kwargs)


def test_an_article_page_becomes_a_rich_entry(server):
    server.routes["/garden/tomatoes"] = page(ARTICLE.encode("utf-8"))
    tags = (TagChoice("t-garden", "Gardening"), TagChoice("t-tomato", "tomatoes"), TagChoice("t-cars", "Cars"))

    outcome = processor_for(server)(LinkJob("link-1", server.url + "/garden/tomatoes", tags))

    assert outcome.failure is None
    assert outcome.link_id == "link-1"
    metadata = outcome.metadata
    assert metadata.title == "Growing tomatoes on a balcony"
    assert metadata.description == "Small space, big harvest: how to grow tomatoes in pots."
    assert metadata.site_name == "The Green Post"
    assert metadata.author == "Ada Gardener"
    assert metadata.published_at == "2024-05-02T08:30:00+02:00"
    assert metadata.lang == "en-GB"
    assert metadata.image == server.url + "/images/tomatoes.jpg"
    assert metadata.canonical_url == server.url + "/garden/tomatoes-balcony"
    assert metadata.favicon == server.url + "/static/icon.png"
    assert outcome.text.startswith(
        "Growing tomatoes on a balcony\n\nTomatoes grow well in pots if they get six hours of sun a day. A balcony"
    )
    assert "every morning in summer so the soil never dries out.\n\nFeed the plants" in outcome.text
    assert "Home" not in outcome.text and "Copyright" not in outcome.text
    assert outcome.word_count == 119
    assert outcome.reading_minutes == 1
    assert outcome.summary == (
        "Tomatoes grow well in pots if they get six hours of sun a day. A balcony facing south is ideal, "
        "but east or west works for cherry tomatoes. Gardening in a small space takes planning, "
        "but a balcony can give you tomatoes from July to October."
    )
    # "tomatoes" is in the title, the URL path and the text; "Gardening" is
    # mentioned once in the text only, which is not enough; "Cars" nowhere.
    assert outcome.suggestions == (TagSuggestion("t-tomato", 0.988),)


def test_links_processed_at_the_same_time_give_the_same_outcomes_as_one_by_one(server):
    server.routes["/a"] = page(ARTICLE.encode("utf-8"))
    server.routes["/b"] = page(CAFE.encode("latin-1"), "text/html; charset=iso-8859-1")
    server.routes["/c"] = page(JAPANESE.encode("shift_jis"), "text/html")
    tags = (TagChoice("t-tomato", "tomatoes"), TagChoice("t-cafe", "café"))
    jobs = [LinkJob(f"link-{i}", server.url + path, tags) for i, path in enumerate(["/a", "/b", "/c", "/missing"] * 3)]
    process = processor_for(server)

    one_by_one = [process(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(process, jobs))

    assert together == one_by_one
    assert [o.failure.code if o.failure else o.metadata.title for o in together[:4]] == [
        "Growing tomatoes on a balcony", "Café crème à Paris", "東京の天気予報", "http_404",
    ]


def test_extract_page_gives_the_same_fields_without_fetching():
    result = extract_page(ARTICLE, "https://green.example/garden/tomatoes")

    assert result == {
        "title": "Growing tomatoes on a balcony",
        "description": "Small space, big harvest: how to grow tomatoes in pots.",
        "image": "https://green.example/images/tomatoes.jpg",
        "site_name": "The Green Post",
        "favicon": "https://green.example/static/icon.png",
        "canonical_url": "https://green.example/garden/tomatoes-balcony",
        "author": "Ada Gardener",
        "published_at": "2024-05-02T08:30:00+02:00",
        "lang": "en-GB",
        "text": result["text"],
        "word_count": 119,
    }
    assert result["text"].startswith("Growing tomatoes on a balcony\n\nTomatoes grow well in pots")


def test_relative_urls_resolve_against_the_final_url_after_a_redirect(server):
    server.routes["/old"] = lambda handler: respond(handler, 301, b"", {"Location": "/new/dir/page.html"})
    server.routes["/new/dir/page.html"] = page(
        b'<html><head><title>Moved page</title><meta property="og:image" content="img/a.png"></head>'
        b"<body><p>Short page.</p></body></html>"
    )

    outcome = processor_for(server)(LinkJob("link-2", server.url + "/old"))

    assert outcome.failure is None
    assert outcome.metadata.image == server.url + "/new/dir/img/a.png"
    assert outcome.metadata.canonical_url == server.url + "/new/dir/page.html"
    assert outcome.metadata.favicon == server.url + "/favicon.ico"
    assert server.paths() == ["/old", "/new/dir/page.html"]


CAFE = "<html><head><title>Café crème à Paris</title></head><body><p>Un café crème, s'il vous plaît.</p></body></html>"
JAPANESE = (
    '<html><head><meta charset="shift_jis"><title>東京の天気予報</title></head>'
    "<body><p>今日は晴れのち曇り、夕方から雨が降るでしょう。</p></body></html>"
)


@pytest.mark.parametrize(
    ("body", "content_type", "title", "text"),
    [
        pytest.param(CAFE.encode("utf-8"), "text/html; charset=utf-8", "Café crème à Paris", "Un café crème, s'il vous plaît.", id="utf-8"),
        pytest.param(CAFE.encode("latin-1"), "text/html; charset=ISO-8859-1", "Café crème à Paris", "Un café crème, s'il vous plaît.", id="latin-1"),
        pytest.param(JAPANESE.encode("shift_jis"), "text/html", "東京の天気予報", "今日は晴れのち曇り、夕方から雨が降るでしょう。", id="shift_jis-from-meta"),
        pytest.param(b"\xef\xbb\xbf" + CAFE.encode("utf-8"), "text/html", "Café crème à Paris", "Un café crème, s'il vous plaît.", id="utf-8-bom"),
        pytest.param(
            b"\xef\xbb\xbf" + CAFE.encode("utf-8"), "text/html; charset=iso-8859-1", "Café crème à Paris", "Un café crème, s'il vous plaît.",
            id="bom-beats-a-wrong-header",
        ),
        pytest.param(
            CAFE.replace("<head>", '<head><meta charset="iso-8859-1">').encode("latin-1"), "text/html; charset=utf-8",
            "Café crème à Paris", "Un café crème, s'il vous plaît.", id="wrong-utf-8-header-meta-wins",
        ),
        pytest.param(
            JAPANESE.encode("shift_jis"), "text/html; charset=utf-8", "東京の天気予報", "今日は晴れのち曇り、夕方から雨が降るでしょう。",
            id="wrong-utf-8-header-on-shift_jis",
        ),
    ],
)
def test_charsets_end_to_end(server, body, content_type, title, text):
    server.routes["/page"] = page(body, content_type)

    outcome = processor_for(server)(LinkJob("link-3", server.url + "/page"))

    assert outcome.failure is None
    assert outcome.metadata.title == title
    assert outcome.text == text


def test_a_pdf_gets_a_metadata_only_entry(server):
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 8
    server.routes["/files/download"] = page(
        pdf, "application/pdf", **{"Content-Disposition": 'attachment; filename="annual report.pdf"', "Content-Language": "de"}
    )

    outcome = processor_for(server)(LinkJob("link-4", server.url + "/files/download"))

    assert outcome.failure is None
    assert outcome.text is None and outcome.summary is None and outcome.word_count == 0
    assert outcome.metadata.title == "annual report.pdf"
    assert outcome.metadata.description == "application/pdf, 2 KB"
    assert outcome.metadata.image is None
    assert outcome.metadata.lang == "de"
    assert outcome.metadata.canonical_url == server.url + "/files/download"
    assert outcome.metadata.favicon == server.url + "/favicon.ico"


@pytest.mark.parametrize(
    ("disposition", "title"),
    [
        ("attachment; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20aus%20Berlin.pdf", "Grüße aus Berlin.pdf"),
        ("inline; filename=plain.pdf; size=3", "plain.pdf"),
        ("attachment", "download.pdf"),
        ("attachment; filename=\"\"", "download.pdf"),
    ],
)
def test_file_titles_from_content_disposition_else_the_path(disposition, title):
    def fetch(url):
        return FetchedPage(url, 200, "application/pdf", {"content-disposition": disposition}, b"%PDF-1.7", None)

    outcome = make_link_processor(fetch=fetch)(LinkJob("link-18", "https://example.com/files/download.pdf"))

    assert (outcome.failure, outcome.metadata.title) == (None, title)


def test_an_image_gets_a_metadata_only_entry_showing_itself(server):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    server.routes["/pics/cat%20photo.png"] = page(png, "image/png")

    outcome = processor_for(server)(LinkJob("link-5", server.url + "/pics/cat%20photo.png"))

    assert outcome.failure is None
    assert outcome.metadata.title == "cat photo.png"
    assert outcome.metadata.description == "image/png, 108 bytes"
    assert outcome.metadata.image == server.url + "/pics/cat%20photo.png"
    assert outcome.text is None


def test_a_plain_text_page_keeps_its_text(server):
    server.routes["/notes.txt"] = page(b"Remember the milk.\nAnd the eggs, too.\n", "text/plain; charset=utf-8")

    outcome = processor_for(server)(LinkJob("link-6", server.url + "/notes.txt"))

    assert outcome.failure is None
    assert outcome.metadata.title == "notes.txt"
    assert outcome.text == "Remember the milk.\nAnd the eggs, too."
    assert outcome.word_count == 7
    assert outcome.summary == "Remember the milk. And the eggs, too."


def test_without_a_content_type_html_is_recognised_and_anything_else_is_a_file(server):
    server.routes["/untyped-page"] = lambda handler: respond(handler, 200, CAFE.encode("utf-8"))
    server.routes["/untyped-blob"] = lambda handler: respond(handler, 200, b"\x00\x01\x02 not a page")

    processor = processor_for(server)
    page_outcome = processor(LinkJob("link-16", server.url + "/untyped-page"))
    blob_outcome = processor(LinkJob("link-17", server.url + "/untyped-blob"))

    assert (page_outcome.failure, page_outcome.metadata.title) == (None, "Café crème à Paris")
    assert (blob_outcome.failure, blob_outcome.text) == (None, None)
    assert blob_outcome.metadata.description == "unknown type, 14 bytes"


def test_404_is_a_permanent_failure(server):
    outcome = processor_for(server)(LinkJob("link-7", server.url + "/missing"))

    assert outcome.metadata is None
    assert outcome.failure.code == "http_404"
    assert outcome.failure.retryable is False


def test_503_is_retryable_and_keeps_retry_after(server):
    server.routes["/busy"] = page(b"try later", "text/plain", 503, **{"Retry-After": "120"})

    outcome = processor_for(server)(LinkJob("link-8", server.url + "/busy"))

    assert outcome.failure == LinkFailure("http_503", outcome.failure.message, True, 120.0)
    assert "503" in outcome.failure.message


def test_the_default_fetch_follows_linklog_allow_hosts(server, monkeypatch):
    server.routes["/page"] = page(CAFE.encode("utf-8"))
    job = LinkJob("link-9", server.url + "/page")

    monkeypatch.delenv("LINKLOG_ALLOW_HOSTS", raising=False)
    refused = make_link_processor()(job)
    monkeypatch.setenv("LINKLOG_ALLOW_HOSTS", f"127.0.0.1:{server.port}")
    allowed = make_link_processor()(job)

    assert refused.failure.code == "refused_address"
    assert refused.failure.retryable is False
    assert allowed.failure is None
    assert allowed.metadata.title == "Café crème à Paris"
    assert server.paths() == ["/page"]


def test_a_bad_allow_list_setting_is_refused_when_the_processor_is_made(monkeypatch):
    monkeypatch.setenv("LINKLOG_ALLOW_HOSTS", "127.0.0.1:notaport")

    with pytest.raises(ValueError, match="notaport"):
        make_link_processor()


@pytest.mark.parametrize(
    ("body", "title", "has_text"),
    [
        pytest.param(b"", None, False, id="empty"),
        pytest.param(b"<html><head><title>Broken", "Broken", False, id="truncated"),
        # readability-lxml keeps nothing of this one, trafilatura its words.
        pytest.param(b"<div><p>unclosed <b>tags <table><tr><td>cell</div></p>", None, True, id="malformed"),
        pytest.param(bytes(range(256)) * 40, None, True, id="binary-garbage"),
        pytest.param(b"\x00\x00\x00<html>\x00</html>", None, False, id="nul-bytes"),
        pytest.param(b"<html>" + b"<div>" * 5000 + b"deep" + b"</div>" * 5000 + b"</html>", None, False, id="deep-nesting"),
    ],
)
def test_a_bad_page_gives_an_outcome_not_an_exception(server, body, title, has_text):
    server.routes["/bad"] = page(body, "text/html")

    outcome = processor_for(server)(LinkJob("link-10", server.url + "/bad"))

    assert outcome.failure is None
    assert outcome.metadata.title == title
    assert outcome.metadata.canonical_url == server.url + "/bad"
    assert (outcome.text is not None) == has_text
    assert (outcome.word_count > 0) == has_text
    if has_text:
        assert not any(ord(c) < 32 and c not in "\n\t" for c in outcome.text)


def test_an_empty_page_has_no_text_and_no_summary(server):
    server.routes["/empty"] = page(b"", "text/html")

    outcome = processor_for(server)(LinkJob("link-11", server.url + "/empty"))

    assert (outcome.metadata.title, outcome.text, outcome.summary, outcome.word_count) == (None, None, None, 0)


def test_long_text_is_capped_but_counted_whole(server):
    paragraph = "<p>" + " ".join(["word"] * 1000) + ".</p>"
    server.routes["/long"] = page(("<html><body><article>" + paragraph * 30 + "</article></body></html>").encode())

    outcome = processor_for(server)(LinkJob("link-12", server.url + "/long"))

    assert outcome.word_count == 30_000
    assert outcome.reading_minutes == 131
    assert len(outcome.text) <= MAX_TEXT_CHARS
    assert len(outcome.text) > MAX_TEXT_CHARS - 1000
    assert outcome.text.endswith("word")


def test_a_fetch_that_breaks_its_contract_is_a_retryable_failure():
    def fetch(url):
        raise RuntimeError("socket exploded")

    outcome = make_link_processor(fetch=fetch)(LinkJob("link-13", "http://example.test/"))

    assert outcome.failure == LinkFailure("fetch_failed", "RuntimeError: socket exploded", True)


def test_a_page_the_extractors_cannot_read_is_a_permanent_failure():
    def fetch(url):
        return FetchedPage(url, 200, "text/html", {}, b"<p>hello</p>", encoding="no-such-codec")

    outcome = make_link_processor(fetch=fetch)(LinkJob("link-14", "http://example.test/"))

    assert outcome.failure.code == "extract_failed"
    assert outcome.failure.retryable is False
    assert "no-such-codec" in outcome.failure.message


def test_a_failing_summarizer_leaves_the_description_as_summary(server):
    class Broken:
        def summary(self, title, text):
            raise TimeoutError("model too slow")

    server.routes["/garden/tomatoes"] = page(ARTICLE.encode("utf-8"))

    outcome = processor_for(server, summarizer=Broken())(LinkJob("link-15", server.url + "/garden/tomatoes"))

    assert outcome.failure is None
    assert outcome.summary == "Small space, big harvest: how to grow tomatoes in pots."
    assert outcome.word_count == 119


SOURDOUGH = (
    "<html><head><title>How to bake sourdough bread at home | The Loaf</title>"
    "<meta property='og:site_name' content='The Loaf'></head><body><article><h1>How to bake sourdough bread at home</h1>"
    + "<p>Sourdough bread is made with a starter instead of commercial yeast. Feed your starter the day before you bake. "
    "Mix flour, water and salt, then fold the dough every half hour, and bake the bread in a hot dutch oven.</p>" * 4
    + "</article></body></html>"
)


@pytest.mark.parametrize("new_tags_on", [True, False])
def test_new_tags_are_suggested_only_when_the_job_asks(server, new_tags_on):
    server.routes["/recipes/sourdough"] = page(SOURDOUGH.encode("utf-8"))
    bread = TagChoice("t-bread", "Bread")

    outcome = processor_for(server)(LinkJob("link-sd", server.url + "/recipes/sourdough", (bread,), suggest_new_tags=new_tags_on))

    assert outcome.metadata.title == "How to bake sourdough bread at home"
    assert [s.tag_id for s in outcome.suggestions] == ["t-bread"]
    if new_tags_on:
        assert "sourdough" in [tag.name for tag in outcome.new_tags]
        assert "bread" not in [tag.name for tag in outcome.new_tags]
    else:
        assert outcome.new_tags == ()


def test_the_org_s_common_words_the_job_carries_are_no_new_tags(server):
    server.routes["/recipes/sourdough"] = page(SOURDOUGH.encode("utf-8"))
    job = LinkJob("link-sd", server.url + "/recipes/sourdough", suggest_new_tags=True)
    process = processor_for(server)

    assert "sourdough" in [tag.name for tag in process(job).new_tags]
    # An org whose pages are mostly about sourdough.
    common = process(replace(job, common_words=frozenset({"sourdough"}))).new_tags
    assert common and not any("sourdough" in tag.name for tag in common), common
