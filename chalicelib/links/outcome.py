"""What the processor hands to link processing, and what it gets back.

The processor (chalicelib.cycle) knows nothing of fetching or parsing: it
calls a ``ProcessLink`` function with a ``LinkJob`` and turns the
``LinkOutcome`` into events. Tests hand the cycle their own deterministic
function; production hands it the pipeline of chalicelib.links.pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class TagChoice:
    """One of the org's existing tags, a candidate for suggestion."""

    id: str
    name: str


@dataclass(frozen=True)
class LinkJob:
    """One link to process, with the org's choices (chalicelib.orgsettings):
    ``suggest_new_tags``, whether to suggest tags it does not have yet
    (keyphrases of the page); ``summarizer``, ``extractive`` or
    ``bedrock:<model id>``, and the seconds a hosted model may take."""

    link_id: str
    url: str
    tags: tuple[TagChoice, ...] = ()
    suggest_new_tags: bool = False
    # The org's common words (chalicelib.links.tags.common_words), never new tags.
    common_words: frozenset[str] = frozenset()
    summarizer: str = "extractive"
    summarizer_timeout: float = 10.0


@dataclass(frozen=True)
class PageMetadata:
    title: str | None = None
    description: str | None = None
    image: str | None = None
    site_name: str | None = None
    favicon: str | None = None
    canonical_url: str | None = None
    author: str | None = None
    published_at: str | None = None
    lang: str | None = None


@dataclass(frozen=True)
class LinkFailure:
    """Why a link could not be processed; errors are data, not exceptions.

    ``code`` is short and machine-readable (``timeout``, ``http_404``,
    ``refused_address``, ...). ``retry_after`` is in seconds, when the
    server said (429/503 Retry-After).
    """

    code: str
    message: str
    retryable: bool
    retry_after: float | None = None


@dataclass(frozen=True)
class TagSuggestion:
    tag_id: str
    score: float


@dataclass(frozen=True)
class NewTagSuggestion:
    """A tag the org does not have yet, named from a keyphrase of the page."""

    name: str
    score: float


@dataclass(frozen=True)
class LinkOutcome:
    """Everything learned about one link.

    A failure may come with metadata (a PDF gets a metadata-only entry and
    no failure; a 404 gets a failure and no metadata).
    """

    link_id: str
    metadata: PageMetadata | None = None
    text: str | None = None
    word_count: int = 0
    reading_minutes: int = 0
    summary: str | None = None
    # Which summarizer wrote the summary; when the org's choice failed, the
    # one tried and why (the extractive summary stood in).
    summary_model: str = "extractive"
    summary_fallback_from: str | None = None
    summary_fallback_reason: str | None = None
    suggestions: tuple[TagSuggestion, ...] = field(default_factory=tuple)
    new_tags: tuple[NewTagSuggestion, ...] = field(default_factory=tuple)
    failure: LinkFailure | None = None


ProcessLink = Callable[[LinkJob], LinkOutcome]
