"""The link-processing function the processor calls: fetch, then extract.

fetch -> metadata + readable text + summary + tag suggestions (existing
tags, and new ones when the job asks) -> LinkOutcome.
Errors are data: a fetch error becomes the outcome's LinkFailure with the
fetcher's code; a fetch function failing any other way becomes
``fetch_failed`` (retryable), anything going wrong while reading a page
``extract_failed`` (permanent). The function never raises for a bad page.

A page that is not HTML (a PDF, an image) is not a failure: it gets a
metadata-only entry built from the URL and the response headers. Plain
text pages keep their text.

The text kept is capped at MAX_TEXT_CHARS (100,000 characters, cut at a
word boundary) so one link's results keep a commit small; word count and
reading time describe the whole article.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import replace
from typing import Callable
from urllib.parse import unquote, urlsplit

from chalicelib.links.document import parse_document
from chalicelib.links.fetch import FetchedPage, FetchError, FetchPolicy, fetch_page
from chalicelib.links.metadata import extract_metadata
from chalicelib.links.outcome import LinkFailure, LinkJob, LinkOutcome, PageMetadata, ProcessLink
from chalicelib.links.summary import ExtractiveSummarizer, Summarizer, Summary, summarizer_from_setting
from chalicelib.links.tags import suggest_new_tags, suggest_tags
from chalicelib.links.text import readable_text, text_stats

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 100_000
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_FILENAME = re.compile(r"""filename\*?\s*=\s*(?:UTF-8'[^']*')?["']?([^"';]+)""", re.I)


def make_link_processor(
    *,
    fetch: Callable[[str], FetchedPage] | None = None,
    summarizer: Summarizer | None = None,
    bedrock_client: Callable[[float], object] | None = None,
) -> ProcessLink:
    """A ProcessLink: ``LinkJob`` in, ``LinkOutcome`` out, never an exception.

    ``fetch(url) -> FetchedPage`` defaults to the safe fetcher with the
    policy from the environment (LINKLOG_ALLOW_HOSTS), read when this is
    called; it raises FetchError for pages it will not or cannot get.
    Each job is summarized as its org chose (``job.summarizer``), the
    Bedrock client made by ``bedrock_client(timeout)`` (a boto3 client by
    default); a ``summarizer`` given here serves every job instead. A bad
    LINKLOG_ALLOW_HOSTS raises ValueError here, before any link is tried.
    """
    if fetch is None:
        policy = FetchPolicy.from_env()

        def fetch(url: str):
            return fetch_page(url, policy)

    chosen = _SummarizerChoice(bedrock_client) if summarizer is None else (lambda job: summarizer)

    def process(job: LinkJob) -> LinkOutcome:
        try:
            page = fetch(job.url)
        except FetchError as error:
            return LinkOutcome(job.link_id, failure=error.failure())
        except Exception as error:  # a fetch that breaks its contract must not stop the cycle
            log.exception("fetching %s failed unexpectedly", job.url)
            return LinkOutcome(job.link_id, failure=LinkFailure("fetch_failed", _describe(error), retryable=True))
        try:
            return _outcome(job, page, chosen(job))
        except Exception as error:  # a page that breaks the extractors is that page's failure, not the cycle's
            log.exception("extracting %s failed", job.url)
            return LinkOutcome(job.link_id, failure=LinkFailure("extract_failed", _describe(error), retryable=False))

    return process


def _outcome(job: LinkJob, page: FetchedPage, summarizer: Summarizer) -> LinkOutcome:
    media_type = page.content_type
    if media_type in _HTML_TYPES or (not media_type and _looks_like_html(page.body)):
        tree = parse_document(page.text())
        metadata = extract_metadata(tree, page.final_url)
        readable = readable_text(tree, page.final_url)
    elif media_type == "text/plain":
        metadata = _file_metadata(page)
        readable = text_stats(page.text().strip())
    else:
        return LinkOutcome(job.link_id, metadata=_file_metadata(page))
    text = _cap(readable.text)
    summary = _summarize(summarizer, metadata.title, text)
    if job.suggest_new_tags:
        suggestions, new_tags = suggest_new_tags(job.tags, metadata.title, text, page.final_url, job.common_words)
    else:
        suggestions, new_tags = suggest_tags(job.tags, metadata.title, text, page.final_url), ()
    return LinkOutcome(
        link_id=job.link_id,
        metadata=metadata,
        text=text or None,
        word_count=readable.word_count,
        reading_minutes=readable.reading_minutes,
        summary=summary.text or metadata.description or None,
        summary_model=summary.model if summary.text else "extractive",
        summary_fallback_from=summary.fallback_from,
        summary_fallback_reason=summary.fallback_reason,
        suggestions=suggestions,
        new_tags=new_tags,
    )


class _SummarizerChoice:
    """The summarizer of a job's setting, made once per setting and timeout
    (a Bedrock one holds a client and threads) and shared by the threads
    processing links."""

    def __init__(self, bedrock_client: Callable[[float], object] | None):
        self.bedrock_client = bedrock_client
        self.made: dict[tuple[str, float], Summarizer] = {}
        self.lock = threading.Lock()

    def __call__(self, job: LinkJob) -> Summarizer:
        key = (job.summarizer, job.summarizer_timeout)
        with self.lock:
            if key not in self.made:
                try:
                    self.made[key] = summarizer_from_setting(
                        job.summarizer, bedrock_client=self.bedrock_client, timeout=job.summarizer_timeout
                    )
                except Exception as error:  # no AWS region or credentials: not the link's failure
                    # Not kept: the next job tries again, so a fixed configuration takes effect.
                    log.warning("summarizer %r unavailable: %s", job.summarizer, error)
                    return _Unavailable(job.summarizer, _describe(error))
            return self.made[key]


class _Unavailable:
    """Stands in for a summarizer that could not be made: extractive, saying why."""

    def __init__(self, setting: str, reason: str):
        self.setting = setting
        self.reason = reason

    def summary(self, title: str | None, text: str) -> Summary:
        return Summary(ExtractiveSummarizer().summarize(title, text), "extractive", self.setting, self.reason)


def _summarize(summarizer: Summarizer, title: str | None, text: str) -> Summary:
    if not text:
        return Summary("")
    try:
        return summarizer.summary(title, text)
    except Exception:  # a summary is a nicety: the entry is worth keeping without one
        log.exception("summarizer failed")
        return Summary("")


def _looks_like_html(body: bytes) -> bool:
    start = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--", b"<meta", b"<title"))


def _file_metadata(page: FetchedPage) -> PageMetadata:
    """What a non-HTML response says about itself: its name, type and address."""
    parts = urlsplit(page.final_url)
    disposition = _FILENAME.search(page.headers.get("content-disposition", ""))
    name = unquote(disposition.group(1)) if disposition else unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
    title = name.strip() or parts.hostname
    metadata = extract_metadata("", page.final_url)
    return replace(
        metadata,
        title=title,
        description=_describe_file(page),
        image=page.final_url if page.content_type.startswith("image/") else None,
        lang=(page.headers.get("content-language") or "").split(",")[0].strip() or None,
    )


def _describe_file(page: FetchedPage) -> str:
    kind = page.content_type or "unknown type"
    size = len(page.body)
    shown = f"{size} bytes" if size < 1024 else f"{size / 1024:.0f} KB" if size < 1024 * 1024 else f"{size / 1048576:.1f} MB"
    return f"{kind}, {shown}"


def _cap(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    cut = text[:MAX_TEXT_CHARS]
    space = cut.rfind(" ", MAX_TEXT_CHARS - 1000)
    return (cut[:space] if space > 0 else cut).rstrip()


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:300]
