"""Page metadata from the markup: OpenGraph, Twitter cards, JSON-LD, plain HTML.

Each field is taken from the first source, in a fixed order, that has a
usable value; the orders were chosen by measuring agreement on real pages
and are written down, with the figures, in docs/decisions.md ("Link
extraction"). In short: what the page states about its article in JSON-LD
(an Article, NewsArticle, BlogPosting... object, in @graph or lists too)
comes first, then meta tags (Dublin Core, OpenGraph, Twitter, Parse.ly),
then plain HTML (<title> without the site name, a byline in the body).
Whatever the source, a title loses a site name joined to it ("… | TheHill",
from og:site_name, the publisher, application-name or the host) and a
byline keeps the names only (no "By", no dates or times).
"""

from __future__ import annotations

import html as html_entities
import json
import re
from datetime import datetime
from typing import Any, Iterator
from urllib.parse import urljoin, urlsplit

import lxml.html

from chalicelib.links.document import parse_document
from chalicelib.links.outcome import PageMetadata
from chalicelib.links.sentences import trim_to_sentences
from chalicelib.links.summary import MAX_SUMMARY_CHARS

# schema.org types whose headline, author and dates describe the page's own article.
_ARTICLE_TYPES = frozenset(
    t.lower()
    for t in (
        "Article", "NewsArticle", "BlogPosting", "Report", "Reportage",
        "AnalysisNewsArticle", "OpinionNewsArticle", "ReviewNewsArticle",
        "BackgroundNewsArticle", "AskPublicNewsArticle", "ReportageNewsArticle",
        "SatiricalArticle", "ScholarlyArticle", "MedicalScholarlyArticle",
        "TechArticle", "APIReference", "SocialMediaPosting", "LiveBlogPosting",
        "DiscussionForumPosting", "AdvertiserContentArticle",
    )
)

# A byline in the body: the same cues Readability uses (rel=author,
# itemprop=author, and class or id names).
_BYLINE_HINT = re.compile(r"byline|author|dateline|writtenby|p-author", re.I)
_MAX_BYLINE_CHARS = 100
# Page furniture that holds no byline of the article (Readability's list).
_UNLIKELY_CANDIDATE = re.compile(
    r"-ad-|ai2html|banner|breadcrumbs|combx|comment|community|cover-wrap|disqus|extra|footer|gdpr|header|legends|"
    r"menu|related|remark|replies|rss|shoutbox|sidebar|skyscraper|social|sponsor|supplemental|ad-break|agegate|"
    r"pagination|pager|popup|yom-remote",
    re.I,
)
_MAYBE_CANDIDATE = re.compile(r"and|article|body|column|content|main|shadow", re.I)
_UNLIKELY_ROLES = frozenset({"menu", "menubar", "complementary", "navigation", "alert", "alertdialog", "dialog"})
# Separators between the article's title and the site's name in <title>.
_TITLE_SEPARATOR = re.compile(r" [|\-–—\\/>»] ")
_WHITESPACE = re.compile(r"\s+")
# A site name joined to a title: "Title | Site", "Site - Title", "Title :: Site".
# A hyphen or slash only counts with spaces around it ("Spider-Man" is one word).
_SITE_JOINER = r"(?:\s+[|\-–—·•»/\\]\s+|\s*[|·•»]\s*|\s*::\s*|:\s+)"
# Where the names in a byline stop: a digit (a date, a time), "Month 5", a
# word that starts a date ("Updated", "on"), or a separator.
_BYLINE_END = re.compile(
    r"\d|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d"
    r"|\b(?:updated|published|posted|on)\b|\s[|•·—–-]\s|\s[|•·]",
    re.I,
)
_BYLINE_PREFIX = re.compile(r"^\s*(?:(?:written|posted|reported|words|text)\s+)?by\b\s*:?\s*", re.I)
# A second role in one byline: "Rob Ewaschuk Edited by Betsy Beyer".
_BYLINE_ROLE = re.compile(r"\s+(?:edited|reviewed|photos?|illustrations?|additional reporting|and)\s+by\s+", re.I)


def extract_metadata(html_or_tree: str | bytes | lxml.html.HtmlElement, url: str) -> PageMetadata:
    """Read a page's metadata; ``url`` is the final URL (after redirects).

    Accepts the HTML text or a tree from ``parse_document`` (the pipeline
    parses once and hands the same tree to the text step afterwards, so
    this function must not change the tree). Relative URLs are made
    absolute against ``url`` and the page's ``<base href>``; only http(s)
    results are kept. Never raises for a bad page: missing fields are None.
    """
    tree = html_or_tree if isinstance(html_or_tree, lxml.html.HtmlElement) else parse_document(html_or_tree)
    base = _base_url(tree, url)
    meta = _meta_values(tree)
    # An icon's <svg><title> is no page title.
    title_tag = _first(*(t.text_content() for t in tree.xpath("//title[not(ancestor::svg)]")[:1]))
    page_title = _title_without_site(title_tag, tree) if title_tag else None
    ld = _jsonld_article(tree, page_title)

    title = _first(
        ld.get("title"),
        meta.get("dc:title"),
        meta.get("dcterms:title"),
        meta.get("og:title"),
        meta.get("title"),
        meta.get("twitter:title"),
        meta.get("parsely-title"),
        page_title,
    )
    author = _first(
        ld.get("author"),
        meta.get("dc:creator"),
        meta.get("dcterms:creator"),
        meta.get("author"),
        meta.get("parsely-author"),
        meta.get("article:author") if not _looks_like_url(meta.get("article:author")) else None,
    )
    if author is None:
        # Walking the body costs more than everything else here together: only when needed.
        author = _byline_in_body(tree)
    site_name = _first(ld.get("site_name"), meta.get("og:site_name"))
    return PageMetadata(
        title=title_without_site_name(title, [site_name, meta.get("application-name"), _host(url)]),
        description=_description(
            meta.get("og:description"),
            meta.get("description"),
            meta.get("twitter:description"),
            ld.get("description"),
            meta.get("dc:description"),
            meta.get("dcterms:description"),
        ),
        image=_first_url(
            base,
            meta.get("og:image"),
            meta.get("og:image:url"),
            meta.get("og:image:secure_url"),
            meta.get("twitter:image"),
            meta.get("twitter:image:src"),
            ld.get("image"),
            _link_href(tree, "image_src"),
            meta.get("image"),
            meta.get("thumbnailurl"),
        ),
        site_name=site_name,
        favicon=_favicon(tree, base, url),
        canonical_url=_first_url(base, _link_href(tree, "canonical"), meta.get("og:url"), ld.get("url")) or _http_url(url),
        author=byline_names(author),
        published_at=_timestamp(
            _first(
                ld.get("published_at"),
                meta.get("article:published_time"),
                meta.get("parsely-pub-date"),
            )
        ),
        lang=_lang(tree),
    )


def _text(value: Any) -> str | None:
    """A clean one-line string, or None for anything empty or not a string."""
    if not isinstance(value, str):
        return None
    cleaned = _WHITESPACE.sub(" ", html_entities.unescape(value)).strip()
    return cleaned or None


def _first(*values: str | None) -> str | None:
    for value in values:
        cleaned = _text(value)
        if cleaned:
            return cleaned
    return None


def _description(*values: str | None) -> str | None:
    """The first description, cut to whole sentences within 400 characters
    (some sites put the whole article in it)."""
    description = _first(*values)
    return trim_to_sentences(description, MAX_SUMMARY_CHARS) if description else None


def _http_url(value: str | None, base: str | None = None) -> str | None:
    """``value`` made absolute against ``base``; None unless it is http(s)."""
    value = _text(value)
    if not value:
        return None
    try:
        absolute = urljoin(base, value) if base else value
        parts = urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return absolute


def _first_url(base: str | None, *values: str | None) -> str | None:
    for value in values:
        absolute = _http_url(value, base)
        if absolute:
            return absolute
    return None


def _host(url: str) -> str | None:
    page_url = _http_url(url)
    return urlsplit(page_url).hostname if page_url else None


def _looks_like_url(value: str | None) -> bool:
    return bool(value) and re.match(r"\s*(https?:)?//", value) is not None


def _base_url(tree: lxml.html.HtmlElement, url: str) -> str | None:
    """The URL relative links resolve against: <base href> over the final URL."""
    page_url = _http_url(url)
    for href in tree.xpath("//base/@href"):
        declared = _http_url(href, page_url)
        if declared:
            return declared
    return page_url


def _meta_values(tree: lxml.html.HtmlElement) -> dict[str, str]:
    """Every <meta> content by its lower-cased name, property or itemprop.

    The first non-empty value wins, as pages put the main tag before
    per-image or per-locale repeats (og:image, og:locale:alternate).
    Dublin Core's ``DC.title`` spelling is folded into ``dc:title``.
    """
    values: dict[str, str] = {}
    for element in tree.iter("meta"):
        content = _text(element.get("content"))
        if not content:
            continue
        keys = (element.get("property") or "").split()
        keys += [element.get("name") or "", element.get("itemprop") or ""]
        for key in keys:
            key = key.strip().lower()
            if key.startswith(("dc.", "dcterms.")):
                key = key.replace(".", ":", 1)
            if key:
                values.setdefault(key, content)
    return values


def _link_href(tree: lxml.html.HtmlElement, rel: str) -> str | None:
    for element in tree.iter("link"):
        if rel in (element.get("rel") or "").lower().split() and element.get("href"):
            return element.get("href")
    return None


def _favicon(tree: lxml.html.HtmlElement, base: str | None, url: str) -> str | None:
    """The declared icon (rel icon, then apple-touch-icon), else /favicon.ico."""
    icons: list[tuple[int, str]] = []
    for element in tree.iter("link"):
        rels = (element.get("rel") or "").lower().split()
        if "icon" in rels:
            rank = 0
        elif "apple-touch-icon" in rels or "apple-touch-icon-precomposed" in rels:
            rank = 1
        else:
            continue
        href = _http_url(element.get("href"), base)
        if href:
            icons.append((rank, href))
    if icons:
        return min(icons, key=lambda icon: icon[0])[1]
    page_url = _http_url(url)
    if not page_url:
        return None
    parts = urlsplit(page_url)
    return f"{parts.scheme}://{parts.netloc}/favicon.ico"


def _lang(tree: lxml.html.HtmlElement) -> str | None:
    """<html lang> (or xml:lang): what the page declares for its own text.

    Other hints (og:locale, Content-Language) describe the site rather than
    the page and are often a CMS default, so they are not used.
    """
    root = tree.getroottree().getroot()
    return _text(root.get("lang")) or _text(root.get("xml:lang"))


def _words(text: str) -> int:
    return len(text.split())


def _title_without_site(title: str, tree: lxml.html.HtmlElement) -> str:
    """The <title> without a site name joined to it ("Article | Site").

    Cuts the last segment (or, if that leaves under 3 words, the first);
    after a colon keeps the part after it. Keeps the whole title when a
    heading repeats it, or when the cut leaves 4 words or fewer, because
    a short remainder is more often half a title than a whole one.
    """
    separators = _TITLE_SEPARATOR.findall(title)
    hierarchical = any(s.strip() in "\\/>»" for s in separators)
    candidate = title
    if separators:
        candidate = title[: title.rfind(separators[-1])]
        if _words(candidate) < 3:
            candidate = title[title.find(separators[0]) + len(separators[0]) :]
    elif ": " in title:
        headings = {_text(h.text_content()) for h in tree.iter("h1", "h2")}
        if title not in headings:
            candidate = title.rsplit(": ", 1)[1]
            if _words(candidate) < 3:
                candidate = title.split(": ", 1)[1]
            elif _words(title.split(": ", 1)[0]) > 5:
                candidate = title
    elif not 15 <= len(title) <= 150:
        h1s = list(tree.iter("h1"))
        if len(h1s) == 1:
            candidate = _text(h1s[0].text_content()) or title
    candidate = candidate.strip()
    words_without_separators = _words(_TITLE_SEPARATOR.sub(" ", title))
    if _words(candidate) <= 4 and (not hierarchical or _words(candidate) != words_without_separators - 1):
        return title
    return candidate


def title_without_site_name(title: str | None, site_names: list[str | None]) -> str | None:
    """``title`` without a site name joined to its start or end by a separator.

    A site name matches ignoring case, spaces and punctuation, so "TheHill"
    is "The Hill" and "sportsnet.ca" is "Sportsnet.ca". A host name also
    matches without "www." and without its last label ("latimes" for
    "www.latimes.com"). The title is kept whole when nothing would remain.
    """
    if not title:
        return title
    keys = set()
    for name in filter(None, site_names):
        name = name.lower().removeprefix("www.")
        keys.add(_letters(name))
        if "." in name:
            keys.add(_letters(name.rsplit(".", 1)[0]))
    keys.discard("")
    for pattern in (rf"^(?P<site>.+?){_SITE_JOINER}(?P<rest>.+)$", rf"^(?P<rest>.+){_SITE_JOINER}(?P<site>.+?)$"):
        for match in re.finditer(pattern, title):
            rest = match.group("rest").strip()
            if _letters(match.group("site")) in keys and _letters(rest):
                return title_without_site_name(rest, site_names)
    return title


def _letters(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalnum())


def byline_names(author: str | None) -> str | None:
    """The names in a byline, without "By", dates, times and what follows them.

    "By Jane Doe | Updated 9:02 AM" gives "Jane Doe";
    "Associated Press November 19, 2019, 9:02 AM" gives "Associated Press".
    A byline with no name left is None.
    """
    if not author:
        return author
    names = _BYLINE_PREFIX.sub("", author)
    names = _BYLINE_ROLE.sub(", ", names)
    end = _BYLINE_END.search(names)
    if end:
        names = names[: end.start()]
    names = _text(names.strip(" ,;:|•·-–—/")) if names else None
    return names


def _byline_in_body(tree: lxml.html.HtmlElement) -> str | None:
    """A short author line in the body, found the way Readability finds it.

    Walks the body in document order, skipping hidden subtrees and the
    page furniture (menus, sidebars, comments) Readability drops before it
    looks; the first element marked as a byline (rel=author,
    itemprop=author, or a class or id naming one) with under 100
    characters of text wins, or the name inside it when it marks one.
    """
    body = tree.find(".//body")
    stack = [body] if body is not None else []
    while stack:
        element = stack.pop()
        if not isinstance(element.tag, str) or _hidden(element):
            continue
        hints = " ".join(filter(None, (element.get("class"), element.get("id"))))
        marked = (
            (element.get("rel") or "").strip().lower() == "author"
            or "author" in (element.get("itemprop") or "")
            or _BYLINE_HINT.search(hints) is not None
        )
        raw = element.text_content().strip()
        if marked and 0 < len(raw) < _MAX_BYLINE_CHARS:
            names = element.xpath(".//*[contains(@itemprop, 'name')]")
            return _text((names[0] if names else element).text_content())
        if _unlikely(element, hints):
            continue
        stack.extend(reversed(element))
    return None


def _hidden(element: lxml.html.HtmlElement) -> bool:
    style = (element.get("style") or "").replace(" ", "").lower()
    return (
        element.get("hidden") is not None
        or element.get("aria-hidden") == "true"
        or "display:none" in style
        or "visibility:hidden" in style
    )


def _unlikely(element: lxml.html.HtmlElement, hints: str) -> bool:
    if element.tag in ("body", "a"):
        return False
    if element.get("role") in _UNLIKELY_ROLES:
        return True
    return (
        _UNLIKELY_CANDIDATE.search(hints) is not None
        and _MAYBE_CANDIDATE.search(hints) is None
        and not any(a.tag in ("table", "code") for a in element.iterancestors())
    )


def _timestamp(value: str | None) -> str | None:
    """ISO 8601 when the value parses as a date or time; as given otherwise."""
    if not value:
        return None
    candidate = value.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        return value
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return value.strip()
    return parsed.isoformat()


def _jsonld_objects(tree: lxml.html.HtmlElement) -> Iterator[dict]:
    """Every object in the page's JSON-LD blocks, lists and @graph unrolled."""
    for script in tree.xpath("//script[@type]"):
        if script.get("type", "").strip().lower() != "application/ld+json":
            continue
        source = (script.text or "").strip()
        # Some CMSs wrap the JSON in an HTML comment or CDATA.
        source = re.sub(r"^\s*(<!--|<!\[CDATA\[)|(-->|\]\]>)\s*$", "", source)
        try:
            data = json.loads(source, strict=False)
        except (ValueError, RecursionError):
            continue
        yield from _unroll(data)


def _unroll(data: Any) -> Iterator[dict]:
    """Objects in document order; iterative, as hostile JSON nests deeply."""
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(reversed(item))
        elif isinstance(item, dict):
            yield item
            pending.append(item.get("@graph"))


def _types(obj: dict) -> set[str]:
    declared = obj.get("@type")
    declared = declared if isinstance(declared, list) else [declared]
    return {t.lower().rsplit("/", 1)[-1] for t in declared if isinstance(t, str)}


def _names(value: Any) -> list[str]:
    """Names from a schema.org person or organization field, in order."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return _names(value.get("name"))
    if isinstance(value, list):
        return [name for item in value for name in _names(item)]
    return []


def _image_url(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _image_url(value.get("url") or value.get("contentUrl"))
    if isinstance(value, list) and value:
        return _image_url(value[0])
    return None


def _jsonld_article(tree: lxml.html.HtmlElement, page_title: str | None) -> dict[str, str | None]:
    """Fields of the first article-typed JSON-LD object, if any."""
    article = next((o for o in _jsonld_objects(tree) if _types(o) & _ARTICLE_TYPES), None)
    if article is None:
        return {}
    authors = [name for name in (_text(n) for n in _names(article.get("author"))) if name]
    publisher = article.get("publisher")
    return {
        "title": _article_title(_text(article.get("name")), _text(article.get("headline")), page_title),
        "author": ", ".join(dict.fromkeys(authors)) or None,
        "description": article.get("description") if isinstance(article.get("description"), str) else None,
        "site_name": _first(*_names(publisher)) if isinstance(publisher, (dict, list)) else None,
        "published_at": article.get("datePublished") if isinstance(article.get("datePublished"), str) else None,
        "image": _image_url(article.get("image")),
        "url": article.get("url") if isinstance(article.get("url"), str) else None,
    }


def _article_title(name: str | None, headline: str | None, page_title: str | None) -> str | None:
    """``name`` unless only ``headline`` covers the page's <title>.

    Some sites put their own name in ``name`` and the article's title in
    ``headline``, others a description in ``headline``; the <title> tells
    which of the two is the title.
    """
    if name and headline and name != headline and page_title:
        if _coverage(headline, page_title) > 0.75 and _coverage(name, page_title) <= 0.75:
            return headline
    return name or headline


def _coverage(candidate: str, title: str) -> float:
    """Share of ``title``'s text made of words that ``candidate`` has too."""
    known = set(re.findall(r"\w+", candidate.lower()))
    words = re.findall(r"\w+", title.lower())
    if not words:
        return 0.0
    unknown = " ".join(w for w in words if w not in known)
    return 1 - len(unknown) / len(" ".join(words))
