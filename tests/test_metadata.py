"""Page metadata: each source, each fallback, relative URLs, and a page with none.

Pages are served on 127.0.0.1 and fetched with the real fetcher, so the
URL the extractor resolves against is the final URL of a real fetch.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest
from fetch_servers import PageServer, html, policy_for

from chalicelib.links.fetch import fetch_page
from chalicelib.links.metadata import byline_names, extract_metadata, title_without_site_name
from chalicelib.links.outcome import PageMetadata

_paths = itertools.count()


@pytest.fixture(scope="module")
def server():
    server = PageServer({})
    yield server
    server.close()


@pytest.fixture
def metadata_of(server):
    """Serve ``head`` and ``body`` as a page under /articles/ and read its metadata."""

    def read(head: str = "", body: str = "<p>Some text.</p>", html_attributes: str = "", path: str = "") -> PageMetadata:
        path = path or f"/articles/{next(_paths)}/page.html"
        server.routes[path] = html(f"<!DOCTYPE html><html{html_attributes}><head>{head}</head><body>{body}</body></html>")
        page = fetch_page(server.url + path, policy_for(server))
        return extract_metadata(page.text(), page.final_url)

    return read


def test_a_page_with_no_metadata_at_all(metadata_of, server):
    metadata = metadata_of(body="<p>Just some words.</p>", path="/plain/page.html?id=7")

    assert metadata == PageMetadata(
        title=None, description=None, image=None, site_name=None,
        favicon=server.url + "/favicon.ico", canonical_url=server.url + "/plain/page.html?id=7",
        author=None, published_at=None, lang=None,
    )


def test_opengraph(metadata_of, server):
    metadata = metadata_of(
        '<title>Ignored | Site</title>'
        '<meta property="og:title" content="The OpenGraph title">'
        '<meta property="og:description" content="What the page is about.">'
        '<meta property="og:image" content="https://img.example.com/a.jpg">'
        '<meta property="og:image" content="https://img.example.com/second.jpg">'
        '<meta property="og:site_name" content="Example News">'
        '<meta property="og:url" content="https://example.com/a">'
    )

    assert metadata.title == "The OpenGraph title"
    assert metadata.description == "What the page is about."
    assert metadata.image == "https://img.example.com/a.jpg"
    assert metadata.site_name == "Example News"
    assert metadata.canonical_url == "https://example.com/a"


def test_twitter_cards_when_there_is_no_opengraph(metadata_of):
    metadata = metadata_of(
        '<meta name="twitter:card" content="summary_large_image">'
        '<meta name="twitter:title" content="The Twitter title">'
        '<meta name="twitter:description" content="Tweeted description.">'
        '<meta name="twitter:image" content="https://img.example.com/t.png">'
    )

    assert (metadata.title, metadata.description, metadata.image) == (
        "The Twitter title", "Tweeted description.", "https://img.example.com/t.png",
    )


def test_twitter_image_src_and_property_spelling(metadata_of):
    metadata = metadata_of(
        '<meta property="twitter:title" content="Property spelling">'
        '<meta name="twitter:image:src" content="https://img.example.com/src.png">'
    )

    assert (metadata.title, metadata.image) == ("Property spelling", "https://img.example.com/src.png")


NEWS_ARTICLE = """<script type="application/ld+json">
{"@context": "https://schema.org", "@type": "NewsArticle",
 "headline": "Headline from JSON-LD",
 "description": "JSON-LD description.",
 "image": {"@type": "ImageObject", "url": "https://img.example.com/ld.jpg"},
 "datePublished": "2023-03-04T05:06:07Z",
 "author": {"@type": "Person", "name": "Grace Hopper"},
 "publisher": {"@type": "Organization", "name": "The Daily Example"}}
</script>"""


def test_json_ld_article_comes_before_opengraph(metadata_of):
    metadata = metadata_of(
        NEWS_ARTICLE + '<meta property="og:title" content="OG title">'
        '<meta property="og:site_name" content="OG site">'
        '<meta property="article:published_time" content="2020-01-01T00:00:00Z">'
        '<meta name="author" content="Meta Author">'
    )

    assert metadata.title == "Headline from JSON-LD"
    assert metadata.author == "Grace Hopper"
    assert metadata.site_name == "The Daily Example"
    assert metadata.published_at == "2023-03-04T05:06:07+00:00"
    assert metadata.description == "JSON-LD description."
    assert metadata.image == "https://img.example.com/ld.jpg"


def test_json_ld_graph_with_several_authors(metadata_of):
    metadata = metadata_of(
        """<script type="application/ld+json">
        {"@context": "https://schema.org", "@graph": [
          {"@type": "WebSite", "name": "Not the article"},
          {"@type": ["BlogPosting"], "name": "Graph post",
           "author": [{"@type": "Person", "name": "Ann"}, {"@type": "Person", "name": "Bob"}, "Ann"],
           "datePublished": "2022-02-02"}]}
        </script>"""
    )

    assert (metadata.title, metadata.author, metadata.published_at) == ("Graph post", "Ann, Bob", "2022-02-02")


def test_json_ld_top_level_list_and_string_author(metadata_of):
    metadata = metadata_of(
        """<script type="application/ld+json">
        [{"@type": "BreadcrumbList"}, {"@type": "Article", "headline": "Listed", "author": "Solo Writer"}]
        </script>"""
    )

    assert (metadata.title, metadata.author) == ("Listed", "Solo Writer")


def test_json_ld_headline_wins_when_name_is_the_site(metadata_of):
    metadata = metadata_of(
        "<title>Heavy rain expected across the north all week - Weather Today</title>"
        """<script type="application/ld+json">
        {"@type": "NewsArticle", "name": "Weather Today", "headline": "Heavy rain expected across the north all week"}
        </script>"""
    )

    assert metadata.title == "Heavy rain expected across the north all week"


def test_json_ld_name_wins_over_a_headline_that_is_a_description(metadata_of):
    metadata = metadata_of(
        "<title>Hermitian matrix - Wikipedia</title>"
        """<script type="application/ld+json">
        {"@type": "Article", "name": "Hermitian matrix", "headline": "matrix equal to its conjugate-transpose"}
        </script>"""
    )

    assert metadata.title == "Hermitian matrix"


def test_broken_json_ld_is_ignored(metadata_of):
    metadata = metadata_of(
        '<script type="application/ld+json">{"@type": "Article", "headline": </script>'
        '<meta property="og:title" content="Fallback title">'
    )

    assert metadata.title == "Fallback title"


def test_hostile_json_ld_nesting_is_ignored(metadata_of):
    deep_list = "[" * 100_000
    deep_graph = '{"@graph": ' * 500 + '{"@type": "Article", "headline": "Deep"}' + "}" * 500

    assert metadata_of(f'<script type="application/ld+json">{deep_list}</script><title>Still read</title>').title == (
        "Still read"
    )
    assert metadata_of(f'<script type="application/ld+json">{deep_graph}</script>').title == "Deep"


def test_title_element_without_the_site_name(metadata_of):
    assert metadata_of("<title>How to repair a bicycle tyre | Cycling Weekly</title>").title == (
        "How to repair a bicycle tyre"
    )


def test_title_element_kept_whole_when_the_cut_would_leave_too_little(metadata_of):
    assert metadata_of("<title>Mozilla - Wikipedia</title>").title == "Mozilla - Wikipedia"


def test_an_svg_title_is_not_the_page_title(metadata_of):
    metadata = metadata_of(body='<svg><title>Search icon</title></svg><h1>Only a heading</h1><p>Text.</p>')

    assert metadata.title is None


def test_meta_description_and_author_and_published_time(metadata_of):
    metadata = metadata_of(
        '<meta name="description" content="  Plain   meta description. ">'
        '<meta name="author" content="Jane Doe">'
        '<meta property="article:published_time" content="2021-11-01T10:52:50+01:00">'
    )

    assert metadata.description == "Plain meta description."
    assert metadata.author == "Jane Doe"
    assert metadata.published_at == "2021-11-01T10:52:50+01:00"


def test_dublin_core_and_parsely(metadata_of):
    dublin = metadata_of('<meta name="DC.title" content="DC title"><meta name="DC.creator" content="DC Creator">')
    parsely = metadata_of(
        '<meta name="parsely-title" content="Parsely title">'
        '<meta name="parsely-author" content="Parsely Author">'
        '<meta name="parsely-pub-date" content="2024-04-20T04:20:00.000Z">'
    )

    assert (dublin.title, dublin.author) == ("DC title", "DC Creator")
    assert (parsely.title, parsely.author, parsely.published_at) == (
        "Parsely title", "Parsely Author", "2024-04-20T04:20:00+00:00",
    )


def test_article_author_that_is_a_profile_url_is_not_a_name(metadata_of):
    assert metadata_of('<meta property="article:author" content="https://facebook.com/someone">').author is None


def test_byline_in_the_body_when_no_tag_names_the_author(metadata_of):
    metadata = metadata_of(
        body='<div class="comments"><span class="author">A commenter</span></div>'
        '<article><p class="byline">By <span itemprop="name">Maria Writer</span></p><p>Text.</p></article>'
    )

    assert metadata.author == "Maria Writer"


def test_a_long_byline_candidate_is_not_a_name(metadata_of):
    assert metadata_of(body=f'<div class="author-bio">{"words " * 40}</div>').author is None


def test_unparseable_dates_are_kept_as_written(metadata_of):
    assert metadata_of('<meta property="article:published_time" content="5 January 2020">').published_at == (
        "5 January 2020"
    )


def test_language_from_html_lang_then_xml_lang(metadata_of):
    assert metadata_of(html_attributes=' lang="pt-BR"').lang == "pt-BR"
    assert metadata_of(html_attributes=' xml:lang="nl"').lang == "nl"
    assert metadata_of('<meta property="og:locale" content="fr_FR">').lang is None


@pytest.mark.parametrize(
    ("links", "expected"),
    [
        ('<link rel="icon" href="/i/favicon.png">', "/i/favicon.png"),
        ('<link rel="shortcut icon" href="/old.ico">', "/old.ico"),
        ('<link rel="apple-touch-icon" href="/touch.png"><link rel="icon" href="/real.svg">', "/real.svg"),
        ('<link rel="apple-touch-icon" href="/touch.png">', "/touch.png"),
        ("", "/favicon.ico"),
    ],
)
def test_favicon_sources_and_fallback(metadata_of, server, links, expected):
    assert metadata_of(links).favicon == server.url + expected


def test_relative_urls_resolve_against_the_final_url(metadata_of, server):
    metadata = metadata_of(
        '<meta property="og:image" content="../img/photo.jpg">'
        '<link rel="canonical" href="/canonical/path?x=1">'
        '<link rel="icon" href="icon.png">',
        path="/news/2024/page.html",
    )

    assert metadata.image == server.url + "/news/img/photo.jpg"
    assert metadata.canonical_url == server.url + "/canonical/path?x=1"
    assert metadata.favicon == server.url + "/news/2024/icon.png"


def test_base_href_changes_what_relative_urls_mean(metadata_of):
    metadata = metadata_of(
        '<base href="https://cdn.example.com/assets/">'
        '<meta property="og:image" content="pic.png">'
        '<link rel="icon" href="/favicon.svg">'
    )

    assert metadata.image == "https://cdn.example.com/assets/pic.png"
    assert metadata.favicon == "https://cdn.example.com/favicon.svg"


def test_protocol_relative_kept_and_non_http_urls_dropped(metadata_of):
    kept = metadata_of('<meta property="og:image" content="//cdn.example.com/x.png">')
    dropped = metadata_of(
        '<meta property="og:image" content="javascript:alert(1)">'
        '<meta name="twitter:image" content="data:image/png;base64,AAAA">'
    )

    assert kept.image == "http://cdn.example.com/x.png"
    assert dropped.image is None


def test_empty_and_entity_values(metadata_of):
    metadata = metadata_of(
        '<meta property="og:title" content="   ">'
        '<meta name="twitter:title" content="Fish &amp;amp; chips">'
        '<meta property="og:site_name" content="">'
    )

    assert metadata.title == "Fish & chips"
    assert metadata.site_name is None


def test_accepts_a_parsed_tree_and_leaves_it_whole():
    from chalicelib.links.document import parse_document

    tree = parse_document("<html><head><title>A fine title for a test</title></head><body><p>x</p></body></html>")
    before = len(list(tree.iter()))

    assert extract_metadata(tree, "https://example.com/a").title == "A fine title for a test"
    assert len(list(tree.iter())) == before


def test_a_bad_final_url_gives_no_urls_rather_than_an_error():
    metadata = extract_metadata('<link rel="icon" href="/i.png"><title>T</title>', "not a url")

    assert (metadata.favicon, metadata.canonical_url, metadata.title) == (None, None, "T")


HTMLISH = st.lists(
    st.sampled_from(
        ["<meta property='og:title' content='", "<title>", "</title>", "<link rel=icon href='", "'>", "<base href='",
         "<script type='application/ld+json'>", "</script>", '{"@type": "Article", "author": ', "[", "]", "{", "}",
         "<html lang='", "javascript:", "http://", "//", "\x00", "&amp;", "<p class=byline>", "</p>"]
    )
    | st.text(max_size=20),
    max_size=30,
).map("".join)


@settings(max_examples=60, deadline=None)
@given(page=HTMLISH, url=st.sampled_from(["https://example.com/a/b", "", "ftp://x/", "http://[::1", "nonsense"]))
def test_any_markup_gives_metadata_never_an_error(page, url):
    metadata = extract_metadata(page, url)

    for value in vars(metadata).values():
        assert value is None or (isinstance(value, str) and value == value.strip() and value)
    for link in (metadata.image, metadata.favicon, metadata.canonical_url):
        assert link is None or link.startswith(("http://", "https://"))


@pytest.mark.parametrize(
    ("title", "site_names", "clean"),
    [
        ("New SUVs and electric vehicles highlight L.A. auto show - Los Angeles Times", ["Los Angeles Times"], "New SUVs and electric vehicles highlight L.A. auto show"),
        ("Raptors win again - Sportsnet.ca", [None, "www.sportsnet.ca"], "Raptors win again"),
        ("Senate passes the bill | TheHill", ["The Hill"], "Senate passes the bill"),
        ("BBC News - Obama admits gun laws frustrate him", ["BBC News"], "Obama admits gun laws frustrate him"),
        ("How to Build a Terrarium | eHow | eHow", ["eHow"], "How to Build a Terrarium"),
        ("The latimes: story", ["www.latimes.com"], "The latimes: story"),
        ("Medium-rare steak, done right", ["Medium"], "Medium-rare steak, done right"),
        ("Medium", ["Medium"], "Medium"),
        ("Mozilla - Wikipedia", [None], "Mozilla - Wikipedia"),
    ],
)
def test_title_without_the_site_name_joined_to_it(title, site_names, clean):
    assert title_without_site_name(title, site_names) == clean


def test_the_page_title_loses_its_og_site_name(metadata_of):
    metadata = metadata_of(
        '<meta property="og:title" content="Senate passes the bill | TheHill">'
        '<meta property="og:site_name" content="The Hill">'
    )

    assert (metadata.title, metadata.site_name) == ("Senate passes the bill", "The Hill")


@pytest.mark.parametrize(
    ("byline", "names"),
    [
        ("Associated Press November 19, 2019, 9:02 AM", "Associated Press"),
        ("By Jane Doe | Updated 9:02 AM", "Jane Doe"),
        ("by Lucas Nolan22 Dec 2016651", "Lucas Nolan"),
        ("Written by Rob Ewaschuk Edited by Betsy Beyer", "Rob Ewaschuk, Betsy Beyer"),
        ("Mike Conley on May 5", "Mike Conley"),
        ("Ann, Bob", "Ann, Bob"),
        ("Contributors to Wikimedia projects", "Contributors to Wikimedia projects"),
        ("By", None),
        ("April 28, 2019 at 6:01 am", None),
    ],
)
def test_byline_names_only(byline, names):
    assert byline_names(byline) == names


def test_the_meta_author_is_cleaned(metadata_of):
    assert metadata_of('<meta name="author" content="Associated Press November 19, 2019, 9:02 AM">').author == "Associated Press"
