"""Summaries and descriptions of real pages (../shared/testdata): the rules a reader sees.

A summary starts where a sentence starts, never holds the title or one
sentence twice, keeps apart text from adjacent elements, and stays within
400 characters; a description over 400 characters is cut at a sentence end.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from chalicelib.links import extract_page
from chalicelib.links.sentences import split_sentences, trim_to_sentences
from chalicelib.links.summary import ExtractiveSummarizer

TESTDATA = Path(__file__).resolve().parents[1].parent / "shared" / "testdata"
_SENTENCE_END = re.compile(r"[.!?…。！？:;][\"'”’»)\]]*$")


def real_pages() -> list[tuple[str, bytes, str]]:
    """The 65 readability pages and every 40th page of the development set: (name, html, url)."""
    if not TESTDATA.is_dir():
        pytest.skip(f"../shared/testdata not found: {TESTDATA}")
    pages = [
        (p.name, (p / "source.html").read_bytes(), "http://fakehost/test/page.html")
        for p in sorted((TESTDATA / "readability-pages").iterdir())
        if (p / "source.html").is_file()
    ]
    judgements = json.loads((TESTDATA / "trafilatura-eval" / "evaldata.json").read_text(encoding="utf-8"))
    for url, judgement in list(judgements.items())[::40]:
        html = gzip.decompress((TESTDATA / "trafilatura-eval" / "html" / judgement["file"]).read_bytes())
        pages.append((judgement["file"], html, url))
    return pages


def starts_a_sentence(text: str, summary: str) -> bool:
    """The summary's first words follow a block start or a sentence end in ``text``."""
    blocks = "\n".join(" ".join(line.split()) for line in text.split("\n"))
    first = split_sentences(summary)[0][:60]
    position = blocks.find(first)
    if position < 0:
        return False
    before = blocks[:position].rstrip(" ")
    return before == "" or before.endswith("\n") or _SENTENCE_END.search(before) is not None


@pytest.fixture(scope="module")
def summaries():
    results = []
    summarizer = ExtractiveSummarizer()
    for name, html, url in real_pages():
        page = extract_page(html, url)
        summary = summarizer.summarize(page["title"], page["text"]) if page["text"] else ""
        results.append((name, page, summary))
    return results


def test_summaries_of_real_pages_follow_the_rules(summaries):
    assert sum(1 for _, _, summary in summaries if summary) >= 80
    for name, page, summary in summaries:
        if not summary:
            continue
        assert len(summary) <= 400, name
        assert starts_a_sentence(page["text"], summary), (name, summary[:80])
        sentences = [s.casefold() for s in split_sentences(summary)]
        assert len(sentences) == len(set(sentences)), (name, summary)
        title = " ".join((page["title"] or "").split()).casefold()
        if title:
            # The title is shown above the summary: not as a sentence of it,
            # and a headline (not a two-word topic) never twice in it.
            assert title not in sentences, (name, summary)
            if len(title.split()) >= 5:
                assert summary.casefold().count(title) <= 1, (name, summary)


def test_descriptions_of_real_pages_fit_and_end_at_a_sentence(summaries):
    for name, page, _ in summaries:
        description = page["description"]
        if description:
            assert len(description) <= 400, name


def test_a_long_description_is_cut_at_a_sentence_end():
    article = " ".join(f"Sentence {i} of an article the site put whole in its description." for i in range(20))
    page = extract_page(f'<html><head><meta name="description" content="{article}"></head><body></body></html>', "https://example.com/a")

    assert page["description"] == trim_to_sentences(article, 400)
    assert 300 < len(page["description"]) <= 400
    assert page["description"].endswith("description.")


def test_text_in_a_span_beside_a_div_does_not_glue():
    lede = "<p>South Dakota voters chose a new governor on Tuesday after a long campaign across the state and its towns.</p>"
    html = (
        "<html><body><article><h1>Noem wins the race</h1>" + lede * 3
        + "<div class='infobox'><span>Kristi Noem</span><div>Kristi Lynn Noem</div><span>South Dakota</span></div>"
        + "<p>She takes office in January, and her first budget is due in the spring, officials said.</p></article></body></html>"
    )
    page = extract_page(html, "https://news.example.com/noem")
    summary = ExtractiveSummarizer(max_chars=2000, max_sentences=10).summarize(page["title"], page["text"])

    for glued in ("NoemKristi", "NoemSouth"):
        assert glued not in page["text"]
        assert glued not in summary


def test_a_title_run_into_the_first_paragraph_is_not_repeated():
    title = "New SUVs and electric vehicles highlight L.A. auto show"
    text = (
        f"{title} New SUVs and electric vehicles highlight L.A. auto show as makers bring dozens of models to the city. "
        "Walt Disney Co. executive Kevin Mayer said the company would show its own cars too. "
        + "Visitors queued for hours to see the new electric trucks and the prototypes on display. " * 6
    )

    summary = ExtractiveSummarizer().summarize(title, text)

    assert summary.count("highlight L.A. auto show") == 1
    assert "Walt Disney Co. executive Kevin Mayer said" in summary
    assert not summary.startswith("executive")
    assert len(summary) <= 400
