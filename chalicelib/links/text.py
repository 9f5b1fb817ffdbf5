"""The readable text of a page: two article extractors, combined.

readability-lxml 0.9 (``summary(html_partial=True)``) and trafilatura
(``extract(output_format="html")``) each pick the article; they fail on
different pages. The combination, measured on real pages (bench_extraction):

- trafilatura's article is the base, as it keeps more of the article and
  less of the page around it on most pages;
- readability's replaces it when readability found over three times as
  much text (trafilatura then kept a fragment: a caption, a teaser);
- paragraphs readability kept that the base lacks are put back, after the
  paragraph readability had before them, when they read as article prose:
  at least 200 characters ending like a sentence. Menus, teasers and
  bylines are shorter or do not end that way.

Either article's HTML is turned into text the same way, adding the
structure ``text_content()`` loses: a blank line between blocks
(paragraphs, headings, list items, quotes, table rows), a line break for
``<br>``, preformatted text as it is, and whitespace collapsed inside
each block.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from dataclasses import dataclass

import lxml.html
import trafilatura
from readability import Document
from readability.readability import Unparseable

from chalicelib.links.document import parse_document

WORDS_PER_MINUTE = 230

_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "tfoot", "thead",
        "tr", "ul",
    }
)
_CELL_TAGS = frozenset({"td", "th"})
# C0 controls other than tab and newline: binary garbage read as text.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"[^\S\n]+")
_WHITESPACE = re.compile(r"\s+")
# Scripts written without spaces between words: each character counts as a word.
_UNSPACED_CHARS = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_WORD = re.compile(rf"[{_UNSPACED_CHARS}]|[^\W{_UNSPACED_CHARS}]+")
# readability's article replaces trafilatura's when it is this many times longer.
_REPLACE_RATIO = 3
# A paragraph only readability kept is put back when it is this long and ends like a sentence.
_MIN_RESTORED_CHARS = 200
_SENTENCE_END = re.compile(r"[.!?…:;。！？][\"'”’»)\]]*$")


@dataclass(frozen=True)
class ReadableText:
    text: str
    word_count: int
    reading_minutes: int


def readable_text(html_or_tree: str | bytes | lxml.html.HtmlElement, url: str | None = None) -> ReadableText:
    """The article text of a page, with its word count and reading time.

    Takes the HTML or a tree from ``parse_document``; readability drops
    hidden elements from a tree it is given, so extract metadata first.
    ``url`` (where the page was found) helps trafilatura skip the site's
    own furniture. A page neither extractor can read gives empty text,
    not an error.
    """
    tree = html_or_tree if isinstance(html_or_tree, lxml.html.HtmlElement) else parse_document(html_or_tree)
    return text_stats(combine_articles(*article_candidates(tree, url)))


def article_candidates(tree: lxml.html.HtmlElement, url: str | None = None) -> tuple[str, str]:
    """The article as trafilatura reads it, and as readability-lxml reads it, as text.

    readability drops hidden elements from ``tree``; trafilatura works on
    its own copy, so it goes first.
    """
    _separate_blocks(tree)
    trafilatura_text = html_to_text(trafilatura.extract(tree, url=url, output_format="html", include_comments=False) or "")
    try:
        readability_text = html_to_text(Document(tree).summary(html_partial=True))
    except Unparseable:
        readability_text = ""
    return trafilatura_text, readability_text


def _separate_blocks(tree: lxml.html.HtmlElement) -> None:
    """Put a space between a block element and an inline element beside it.

    trafilatura flattens the blocks it keeps, so text from adjacent
    elements would run together ("Kristi Noem" in a <span> beside a <div>
    holding "Kristi Lynn Noem"); a browser shows them apart. Only element
    neighbours are separated: text beside a block ("(<div>x</div>)") is
    left as written, which measured better on the development set.
    """
    for element in tree.iter(*_BLOCK_TAGS):
        for neighbour, tail_owner in ((element.getprevious(), element.getprevious()), (element.getnext(), element)):
            if neighbour is None or not isinstance(neighbour.tag, str) or neighbour.tag in _BLOCK_TAGS:
                continue
            tail = tail_owner.tail or ""
            if tail and not tail.isspace():
                continue
            try:
                tail_owner.tail = tail or " "
            except ValueError:  # lxml parses but will not set text with control characters
                continue


def combine_articles(base: str, other: str) -> str:
    """``base`` (trafilatura's text), or ``other`` (readability's) when it
    is over three times as long, with the prose paragraphs only ``other``
    has put back in ``other``'s order; see the module's docstring."""
    if len(other) > _REPLACE_RATIO * len(base):
        base, other = other, base
    blocks = [block for block in base.split("\n\n") if block]
    flat = " ".join(" ".join(block.split()) for block in blocks)
    # Where each block starts in ``flat``, to tell which block a match is in.
    starts = list(itertools.accumulate((len(" ".join(block.split())) + 1 for block in blocks[:-1]), initial=0))
    restored: dict[int, list[str]] = {}
    anchor = -1
    for block in other.split("\n\n"):
        line = " ".join(block.split())
        if not line:
            continue
        position = flat.find(line)
        if position >= 0:
            anchor = bisect.bisect_right(starts, position) - 1
        elif len(line) >= _MIN_RESTORED_CHARS and _SENTENCE_END.search(line):
            restored.setdefault(anchor, []).append(block)
    merged = restored.get(-1, [])
    for index, block in enumerate(blocks):
        merged += [block, *restored.get(index, [])]
    return "\n\n".join(merged)


def text_stats(text: str) -> ReadableText:
    """``text`` with its word count and reading minutes (at least 1 when not empty)."""
    words = count_words(text)
    minutes = max(1, math.ceil(words / WORDS_PER_MINUTE)) if words else 0
    return ReadableText(text, words, minutes)


def count_words(text: str) -> int:
    """Words in ``text``; a Chinese, Japanese or Korean character counts as one."""
    return len(_WORD.findall(text))


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment, blocks separated by a blank line."""
    if not fragment.strip():
        return ""
    # Parsed as a document, not a fragment: when readability finds no
    # article it hands back whole pages, with or without a body.
    document = parse_document(fragment)
    root = document.find("body")
    if root is None:
        root = document
    blocks: list[str] = []
    current: list[str] = []

    def flush() -> None:
        raw = _CONTROL.sub("", "".join(current))
        block = "\n".join(_SPACES.sub(" ", line).strip() for line in raw.split("\n")).strip()
        current.clear()
        if block:
            blocks.append(block)

    def walk(element: lxml.html.HtmlElement) -> None:
        tag = element.tag if isinstance(element.tag, str) else None
        if tag == "head":
            return
        if tag == "br":
            current.append("\n")
        elif tag == "pre":
            flush()
            # Preformatted text keeps its spaces and lines: it is often code.
            preformatted = _CONTROL.sub("", element.text_content()).strip("\n")
            if preformatted.strip():
                blocks.append(preformatted)
        elif tag is not None:
            block = tag in _BLOCK_TAGS
            if block:
                flush()
            elif tag in _CELL_TAGS:
                current.append(" ")
            if element.text:
                current.append(_WHITESPACE.sub(" ", element.text))
            for child in element:
                walk(child)
            if block:
                flush()
            elif tag in _CELL_TAGS:
                current.append(" ")
        # A comment's own text is not page text, but what follows it is.
        if element.tail:
            current.append(_WHITESPACE.sub(" ", element.tail))

    walk(root)
    flush()
    return "\n\n".join(blocks)
