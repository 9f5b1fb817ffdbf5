"""The event vocabulary (DESIGN §4, docs/events.md) and push validation.

Every event has a strict pydantic model: unknown fields are refused, types
are not coerced, URLs are http/https and at most 2,048 characters, ids at
most 64 characters, strings bounded, times ISO 8601 with a zone. Times and
URLs stay the strings the client sent, so what lands in the log is exactly
what was pushed.

Clients may push client events only. The log itself may hold names this
code does not know (written by newer code); reading a commit therefore
checks the envelope of each event, not its name (``StoredCommit``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from chalicelib.api_errors import ApiError
from chalicelib.jsonbody import parse_json_body
from chalicelib.keys import ORG_PATTERN
from chalicelib.orgsettings import (
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
    SUMMARIZER_PATTERN,
    TAG_SUGGESTIONS,
    summarizer_problem,
)
from chalicelib.storable import CONTROL_CHARACTERS, INT64_MAX, INT64_MIN
from chalicelib.state.times import format_time

MAX_BODY_BYTES = 1024 * 1024
MAX_EVENTS_PER_PUSH = 500
MAX_ID_CHARS = 64
MAX_URL_CHARS = 2048
# A 422 lists at most this many failing fields; a 500-event batch that is
# wrong everywhere should not answer with a megabyte of details.
MAX_ERROR_DETAILS = 50

EVENT_NAME_PATTERN = re.compile(r"^v[1-9][0-9]*\.[A-Za-z][A-Za-z0-9]*$")
# The one time form accepted (RFC 3339): the state keeps instants to the
# microsecond, so a finer fraction would be cut without a word.
_TIME_FORM = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})"
)


def _no_control_characters(value: str) -> str:
    if CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters")
    return value


def _http_url(value: str) -> str:
    if CONTROL_CHARACTERS.search(value) or " " in value:
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # raises on a malformed port
    except ValueError as error:
        raise ValueError(f"not a valid URL: {error}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("only http and https URLs are accepted")
    if not parts.hostname:
        raise ValueError("URL has no host")
    return value


def _iso_time(value: str) -> str:
    if not _TIME_FORM.fullmatch(value):
        raise ValueError(
            "must be an RFC 3339 time: 2026-11-23T20:00:00Z, at most 6 fraction "
            "digits, Z or an offset like +02:00"
        )
    try:
        # The state keeps the instant in UTC; one whose UTC day falls
        # outside years 1 to 9999 cannot be kept.
        format_time(datetime.fromisoformat(value))
    except (ValueError, OverflowError):
        raise ValueError("must be a real time between years 1 and 9999 in UTC") from None
    return value


def _int64(value: Any) -> Any:
    # Runs before pydantic turns an integer into a float: 10**30 would pass
    # as 1e30 while the log keeps the integer the state cannot store.
    if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
        raise ValueError("must be within signed 64 bits (-2**63 to 2**63-1)")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _bounded(max_chars: int, min_chars: int = 0):
    return Annotated[
        str,
        StringConstraints(min_length=min_chars, max_length=max_chars),
        AfterValidator(_no_control_characters),
    ]


Id = _bounded(MAX_ID_CHARS, 1)
Url = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_URL_CHARS), AfterValidator(_http_url)
]
Time = Annotated[str, StringConstraints(max_length=64), AfterValidator(_iso_time)]
Name = _bounded(200, 1)
Number = Annotated[float, BeforeValidator(_int64), AfterValidator(_finite)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# Client event arguments (DESIGN §4).


class LinkCreatedArgs(Strict):
    id: Id
    url: Url
    createdAt: Time
    domain: _bounded(253) | None = None
    source: _bounded(200) | None = None
    # The title the user knew the page by (an imported bookmark's); the
    # page's own title replaces it once fetched.
    title: _bounded(2000) | None = None


class LinkDeletedArgs(Strict):
    id: Id
    deletedAt: Time


class LinkIdArgs(Strict):
    id: Id


class LinkCompletedArgs(Strict):
    id: Id
    completedAt: Time


class LinkReprocessRequestedArgs(Strict):
    linkId: Id
    requestedAt: Time


class TagCreatedArgs(Strict):
    id: Id
    name: Name
    createdAt: Time
    sortOrder: Number | None = None


class TagRenamedArgs(Strict):
    id: Id
    name: Name


class TagDeletedArgs(Strict):
    id: Id
    deletedAt: Time


class LinkTaggedArgs(Strict):
    id: Id
    linkId: Id
    tagId: Id
    createdAt: Time


class LinkUntaggedArgs(Strict):
    linkId: Id
    tagId: Id


class TagSuggestionAcceptedArgs(Strict):
    id: Id
    # A new-tag suggestion names no tag yet: the client creates the tag (or
    # picks an existing one of that name) and names it here.
    tagId: Id | None = None


def _summarizer(value: str) -> str:
    problem = summarizer_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


class OrgSettingsChangedArgs(Strict):
    """The choices changed; those left out keep their value (chalicelib.orgsettings)."""

    summarizer: Annotated[
        str,
        StringConstraints(max_length=300),
        AfterValidator(_summarizer),
        Field(json_schema_extra={"pattern": SUMMARIZER_PATTERN.pattern}),
    ] | None = None
    summarizerTimeout: Annotated[Number, Field(ge=MIN_TIMEOUT_SECONDS, le=MAX_TIMEOUT_SECONDS)] | None = None
    tagSuggestions: Literal[TAG_SUGGESTIONS] | None = None

    @model_validator(mode="after")
    def _changes_something(self):
        if self.summarizer is None and self.summarizerTimeout is None and self.tagSuggestions is None:
            raise ValueError("name at least one of summarizer, summarizerTimeout, tagSuggestions")
        return self


# Processor event arguments (docs/events.md).


class LinkProcessingStartedArgs(Strict):
    linkId: Id
    attempt: Annotated[int, Field(ge=1, le=1000)]
    startedAt: Time


class LinkMetadataFetchedArgs(Strict):
    linkId: Id
    title: _bounded(2000) | None = None
    description: _bounded(10_000) | None = None
    image: _bounded(MAX_URL_CHARS) | None = None
    siteName: _bounded(500) | None = None
    favicon: _bounded(MAX_URL_CHARS) | None = None
    canonicalUrl: _bounded(MAX_URL_CHARS) | None = None
    author: _bounded(500) | None = None
    publishedAt: _bounded(100) | None = None
    lang: _bounded(35) | None = None


class LinkContentExtractedArgs(Strict):
    linkId: Id
    # Extracted text keeps its line breaks, so it is not checked for
    # control characters; the bound keeps one commit object reasonable.
    text: Annotated[str, StringConstraints(max_length=2_000_000)]
    wordCount: Count
    readingMinutes: Count


class LinkSummarizedArgs(Strict):
    linkId: Id
    summary: Annotated[str, StringConstraints(max_length=20_000)]
    model: _bounded(300, 1)
    # When the org's summarizer failed and the extractive one stood in: the
    # summarizer tried and why it was not used.
    fallbackFrom: _bounded(300, 1) | None = None
    fallbackReason: _bounded(500) | None = None


class TagSuggestedArgs(Strict):
    id: Id
    linkId: Id
    tagId: Id
    score: Annotated[Number, Field(ge=0, le=1)]


class NewTagSuggestedArgs(Strict):
    id: Id
    linkId: Id
    name: Name
    score: Annotated[Number, Field(ge=0, le=1)]


class LinkProcessingCompletedArgs(Strict):
    linkId: Id
    completedAt: Time


class LinkProcessingFailedArgs(Strict):
    linkId: Id
    code: _bounded(64, 1)
    message: _bounded(2000)
    retryable: bool
    retryAfter: Annotated[Number, Field(ge=0)] | None = None
    failedAt: Time


class LinkProcessingCancelledArgs(Strict):
    linkId: Id
    reason: _bounded(500)


CLIENT_EVENT_ARGS: dict[str, type[Strict]] = {
    "v1.LinkCreated": LinkCreatedArgs,
    "v1.LinkDeleted": LinkDeletedArgs,
    "v1.LinkRestored": LinkIdArgs,
    "v1.LinkCompleted": LinkCompletedArgs,
    "v1.LinkUncompleted": LinkIdArgs,
    "v1.LinkReprocessRequested": LinkReprocessRequestedArgs,
    "v1.TagCreated": TagCreatedArgs,
    "v1.TagRenamed": TagRenamedArgs,
    "v1.TagDeleted": TagDeletedArgs,
    "v1.LinkTagged": LinkTaggedArgs,
    "v2.LinkUntagged": LinkUntaggedArgs,
    "v1.TagSuggestionAccepted": TagSuggestionAcceptedArgs,
    "v1.TagSuggestionDismissed": LinkIdArgs,
    "v1.OrgSettingsChanged": OrgSettingsChangedArgs,
}

PROCESSOR_EVENT_ARGS: dict[str, type[Strict]] = {
    "v1.LinkProcessingStarted": LinkProcessingStartedArgs,
    "v1.LinkMetadataFetched": LinkMetadataFetchedArgs,
    "v1.LinkContentExtracted": LinkContentExtractedArgs,
    "v1.LinkSummarized": LinkSummarizedArgs,
    "v1.TagSuggested": TagSuggestedArgs,
    "v1.NewTagSuggested": NewTagSuggestedArgs,
    "v1.LinkProcessingCompleted": LinkProcessingCompletedArgs,
    "v1.LinkProcessingFailed": LinkProcessingFailedArgs,
    "v1.LinkProcessingCancelled": LinkProcessingCancelledArgs,
}


def _event_model(name: str, args: type[Strict]) -> type[Strict]:
    class_name = name.split(".", 1)[1] + name.split(".", 1)[0].upper()
    return type(
        class_name,
        (Strict,),
        {
            "__annotations__": {
                "id": Id,
                "name": Literal[name],
                "args": args,
                "at": Time,
            },
            "__module__": __name__,
            "__doc__": f"The event {name}.",
        },
    )


CLIENT_EVENTS = {name: _event_model(name, args) for name, args in CLIENT_EVENT_ARGS.items()}
PROCESSOR_EVENTS = {
    name: _event_model(name, args) for name, args in PROCESSOR_EVENT_ARGS.items()
}

ClientEvent = Annotated[Union[tuple(CLIENT_EVENTS.values())], Discriminator("name")]
ProcessorEvent = Annotated[Union[tuple(PROCESSOR_EVENTS.values())], Discriminator("name")]
_processor_event = TypeAdapter(ProcessorEvent)


def validate_processor_event(event: dict) -> dict:
    """Return ``event`` if it is a valid processor event; raise ValidationError otherwise.

    The processor builds its events itself; checking them against the same
    models before committing keeps a bug there from writing junk to the log.
    """
    _processor_event.validate_python(event)
    return event


class PushBatch(Strict):
    """A client's push body: ``{batch_id, client_id, events[]}``."""

    batch_id: Id
    client_id: Id
    events: Annotated[list[ClientEvent], Field(min_length=1, max_length=MAX_EVENTS_PER_PUSH)]


@dataclass(frozen=True)
class Push:
    """A validated push; ``events`` are the client's own dicts, unchanged."""

    batch_id: str
    client_id: str
    events: list[dict]


class InvalidPush(ApiError):
    """A push body refused before anything was written (400, 413 or 422)."""


def parse_push(body: bytes) -> Push:
    """Validate a raw push body and return the batch.

    Raises InvalidPush with status 413 (body over 1 MB or more than 500
    events), 400 (not UTF-8 JSON) or 422 (the failing field paths in
    ``details``).
    """
    if len(body) > MAX_BODY_BYTES:
        raise InvalidPush(
            413,
            f"body is {len(body)} bytes; at most {MAX_BODY_BYTES} are accepted",
            code="body_too_large",
            details={"limit_bytes": MAX_BODY_BYTES},
        )
    data = _json_document(body)
    events = data.get("events") if isinstance(data, dict) else None
    if isinstance(events, list) and len(events) > MAX_EVENTS_PER_PUSH:
        raise InvalidPush(
            413,
            f"{len(events)} events in one push; at most {MAX_EVENTS_PER_PUSH} are accepted",
            code="too_many_events",
            details={"limit_events": MAX_EVENTS_PER_PUSH},
        )
    try:
        batch = PushBatch.model_validate(data)
    except ValidationError as error:
        raise invalid_fields(error) from None
    _refuse_repeated_ids(batch)
    # The model proved the dicts valid; keeping them (not a dump of the
    # model) means a number sent as 1 is not written back as 1.0.
    return Push(batch.batch_id, batch.client_id, events)


def _json_document(body: bytes) -> Any:
    try:
        return parse_json_body(body)
    except ApiError as error:
        raise InvalidPush(error.status, error.message, code=error.code, details=error.details) from None


def _refuse_repeated_ids(batch: PushBatch) -> None:
    seen: dict[str, int] = {}
    for index, event in enumerate(batch.events):
        if event.id in seen:
            raise InvalidPush(
                422,
                "event ids must be unique within a push",
                details=[
                    {
                        "path": f"events.{index}.id",
                        "message": f"repeats the id of events.{seen[event.id]}",
                        "type": "duplicate_id",
                    }
                ],
            )
        seen[event.id] = index


def invalid_fields(error: ValidationError) -> InvalidPush:
    """A 422 listing each failing field as a dotted path (``events.3.args.url``)."""
    details = [_describe(item) for item in error.errors()[:MAX_ERROR_DETAILS]]
    paths = ", ".join(detail["path"] or "(body)" for detail in details[:5])
    return InvalidPush(422, f"invalid fields: {paths}", details=details)


def _describe(item: dict) -> dict:
    loc = list(item["loc"])
    message, kind = item["msg"], item["type"]
    # A discriminated union puts the event name into the path
    # (events.0.v1.LinkCreated.args); clients want events.0.args.
    loc = [
        part
        for i, part in enumerate(loc)
        if not (i > 0 and isinstance(loc[i - 1], int) and part in _ALL_NAMES)
    ]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("name")
        tag = (item.get("ctx") or {}).get("tag")
        if tag in PROCESSOR_EVENTS:
            message, kind = f"{tag} is a processor event; clients may not push it", "processor_event"
        elif tag is not None:
            message, kind = f"unknown event name {tag!r}", "unknown_event"
        else:
            message, kind = "event has no name", "missing"
    return {"path": ".".join(str(part) for part in loc), "message": message, "type": kind}


_ALL_NAMES = frozenset(CLIENT_EVENTS) | frozenset(PROCESSOR_EVENTS)


# What a commit in the log looks like. Reading is forward compatible:
# newer writers may add fields and event names, so extra fields are kept
# and names are only checked for their vN.Name form.


class Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class StoredEvent(Lenient):
    id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
    name: Annotated[str, StringConstraints(pattern=EVENT_NAME_PATTERN.pattern, max_length=200)]
    args: dict[str, Any]
    at: str


class Author(Lenient):
    kind: Literal["client", "processor"]
    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    epoch: Annotated[int, Field(ge=0)] | None = None


class StoredCommit(Lenient):
    """A commit's envelope. Its events are checked one by one (``is_stored_event``):
    one malformed event (hand-written, or from a bug) must not make the
    commit around it unreadable."""

    version: Annotated[int, Field(ge=1)]
    org: Annotated[str, StringConstraints(pattern=ORG_PATTERN.pattern)]
    batch_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    committed_at: str
    author: Author
    events: list[Any]


_stored_event = TypeAdapter(StoredEvent)


def is_stored_event(event: Any) -> bool:
    """Whether ``event`` has an event's envelope: an id, a vN.Name name, args, at."""
    try:
        _stored_event.validate_python(event)
    except ValidationError:
        return False
    return True
