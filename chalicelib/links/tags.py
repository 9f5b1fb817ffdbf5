"""Which of an org's existing tags fit a page, and which new tags would.

A tag fits when its name shows up in the page: in the title (the strongest
sign), in the URL, or often enough in the text. Names and page words are
compared as normalized words (case folded, split at hyphens, underscores,
dots and camelCase, plurals folded to the singular), so "Machine-Learning"
matches "machine learning" and "APIs" matches "API". Title and URL words
also match approximately (difflib), for spelling variants such as
"javascript" / "java-script" / "javscript"; the text is matched exactly,
because a long text has near-misses of almost any word.

New tags (an org's choice) are the page's keyphrases: words and two-word
phrases of the title, the URL and the text, without function words,
scored like existing tags. A keyphrase that is an existing tag under
another spelling (case, plural, hyphens, a near spelling) suggests that
tag instead, so the tag list stays clean. Words that say nothing about one
page are left out: the words of the web page's frame ("page", "home",
"read more", "photo credit"), and the org's common words, those on many of
its recent pages (``common_words``: "using", "data", "lorem ipsum" in an
org of test pages), since a tag on many of its links sorts little.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections import Counter
from typing import Iterable
from urllib.parse import unquote, urlsplit

from chalicelib.links.outcome import NewTagSuggestion, TagChoice, TagSuggestion
from chalicelib.links.summary import STOPWORDS

MAX_SUGGESTIONS = 3
# Below this a tag does not fit: one passing mention in a long text is not enough.
THRESHOLD = 0.5
# How much each place counts when the whole name is found there.
_TITLE_WEIGHT = 0.9
_URL_WEIGHT = 0.7
_TEXT_WEIGHT_PER_MENTION = 0.15
_TEXT_MAX_WEIGHT = 0.6
# Approximate matches below this similarity are different words.
_FUZZY_CUTOFF = 0.85
# Enough text to know what a page is about; bounds the cost on huge pages.
_TEXT_SCAN_CHARS = 20_000

_WORD = re.compile(r"[^\W_]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
# Common words of URLs that are not about the page.
_URL_NOISE = frozenset({"http", "https", "www", "com", "org", "net", "html", "htm", "php", "index", "amp"})
MAX_NEW_TAGS = 3
# A keyphrase must be a word of this many letters at least, and not a number.
_MIN_KEYPHRASE_LETTERS = 4
# A phrase of two words counts from this many mentions in the text.
_MIN_PHRASE_MENTIONS = 2
# The words of a web page's frame rather than its article (navigation,
# sharing, credits, comments), normalized as keyphrases are. Never a new
# tag, even before an org has pages enough to find its common words. Kept
# to words no topic is named by; the org's common words catch the rest.
_WEB_PAGE_FRAME = frozenset("""
    page home homepage website site article post blog read click share comment reply login signup
    subscribe subscriber newsletter menu link photo caption credit advertisement sponsored skip
    loading follow related previous next
""".split())
# A word on at least this share of the org's recent pages is its common
# vocabulary. On the 65 pages of the readability test set, a share of 0.15
# (10 pages) parts "using", "data", "page", "test" (0.17 to 0.34) from
# topics the set has several pages on, "game" and "google" (0.14).
COMMON_SHARE = 0.15
# Below this many pages the shares say more about a few pages than the org.
MIN_PAGES_FOR_COMMON = 20


def suggest_tags(tags: tuple[TagChoice, ...], title: str | None, text: str | None, url: str | None) -> tuple[TagSuggestion, ...]:
    """Up to three of ``tags`` that fit the page, best first, scored 0..1.

    Empty when none reaches the threshold. The score combines the places
    where the name was found (title 0.9, URL 0.7, text 0.15 per mention up
    to 0.6) as independent signs: 1 - (1 - a)(1 - b)(1 - c); an approximate
    match counts in proportion to its similarity. Ties go to the tag
    listed first by name, so the answer is deterministic.
    """
    title_words = _words(title or "")
    url_words = [w for w in _words(_url_text(url or "")) if w not in _URL_NOISE]
    text_words = _words((text or "")[:_TEXT_SCAN_CHARS])
    text_counts = Counter(text_words)
    scored: list[tuple[float, str, str]] = []
    for tag in tags:
        name = _words(tag.name)
        if not name:
            continue
        title_match = _fuzzy_match(name, title_words)
        url_match = _fuzzy_match(name, url_words)
        mentions = _mentions(name, text_words, text_counts)
        text_weight = min(_TEXT_MAX_WEIGHT, _TEXT_WEIGHT_PER_MENTION * mentions)
        miss = (1 - _TITLE_WEIGHT * title_match) * (1 - _URL_WEIGHT * url_match) * (1 - text_weight)
        score = round(1 - miss, 3)
        if score >= THRESHOLD:
            scored.append((score, tag.name.casefold(), tag.id))
    scored.sort(key=lambda item: (-item[0], item[1], item[2]))
    return tuple(TagSuggestion(tag_id=tag_id, score=score) for score, _, tag_id in scored[:MAX_SUGGESTIONS])


def _words(text: str) -> list[str]:
    """Normalized words: camelCase split, case folded, plural folded."""
    return [_singular(w) for w in _WORD.findall(_CAMEL.sub(" ", text).casefold())]


@functools.lru_cache(maxsize=65536)
def _singular(word: str) -> str:
    """A rough English singular; only needs to map both forms to one key."""
    if len(word) <= 3 or word.endswith(("ss", "us")) or (word.endswith("is") and len(word) >= 5):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes", "sses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def _url_text(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return " ".join(unquote(p) for p in (parts.hostname or "", parts.path, parts.query))


def _mentions(name: list[str], words: list[str], counts: Counter) -> int:
    """How often the name's words occur in a row in ``words``."""
    if counts[name[0]] == 0:
        return 0
    if len(name) == 1:
        return counts[name[0]]
    size = len(name)
    return sum(1 for i, word in enumerate(words) if word == name[0] and words[i : i + size] == name)


def _fuzzy_match(name: list[str], words: list[str]) -> float:
    """How well the tag's words appear, in order and adjacent, in ``words`` (0..1).

    Also tries the name's words run together ("java-script" against
    "javascript"), since hyphens and spaces in names vary.
    """
    best = 0.0
    candidates = [name] if len(name) == 1 else [name, ["".join(name)]]
    for candidate in candidates:
        size = len(candidate)
        for start in range(len(words) - size + 1):
            window = words[start : start + size]
            similarity = min(_similar(a, b) for a, b in zip(candidate, window))
            best = max(best, similarity)
            if best == 1.0:
                return best
    # Words run together on the page ("machinelearning" in a URL).
    if len(name) > 1:
        joined = "".join(name)
        best = max([best] + [_similar(joined, w) for w in words])
    return best


def _similar(a: str, b: str) -> float:
    if a == b:
        return 1.0
    # Short words are distinct even one letter apart ("cat" / "car").
    if min(len(a), len(b)) < 5:
        return 0.0
    matcher = difflib.SequenceMatcher(None, a, b)
    # The quick upper bounds rule out most pairs without the full comparison.
    if matcher.real_quick_ratio() < _FUZZY_CUTOFF or matcher.quick_ratio() < _FUZZY_CUTOFF:
        return 0.0
    ratio = matcher.ratio()
    return ratio if ratio >= _FUZZY_CUTOFF else 0.0


def suggest_new_tags(
    tags: tuple[TagChoice, ...],
    title: str | None,
    text: str | None,
    url: str | None,
    common: frozenset[str] = frozenset(),
) -> tuple[tuple[TagSuggestion, ...], tuple[NewTagSuggestion, ...]]:
    """Existing tags that fit the page, and up to three new tags, best first.

    The existing ones are ``suggest_tags``'s, plus any existing tag that a
    keyphrase of the page names in another spelling ("bread" finds
    "Bread", "Breads", "bred"), scored as the keyphrase. New tags are the
    other keyphrases reaching the threshold, one per word (no "bread"
    beside "sourdough bread"), lower case, with no word of the web page's
    frame or of ``common`` (the org's ``common_words``). Deterministic.
    """
    suggestions = list(suggest_tags(tags, title, text, url))
    suggested = {s.tag_id for s in suggestions}
    names = [(tag, _words(tag.name)) for tag in tags]
    new: list[NewTagSuggestion] = []
    taken: set[str] = set()
    for score, phrase in _keyphrases(title, text, url):
        match = next((tag for tag, name in names if name and _same_name(phrase, name)), None)
        if match is not None:
            if match.id not in suggested and len(suggestions) < MAX_SUGGESTIONS:
                suggestions.append(TagSuggestion(match.id, score))
                suggested.add(match.id)
            taken.update(phrase)
            continue
        if len(new) < MAX_NEW_TAGS and not taken.intersection(phrase) and not _says_nothing(phrase, common):
            new.append(NewTagSuggestion(" ".join(phrase), score))
            taken.update(phrase)
    suggestions.sort(key=lambda s: -s.score)
    return tuple(suggestions), tuple(new)


def _says_nothing(phrase: tuple[str, ...], common: frozenset[str]) -> bool:
    """Whether a word of the keyphrase is the web page's frame or common in the org.

    One such word is enough: "photo credit", "york time" (of "New York
    Times") and "lorem ipsum" name no topic either.
    """
    return any(word in _WEB_PAGE_FRAME or word in common for word in phrase)


def common_words(texts: Iterable[str]) -> frozenset[str]:
    """The words (normalized as keyphrases are) on at least ``COMMON_SHARE`` of ``texts``.

    ``texts`` are the org's recent pages (or their starts); with fewer
    than ``MIN_PAGES_FOR_COMMON`` of them, none is common.
    """
    pages = 0
    counts: Counter = Counter()
    for text in texts:
        pages += 1
        counts.update(set(_content_words(text)))
    if pages < MIN_PAGES_FOR_COMMON:
        return frozenset()
    least = COMMON_SHARE * pages
    return frozenset(word for word, count in counts.items() if word and count >= least)


def _same_name(phrase: tuple[str, ...], name: list[str]) -> bool:
    """Same words after normalizing, run together or apart, or spelled nearly alike."""
    if list(phrase) == name or "".join(phrase) == "".join(name):
        return True
    return _similar("".join(phrase), "".join(name)) > 0


def _keyphrases(title: str | None, text: str | None, url: str | None) -> list[tuple[float, tuple[str, ...]]]:
    """Words and two-word phrases of the page with their scores, best first, above the threshold."""
    title_words = _content_words(title or "")
    url_words = [w for w in _content_words(_url_text(url or "")) if w not in _URL_NOISE]
    text_words = _content_words((text or "")[:_TEXT_SCAN_CHARS])
    counts = Counter((w,) for w in text_words if w)
    counts.update(pair for pair in zip(text_words, text_words[1:]) if all(pair))
    in_title = {(w,) for w in title_words if w} | {p for p in zip(title_words, title_words[1:]) if all(p)}
    in_url = {(w,) for w in url_words if w} | {p for p in zip(url_words, url_words[1:]) if all(p)}
    scored = []
    for phrase in set(counts) | in_title:
        mentions = counts[phrase]
        if len(phrase) == 2 and mentions < _MIN_PHRASE_MENTIONS and phrase not in in_title:
            continue
        text_weight = min(_TEXT_MAX_WEIGHT, _TEXT_WEIGHT_PER_MENTION * mentions)
        miss = (1 - _TITLE_WEIGHT * (phrase in in_title)) * (1 - _URL_WEIGHT * (phrase in in_url)) * (1 - text_weight)
        # A mention in the title alone is a word of a headline, not yet a topic.
        if mentions == 0:
            continue
        score = round(1 - miss, 3)
        if score >= THRESHOLD:
            scored.append((score, phrase))
    # Longer phrases first among equals: "sourdough bread" says more than "bread".
    scored.sort(key=lambda item: (-item[0], -len(item[1]), item[1]))
    return scored


def _content_words(text: str) -> list[str]:
    """Normalized words, with "" where a function word, a number or a short word was.

    The gaps keep two-word phrases from spanning a word left out.
    """
    words = []
    for raw in _WORD.findall(_CAMEL.sub(" ", text).casefold()):
        keep = len(raw) >= _MIN_KEYPHRASE_LETTERS and raw.isalpha() and raw not in STOPWORDS
        word = _singular(raw) if keep else ""
        # The singular of a word may be a function word: "news" is "new".
        words.append("" if word in STOPWORDS else word)
    return words
