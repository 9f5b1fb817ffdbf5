"""The events a processor writes for a link: started, and its outcome.

An outcome becomes the page's metadata, text, summary (with the model that
wrote it) and tag suggestions (of existing tags, and of new ones),
ending in exactly one ``v1.LinkProcessingCompleted`` or
``v1.LinkProcessingFailed``, checked against the event models before it
goes into the log.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Iterable

from pydantic import ValidationError

from chalicelib.events import validate_processor_event
from chalicelib.links.outcome import LinkFailure, LinkJob, LinkOutcome
from chalicelib.storable import CONTROL_CHARACTERS


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def _event(name: str, args: dict, at: datetime) -> dict:
    return {"id": uuid.uuid4().hex, "name": name, "args": args, "at": _iso(at)}


def started_events(jobs: Iterable[tuple[LinkJob, int]], at: datetime) -> list[dict]:
    """One ``v1.LinkProcessingStarted`` per (job, attempt)."""
    return [
        _event(
            "v1.LinkProcessingStarted",
            {"linkId": job.link_id, "attempt": attempt, "startedAt": _iso(at)},
            at,
        )
        for job, attempt in jobs
    ]


def result_events(outcome: LinkOutcome, at: datetime) -> list[dict]:
    """The events that record one link's outcome, ending in exactly one
    ``v1.LinkProcessingCompleted`` or ``v1.LinkProcessingFailed``."""
    link_id = outcome.link_id
    events = []
    if outcome.metadata is not None:
        meta = outcome.metadata
        fields = {
            "title": meta.title,
            "description": meta.description,
            "image": meta.image,
            "siteName": meta.site_name,
            "favicon": meta.favicon,
            "canonicalUrl": meta.canonical_url,
            "author": meta.author,
            "publishedAt": meta.published_at,
            "lang": meta.lang,
        }
        args = {"linkId": link_id}
        args.update({k: v for k, v in fields.items() if v is not None})
        events.append(_event("v1.LinkMetadataFetched", args, at))
    if outcome.text is not None:
        events.append(
            _event(
                "v1.LinkContentExtracted",
                {
                    "linkId": link_id,
                    "text": outcome.text,
                    "wordCount": outcome.word_count,
                    "readingMinutes": outcome.reading_minutes,
                },
                at,
            )
        )
    if outcome.summary is not None:
        args = {"linkId": link_id, "summary": outcome.summary, "model": outcome.summary_model}
        if outcome.summary_fallback_from is not None:
            args["fallbackFrom"] = outcome.summary_fallback_from
            args["fallbackReason"] = _plain(outcome.summary_fallback_reason or "", 500)
        events.append(_event("v1.LinkSummarized", args, at))
    for suggestion in outcome.suggestions:
        events.append(
            _event(
                "v1.TagSuggested",
                {
                    "id": uuid.uuid4().hex,
                    "linkId": link_id,
                    "tagId": suggestion.tag_id,
                    "score": suggestion.score,
                },
                at,
            )
        )
    for new_tag in outcome.new_tags:
        events.append(
            _event(
                "v1.NewTagSuggested",
                {"id": uuid.uuid4().hex, "linkId": link_id, "name": new_tag.name, "score": new_tag.score},
                at,
            )
        )
    failure = outcome.failure
    if failure is None:
        events.append(
            _event(
                "v1.LinkProcessingCompleted",
                {"linkId": link_id, "completedAt": _iso(at)},
                at,
            )
        )
    else:
        args = {
            "linkId": link_id,
            "code": _plain(failure.code, 64) or "unknown",
            "message": _plain(failure.message, 2000),
            "retryable": failure.retryable,
            "failedAt": _iso(at),
        }
        if failure.retry_after is not None:
            args["retryAfter"] = failure.retry_after
        events.append(_event("v1.LinkProcessingFailed", args, at))
    return events


def _plain(text: str, limit: int) -> str:
    return CONTROL_CHARACTERS.sub(" ", str(text))[:limit]


def link_events(outcome: LinkOutcome, at: datetime) -> list[dict]:
    """result_events, checked against the event models before they are
    committed; a result the log would refuse becomes that link's failure."""
    events = result_events(outcome, at)
    try:
        for event in events:
            validate_processor_event(event)
    except ValidationError as error:
        failure = LinkFailure("invalid_result", str(error), False)
        events = result_events(LinkOutcome(link_id=outcome.link_id, failure=failure), at)
    return events
