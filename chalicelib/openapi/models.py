"""What the routes answer, as pydantic models: the contract OpenAPI publishes.

The routes build plain dicts; these models describe them and are checked
against real answers by the schemathesis run in the tests, not on every
request. Optional fields are the ones a fresh or unprocessed link leaves
null. Every refusal is an ``ErrorResponse``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from chalicelib.events import StoredCommit


class Answer(BaseModel):
    # Answers may grow fields; a client ignores the ones it does not know.
    model_config = ConfigDict(extra="allow")


class ErrorInfo(Answer):
    code: str
    message: str
    details: Any = None


class ErrorResponse(Answer):
    """Every refusal: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorInfo


class Health(Answer):
    status: Literal["ok"]


class PushResult(Answer):
    version: int


class PullPage(Answer):
    commits: list[StoredCommit]
    head: int
    has_more: bool


class LinkError(Answer):
    code: str
    message: str | None
    retryable: bool


class Tag(Answer):
    id: str
    name: str


class Link(Answer):
    id: str
    url: str
    normalized_url: str | None
    domain: str | None
    source: str | None
    created_at: str | None
    completed_at: str | None
    deleted_at: str | None
    status: Literal["new", "pending", "completed", "failed", "cancelled"]
    attempts: int
    started_at: str | None
    finished_at: str | None
    next_retry_at: str | None
    error: LinkError | None
    metadata: dict[str, Any] | None
    # Null until the page's text is extracted.
    reading_minutes: int | None
    tags: list[Tag]


class Suggestion(Answer):
    id: str
    # Null for a new tag not yet accepted as one of the org's tags.
    tag_id: str | None
    tag_name: str
    score: float
    status: str
    # A tag the org does not have yet (its tagSuggestions is existing+new).
    new: bool


class LinkDetail(Link):
    text: str | None
    word_count: int
    reading_minutes: int
    summary: str | None
    summary_model: str | None
    # When the org's summarizer failed and the extractive one stood in.
    summary_fallback_from: str | None
    summary_fallback_reason: str | None
    suggestions: list[Suggestion]
    aliases: list[str]


class SettingsValues(Answer):
    summarizer: str
    summarizerTimeout: float
    tagSuggestions: Literal["existing", "existing+new"]


class OrgSettings(Answer):
    """The org's settings, defaults filled in, at a version of its log."""

    settings: SettingsValues
    version: int


class LinksPage(Answer):
    links: list[Link]
    next_cursor: str | None
    version: int


class TagCount(Answer):
    id: str
    name: str
    sort_order: int | None
    created_at: str | None
    count: int


class TagList(Answer):
    tags: list[TagCount]
    next_cursor: str | None
    version: int


class SearchHit(Answer):
    id: str
    url: str
    title: str | None
    snippet: str | None
    # The snippet as ``[text, is_match]`` pieces.
    highlights: list[tuple[str, bool]]
    score: float
    link: Link


class SearchResults(Answer):
    results: list[SearchHit]
    version: int


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str


class QueryResult(Answer):
    columns: list[str]
    # A blob comes as {"base64": "..."}, an infinite real as "Infinity".
    rows: list[list[Any]]
    truncated: bool
    truncated_reason: Literal["max_rows", "max_bytes"] | None
    version: int


class ImportRefusal(Answer):
    url: str
    reason: str


class ImportSummary(Answer):
    format: str
    found: int
    saved: int
    duplicates: int
    refused: int
    # The first 50 refusals; ``refused`` counts them all.
    refusals: list[ImportRefusal]
    tags_created: int
    # Null when nothing new was saved (nothing was pushed).
    version: int | None


class ExportLink(Answer):
    """An export too large for an answer, on S3: where to download it (an hour)."""

    download_url: str
    filename: str
    count: int
    size: int


class LinklogExport(Answer):
    """The ``json`` export file: linklog's own format, imported back as ``linklog``."""

    format: Literal["linklog"]
    version: int
    exported_at: str
    links: list[dict[str, Any]]


class ChainFigures(Answer):
    """The full snapshot a restore used and the deltas on it."""

    base_key: str
    base_version: int
    base_size: int
    tip_version: int
    deltas: int
    delta_bytes: int
    complete: bool


class SnapshotFigures(Answer):
    key: str | None
    version: int
    size: int | None
    age_seconds: float | None
    chain: ChainFigures | None


class Stats(Answer):
    version: int
    links: int
    snapshot: SnapshotFigures
    restore_ms: dict[str, float]
    processor_epoch: int | None
    events: dict[str, int]
    last_cycle: dict[str, Any] | None
