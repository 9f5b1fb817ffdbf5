"""Pages per second through the link pipeline, beside readability-lxml alone.

A local HTTP server on 127.0.0.1 serves 100 pages (the real pages of
../shared/testdata/readability-pages, cycled, when present; generated
articles otherwise). In one run each page goes through
``Document(html).summary(html_partial=True)`` alone, then through the whole
pipeline (safe fetch over HTTP, parse, metadata, text, summary, tags). The
figure that matters is the overhead ratio, pipeline time over readability
time; the target is at most 1.5.

    python -m bench.bench_links
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from readability import Document

from bench.pages import PageServer
from chalicelib.links.addresses import AllowList
from chalicelib.links.fetch import FetchPolicy, fetch_page
from chalicelib.links.outcome import LinkJob, TagChoice
from chalicelib.links.pipeline import make_link_processor

PAGES = 100
TARGET_RATIO = 1.5
TESTDATA = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "readability-pages"
TAGS = (
    TagChoice("t1", "Python"), TagChoice("t2", "security"), TagChoice("t3", "Firefox"),
    TagChoice("t4", "climate"), TagChoice("t5", "football"), TagChoice("t6", "web development"),
)


def load_pages(count: int = PAGES) -> tuple[str, list[bytes]]:
    """``count`` page bodies (UTF-8) and where they came from."""
    sources = sorted(TESTDATA.glob("*/source.html")) if TESTDATA.is_dir() else []
    if sources:
        bodies = [path.read_bytes() for path in sources]
        return "testdata", [bodies[i % len(bodies)] for i in range(count)]
    return "generated", [_generated_page(i).encode("utf-8") for i in range(count)]


def _generated_page(number: int) -> str:
    """An article page shaped like real ones (about 150 KB, as the testdata
    pages average): scripts, styles, navigation, a sidebar of links, the
    article, comments and a footer."""
    menu = "".join(f"<li><a href='/section/{i}'>Section {i}</a></li>" for i in range(60))
    sidebar = "".join(
        f"<div class='related-item'><a href='/story/{number}-{i}'><img src='/img/{i}.jpg' alt=''>"
        f"Related story {i} about the city</a><span class='date'>2 May</span></div>"
        for i in range(80)
    )
    paragraphs = "".join(
        f"<p>Paragraph {p} of article {number} explains how the city plans new tram lines, bike lanes "
        f"and wider pavements, and what residents said at the public meeting about <a href='/t/climate'>climate "
        f"goals</a>, budgets and the timetable for the works along the harbour.</p>"
        for p in range(40)
    )
    comments = "".join(
        f"<div class='comment'><span class='author'>Reader {i}</span><p>I think the plan for article {number} "
        f"is {'good' if i % 2 else 'too expensive'} and the council should listen.</p></div>"
        for i in range(120)
    )
    script = "<script>" + "var tracking = {id: 1, events: []};" * 400 + "</script>"
    style = "<style>" + ".box{margin:0;padding:0;border:1px solid #ccc}" * 400 + "</style>"
    return (
        f"<!DOCTYPE html><html lang='en'><head><title>Article {number} | City News</title>"
        f"<meta property='og:title' content='Article {number}'><meta name='author' content='Reporter {number}'>"
        f"{style}{script}</head><body><header class='masthead'><ul class='menu'>{menu}</ul></header>"
        f"<div class='layout'><article class='story'><h1>Article {number}</h1>{paragraphs}</article>"
        f"<aside class='sidebar'>{sidebar}</aside></div><section class='comments'>{comments}</section>"
        f"<footer class='footer'>Contact</footer>{script}</body></html>"
    )


def _page_of(bodies: list[bytes]):
    """Serves ``bodies`` at /page/0 .. /page/N-1."""

    def page(path: str) -> bytes | None:
        number = path.rsplit("/", 1)[-1]
        return bodies[int(number)] if number.isdigit() and int(number) < len(bodies) else None

    return page


def main() -> dict:
    """Run the bench once; return its figures."""
    source, bodies = load_pages()
    with PageServer(_page_of(bodies)) as server:
        policy = FetchPolicy(allow=AllowList.parse(server.host))
        process = make_link_processor(fetch=lambda url: fetch_page(url, policy))
        urls = [server.url(f"/page/{i}") for i in range(len(bodies))]
        texts = [body.decode("utf-8", "replace") for body in bodies]

        # Warm both paths (imports, caches, the first connection) before timing.
        Document(texts[0]).summary(html_partial=True)
        process(LinkJob("warm-up", urls[0], TAGS))

        # Page by page, one then the other, so a change in the machine's
        # load during the run weighs on both sides alike.
        readability_seconds = pipeline_seconds = 0.0
        outcomes = []
        for i, (text, url) in enumerate(zip(texts, urls)):
            started = time.perf_counter()
            Document(text).summary(html_partial=True)
            readability_seconds += time.perf_counter() - started
            started = time.perf_counter()
            outcomes.append(process(LinkJob(f"link-{i}", url, TAGS)))
            pipeline_seconds += time.perf_counter() - started

    failures = [o.failure.code for o in outcomes if o.failure]
    ratio = pipeline_seconds / readability_seconds
    return {
        "bench": "links",
        "pages": len(bodies),
        "pages_from": source,
        "readability_pages_per_s": round(len(bodies) / readability_seconds, 1),
        "pipeline_pages_per_s": round(len(bodies) / pipeline_seconds, 1),
        "overhead_ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "within_target": ratio <= TARGET_RATIO,
        "failures": failures,
        "with_text": sum(1 for o in outcomes if o.text),
        "with_summary": sum(1 for o in outcomes if o.summary),
        "with_suggestions": sum(1 for o in outcomes if o.suggestions),
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
