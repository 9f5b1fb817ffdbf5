"""Summaries of a page: an interface, the offline default, and the per-org choice.

``ExtractiveSummarizer`` picks a few of the page's own sentences, offline
and deterministic. A hosted model (``chalicelib.links.bedrock``) is an
option per org; whatever it does, it falls back to the extractive one.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Protocol

from chalicelib.links.sentences import shorten, split_sentences

MAX_SUMMARY_CHARS = 400

# Function words say nothing about what a page is about; without them the
# frequent words are the topic's words. English only: in other languages
# the length filter below does most of the same work.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having he
    her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
    now of off on once only or other our ours ourselves out over own same she should so some such than that the
    their theirs them themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves said says one two
    new like get got make made many much may might must us via per""".split()
)
_WORD = re.compile(r"\w+")
_MIN_SENTENCE_WORDS = 6
# Articles put their point first: the start is enough to find it, and it
# bounds the cost on very long pages.
_SCAN_CHARS = 20_000
# A short line without closing punctuation is a heading or a caption, not a sentence.
_ENDS_SENTENCE = re.compile(r"[.!?…:;。！？][\"'”’)\]]*$")
_MAX_HEADING_WORDS = 15
_MAX_SENTENCES = 3


@dataclass(frozen=True)
class Summary:
    """A summary and who wrote it.

    ``model`` is the summarizer that wrote ``text`` (``extractive`` or
    ``bedrock:<model id>``); when the org's choice failed and the
    extractive one stood in, ``fallback_from`` names the choice and
    ``fallback_reason`` says what went wrong.
    """

    text: str
    model: str = "extractive"
    fallback_from: str | None = None
    fallback_reason: str | None = None


class Summarizer(Protocol):
    def summary(self, title: str | None, text: str) -> Summary:
        """A short summary of the page (empty text when there is nothing to
        summarize) and the model that wrote it."""
        ...


class ExtractiveSummarizer:
    """Up to three of the page's sentences, at most 400 characters in all.

    Never the title (nor a sentence starting with it: the title is cut
    off), never one sentence twice, never a sentence starting in lower
    case (the tail of an abbreviation the split missed).

    A sentence scores by how frequent its words are in the page (a proxy
    for the topic), with a bonus for words of the title and for coming
    early (articles put the point first). The chosen sentences keep page
    order. Same input, same output.
    """

    def __init__(self, max_chars: int = MAX_SUMMARY_CHARS, max_sentences: int = _MAX_SENTENCES):
        self.max_chars = max_chars
        self.max_sentences = max_sentences

    def summary(self, title: str | None, text: str) -> Summary:
        return Summary(self.summarize(title, text))

    def summarize(self, title: str | None, text: str) -> str:
        """The summary's text."""
        sentences = _sentences_beside(title, split_sentences(text.lstrip()[:_SCAN_CHARS]))
        if not sentences:
            return ""
        # Headings and captions joined to sentences read as glued text, and
        # a line starting in lower case is the rest of something left out.
        prose = [s for s in sentences if not _heading(s) and not s[0].islower()] or sentences
        whole = " ".join(prose)
        if len(whole) <= self.max_chars:
            return whole
        content = [_content_words(s) for s in sentences]
        frequencies = Counter(w for words in content for w in words)
        title_words = set(_content_words(title or ""))
        top = max(frequencies.values(), default=1)

        def score(index: int) -> float:
            sentence = sentences[index]
            words = content[index]
            # A sentence starting in lower case is the end of one the split got wrong.
            if len(sentence.split()) < _MIN_SENTENCE_WORDS or not words or sentence[0].islower():
                return 0.0
            if _heading(sentence):
                return 0.0
            topical = sum(frequencies[w] / top for w in words) / len(words) ** 0.5
            titled = 0.5 * sum(1 for w in set(words) if w in title_words)
            early = 1.0 / (1 + index / 3)
            # A sentence ending in a colon introduces something the summary will not show.
            dangling = 0.75 if sentence.endswith(":") else 1.0
            return (topical + titled + early) * dangling

        scores = [score(i) for i in range(len(sentences))]
        ranked = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))
        chosen: list[int] = []
        used = 0
        for index in ranked:
            if len(chosen) == self.max_sentences or scores[index] == 0.0:
                break
            extra = len(sentences[index]) + (1 if chosen else 0)
            if used + extra <= self.max_chars:
                chosen.append(index)
                used += extra
        if not chosen:
            return shorten(sentences[ranked[0]], self.max_chars)
        return " ".join(sentences[i] for i in sorted(chosen))


def _sentences_beside(title: str | None, sentences: list[str]) -> list[str]:
    """``sentences`` without the title and without repeats.

    A sentence that is the title, or a piece of it, goes; one that starts
    with the title (a heading run into the first paragraph) loses it,
    unless what is left does not start like a sentence (then the title
    was only the sentence's first words); a sentence seen before goes.
    """
    title_key = " ".join((title or "").split()).casefold()
    seen: set[str] = set()
    kept = []
    for sentence in sentences:
        if title_key and sentence[: len(title_key)].casefold() == title_key:
            rest = sentence[len(title_key) :].lstrip(" :|-–—")
            if _starts_like_a_sentence(rest):
                sentence = rest
        key = sentence.casefold()
        if not key or key in seen or (title_key and key in title_key):
            continue
        seen.add(key)
        kept.append(sentence)
    return kept


def _heading(line: str) -> bool:
    """A short line without closing punctuation: a heading or a caption, not a sentence."""
    return not _ENDS_SENTENCE.search(line) and len(line.split()) < _MAX_HEADING_WORDS


def _starts_like_a_sentence(text: str) -> bool:
    first = text[:1]
    return first.isdigit() or (first.isalpha() and not first.islower()) or first in "\"'“‘«„([¿¡"


def _content_words(sentence: str) -> list[str]:
    return [w for w in _WORD.findall(sentence.lower()) if len(w) > 2 and w not in STOPWORDS and not w.isdigit()]


def summarizer_from_setting(
    setting: str | None,
    *,
    bedrock_client: Callable[[float], object] | None = None,
    timeout: float = 10.0,
) -> Summarizer:
    """The summarizer an org's setting names.

    ``None``, ``""`` or ``"extractive"``: the offline ExtractiveSummarizer.
    ``"bedrock:<model id>"``: a BedrockSummarizer with that model (model
    ids contain colons; everything after the first one is the id), its
    client made by ``bedrock_client(timeout)`` (by default a boto3
    bedrock-runtime client from the standard AWS settings). Anything else
    is refused with ValueError, so a typo does not silently change what
    an org gets.
    """
    name, _, model_id = (setting or "extractive").strip().partition(":")
    if name == "extractive" and not model_id:
        return ExtractiveSummarizer()
    if name == "bedrock" and model_id.strip():
        from chalicelib.links.bedrock import BedrockSummarizer, make_bedrock_client

        client = (bedrock_client or make_bedrock_client)(timeout)
        return BedrockSummarizer(client, model_id.strip(), timeout=timeout)
    raise ValueError(f"unknown summarizer setting {setting!r}: use 'extractive' or 'bedrock:<model id>'")
