"""The readable text of a page: readability-lxml's article, as plain text.

readability-lxml 0.9 picks the article (``summary(html_partial=True)``);
this module only turns that HTML into text, keeping every word
readability kept and adding the structure ``text_content()`` loses: a blank
line between blocks (paragraphs, headings, list items, quotes, table rows),
a line break for ``<br>``, preformatted text as it is, and whitespace
collapsed inside each block.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import lxml.html
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


@dataclass(frozen=True)
class ReadableText:
    text: str
    word_count: int
    reading_minutes: int


def readable_text(html_or_tree: str | bytes | lxml.html.HtmlElement) -> ReadableText:
    """The article text of a page, with its word count and reading time.

    Takes the HTML or a tree from ``parse_document``; readability drops
    hidden elements from a tree it is given, so extract metadata first.
    A page readability cannot read gives empty text, not an error.
    """
    tree = html_or_tree if isinstance(html_or_tree, lxml.html.HtmlElement) else parse_document(html_or_tree)
    try:
        article = Document(tree).summary(html_partial=True)
    except Unparseable:
        return ReadableText("", 0, 0)
    return text_stats(html_to_text(article))


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
