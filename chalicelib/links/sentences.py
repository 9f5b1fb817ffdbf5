"""Sentences of a text, for summaries and for cutting a long description short.

A sentence ends at . ! ? … (with closing quotes or brackets) before a
space, at 。！？, or at a line break (a heading, a caption, a block). None
of the first ends a sentence when the next word starts in lower case
("Walt Disney Co. executive Kevin Mayer", '"Really?" she asked'), nor a
full stop that closes an
abbreviation or an initial ("Mr. Smith", "L.A. Times", "John F. Kennedy").
"""

from __future__ import annotations

import re

# Where a sentence may end; whether it does is decided by what follows.
_END = re.compile(r"[.!?…][\"'”’»)\]]*(?=\s)|[。！？][\"'”’」』)\]]*|\n")
# Common abbreviations before a full stop that does not end the sentence,
# and single letters (initials, "U.S.", "L.A.").
_ABBREVIATION = re.compile(
    r"(?:^|[\s(.])(?:mr|mrs|ms|dr|prof|st|co|corp|inc|ltd|jr|sr|vs|gen|gov|sen|rep|capt|col|lt|sgt|fig|no|approx|"
    r"e\.g|i\.e|[^\W\d_])\.$",
    re.I,
)


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, whitespace collapsed, empty ones left out."""
    sentences: list[str] = []
    start = 0
    for match in _END.finditer(text):
        mark = match.group()[0]
        if mark in ".!?…" and text[match.end() :].lstrip()[:1].islower():
            continue
        if mark == "." and _ABBREVIATION.search(text[start : match.start() + 1]):
            continue
        sentences.append(" ".join(text[start : match.end()].split()))
        start = match.end()
    sentences.append(" ".join(text[start:].split()))
    return [s for s in sentences if s]


def shorten(sentence: str, max_chars: int) -> str:
    """``sentence`` cut at a word boundary to fit ``max_chars`` with an ellipsis."""
    if len(sentence) <= max_chars:
        return sentence
    cut = sentence[: max_chars - 1]
    if " " in cut:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:") + "…"


def trim_to_sentences(text: str, max_chars: int) -> str:
    """``text`` if it fits, else as many of its first sentences as fit.

    When even the first sentence is too long it is cut at a word with an
    ellipsis.
    """
    flat = " ".join(text.split())
    if len(flat) <= max_chars:
        return flat
    kept: list[str] = []
    used = 0
    for sentence in split_sentences(text):
        extra = len(sentence) + (1 if kept else 0)
        if used + extra > max_chars:
            break
        kept.append(sentence)
        used += extra
    return " ".join(kept) if kept else shorten(flat, max_chars)
