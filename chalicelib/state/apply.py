"""The materializer: the one way state changes, commit by commit from the log.

Every write happens inside one ``BEGIN IMMEDIATE ... COMMIT`` per call
(datasette's one-write-function style), so a caller sees either all of a
batch of commits applied or none. The log is outside input: an event that
is malformed, names something unknown, or was seen before is skipped and
counted, never a crash, so one bad event cannot wedge an org. Each event
applies inside its own savepoint: an event that fails in a way nobody
foresaw (a value SQLite cannot hold, a bug) is rolled back alone, skipped
and counted, and the events around it still apply.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import apsw

from chalicelib.links.urls import normalize_url
from chalicelib.orgsettings import summarizer_problem, tag_suggestions_problem, timeout_problem
from chalicelib.state.schema import processor_epoch, version
from chalicelib.state.times import format_time
from chalicelib.storable import CONTROL_CHARACTERS, INT64_MAX, INT64_MIN, LONE_SURROGATES

# Six attempts, 1 min x 6^(n-1) apart: 1 min, 6 min, 36 min, 3.6 h, 21.6 h.
# The last comes about a day after the first, so a name that does not
# resolve today, a laptop that was offline or a site that was down gets its
# chance tomorrow; after that the failure is final.
MAX_ATTEMPTS = 6
FIRST_RETRY_SECONDS = 60
RETRY_GROWTH = 6
# A retry-after beyond a day is a misbehaving server; waiting longer only
# hides the link from the user.
MAX_RETRY_AFTER_SECONDS = 86_400
MAX_EVENT_ID_LENGTH = 64
MAX_URL_LENGTH = 8192
MAX_NEW_TAG_NAME = 200
# The state adds up to a day to a processor's times (a retry's delay, the
# moment a pending link counts as stuck); a later time would overflow.
LATEST_PROCESSOR_TIME = datetime.max.replace(tzinfo=timezone.utc) - timedelta(days=2)
# Failures of the machine rather than of one event: they stop the whole
# call (and roll it back) instead of being counted against an event.
ENVIRONMENT_FAILURES = (
    MemoryError,
    apsw.FullError,
    apsw.IOError,
    apsw.NoMemError,
    apsw.CorruptError,
    apsw.BusyError,
    apsw.LockedError,
    apsw.InterruptError,
    apsw.ReadOnlyError,
    apsw.CantOpenError,
)

log = logging.getLogger(__name__)

PROCESSOR_EVENTS = frozenset(
    {
        "v1.LinkProcessingStarted",
        "v1.LinkMetadataFetched",
        "v1.LinkContentExtracted",
        "v1.LinkSummarized",
        "v1.TagSuggested",
        "v1.NewTagSuggested",
        "v1.LinkProcessingCompleted",
        "v1.LinkProcessingFailed",
        "v1.LinkProcessingCancelled",
    }
)


class CommitOutOfOrder(ValueError):
    """A commit does not continue the database's version: a gap, a repeat or no version."""


@dataclass
class ApplyStats:
    """What one apply_commits call did."""

    version_before: int
    version_after: int
    commits: int = 0
    events_applied: int = 0
    duplicate_events: int = 0
    unknown_events: int = 0
    skipped_events: int = 0
    fenced_commits: int = 0
    skip_reasons: Counter = field(default_factory=Counter)


class _Skip(Exception):
    """This event cannot change state; the message says why."""


@dataclass(frozen=True)
class _Context:
    version: int
    at: str | None
    # Links whose metadata or text changed in this transaction: seq -> the
    # values the full-text index held for it when the transaction began.
    reindex: dict[int, tuple | None]


def apply_commits(db: apsw.Connection, commits: Iterable[dict]) -> ApplyStats:
    """Apply commits, which must continue at version(db) + 1, in one transaction.

    Raises CommitOutOfOrder (and changes nothing) on a gap, a repeated or a
    missing version. Events already applied (by id), unknown event names,
    malformed events and events naming unknown links or tags are skipped and
    counted; a processor commit whose epoch is lower than the highest
    applied one is skipped whole (fencing).
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        stats = _apply_all(db, commits)
    except BaseException:
        # SQLite may already have rolled back on its own (disk full, say).
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return stats


def _apply_all(db: apsw.Connection, commits: Iterable[dict]) -> ApplyStats:
    current = version(db)
    epoch = processor_epoch(db)
    stats = ApplyStats(version_before=current, version_after=current)
    reindex: dict[int, tuple | None] = {}
    for commit in commits:
        expected = current + 1
        found = commit.get("version") if isinstance(commit, dict) else None
        if type(found) is not int or found != expected:
            raise CommitOutOfOrder(f"expected a commit at version {expected}, got {found!r}")
        current = found
        stats.commits += 1
        _record_batch(db, commit, current)
        author = commit.get("author")
        if isinstance(author, dict) and author.get("kind") == "processor":
            commit_epoch = author.get("epoch")
            if type(commit_epoch) is not int or commit_epoch < epoch:
                stats.fenced_commits += 1
                continue
            # SQLite cannot hold a larger epoch. Only a hand-written log
            # gets there, and a processor that follows one (at epoch + 1)
            # must still be applied, not fenced off for good.
            epoch = min(commit_epoch, INT64_MAX)
            from_processor = True
        else:
            from_processor = False
        events = commit.get("events")
        if not isinstance(events, list):
            _count_skip(stats, "commit events are not a list")
            continue
        for event in events:
            _apply_event(db, event, current, from_processor, stats, reindex)
    _update_search_index(db, reindex)
    db.execute(
        """UPDATE meta SET version = ?, processor_epoch = ?,
               duplicate_events = duplicate_events + ?,
               unknown_events = unknown_events + ?,
               skipped_events = skipped_events + ?,
               fenced_commits = fenced_commits + ?""",
        (
            current,
            epoch,
            stats.duplicate_events,
            stats.unknown_events,
            stats.skipped_events,
            stats.fenced_commits,
        ),
    )
    stats.version_after = current
    return stats


def _record_batch(db: apsw.Connection, commit: dict, at_version: int) -> None:
    batch_id = commit.get("batch_id")
    if _storable_text(batch_id):
        db.execute(
            "INSERT OR IGNORE INTO batches (batch_id, version) VALUES (?, ?)",
            (batch_id, at_version),
        )


def _storable_text(value: Any) -> bool:
    return isinstance(value, str) and value != "" and not LONE_SURROGATES.search(value)


def _count_skip(stats: ApplyStats, reason: str) -> None:
    stats.skipped_events += 1
    stats.skip_reasons[reason] += 1


def _apply_event(
    db: apsw.Connection,
    event: Any,
    at_version: int,
    from_processor: bool,
    stats: ApplyStats,
    reindex: dict[int, tuple | None],
) -> None:
    if not isinstance(event, dict):
        _count_skip(stats, "event is not an object")
        return
    event_id = event.get("id")
    if not _storable_text(event_id) or len(event_id) > MAX_EVENT_ID_LENGTH:
        _count_skip(stats, "event has no valid id")
        return
    db.execute(
        "INSERT OR IGNORE INTO applied_events (id, version) VALUES (?, ?)",
        (event_id, at_version),
    )
    if db.changes() == 0:
        stats.duplicate_events += 1
        return
    name = event.get("name")
    handler = HANDLERS.get(name) if isinstance(name, str) else None
    if handler is None:
        stats.unknown_events += 1
        return
    if name in PROCESSOR_EVENTS and not from_processor:
        _count_skip(stats, f"{name}: processor event in a client commit")
        return
    args = event.get("args")
    if not isinstance(args, dict):
        _count_skip(stats, f"{name}: args are not an object")
        return
    at = event.get("at")
    context = _Context(at_version, at if isinstance(at, str) else None, reindex)
    db.execute("SAVEPOINT event")
    try:
        handler(db, args, context)
    except ENVIRONMENT_FAILURES:
        raise
    except Exception as error:
        db.execute("ROLLBACK TO event")
        db.execute("RELEASE event")
        if isinstance(error, _Skip):
            _count_skip(stats, f"{name}: {error}")
        else:
            log.warning("event %r (%s) at version %d failed to apply: %r",
                        event_id, name, at_version, error)
            _count_skip(stats, f"{name}: failed to apply ({type(error).__name__})")
        return
    db.execute("RELEASE event")
    stats.events_applied += 1


# Argument readers: each raises _Skip with the field's name when the value
# is missing or of the wrong type.


def _text(args: dict, name: str, *, max_length: int | None = None) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise _Skip(f"{name} must be a non-empty string")
    _refuse_surrogates(value, name)
    if max_length is not None and len(value) > max_length:
        raise _Skip(f"{name} is longer than {max_length} characters")
    return value


def _id(args: dict, name: str) -> str:
    # Ids go back into the log in processor events, which refuse control
    # characters: an id they cannot carry would fail every link it touches.
    value = _text(args, name, max_length=MAX_EVENT_ID_LENGTH)
    if CONTROL_CHARACTERS.search(value):
        raise _Skip(f"{name} must not contain control characters")
    return value


def _optional_text(args: dict, name: str) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Skip(f"{name} must be a string")
    _refuse_surrogates(value, name)
    return value


def _refuse_surrogates(value: str, name: str) -> None:
    if LONE_SURROGATES.search(value):
        raise _Skip(f"{name} holds a lone surrogate, which UTF-8 cannot store")


def _count(args: dict, name: str, *, minimum: int = 0) -> int:
    value = args.get(name)
    if type(value) is not int or not minimum <= value <= INT64_MAX:
        raise _Skip(f"{name} must be an integer from {minimum} to 2**63-1")
    return value


def _number(args: dict, name: str) -> float | None:
    value = args.get(name)
    if value is None:
        return None
    if type(value) not in (int, float) or value != value or value < 0:
        raise _Skip(f"{name} must be a non-negative number")
    return float(value)


def _flag(args: dict, name: str) -> bool:
    value = args.get(name)
    if type(value) is not bool:
        raise _Skip(f"{name} must be true or false")
    return value


def _parse_time(value: Any, name: str) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise _Skip(f"{name} must be an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise _Skip(f"{name} must be an ISO 8601 time") from None


def _processor_time(moment: datetime, name: str) -> datetime:
    if moment > LATEST_PROCESSOR_TIME:
        raise _Skip(f"{name} is too late to add a retry delay to")
    return moment


def _time(args: dict, name: str) -> str:
    return format_time(_parse_time(args.get(name), name))


def _moment_or_event_time(args: dict, name: str, context: _Context) -> datetime:
    if args.get(name) is not None:
        return _parse_time(args[name], name)
    return _parse_time(context.at, f"{name} (or the event's at)")


def _time_or_event_time(args: dict, name: str, context: _Context) -> str:
    return format_time(_moment_or_event_time(args, name, context))


def _link(db: apsw.Connection, args: dict, name: str) -> str:
    """The id of the link ``args[name]`` names, directly or through an alias."""
    named = _id(args, name)
    found = db.execute(
        """SELECT id FROM links WHERE id = ?1
           UNION ALL SELECT link_id FROM link_aliases WHERE alias_id = ?1""",
        (named,),
    ).get
    if found is None:
        raise _Skip("unknown link")
    return found


def _tag(db: apsw.Connection, args: dict, name: str) -> str:
    tag_id = _id(args, name)
    if db.execute("SELECT 1 FROM tags WHERE id = ?", (tag_id,)).get is None:
        raise _Skip("unknown tag")
    return tag_id


# Client events.


def _link_created(db: apsw.Connection, args: dict, context: _Context) -> None:
    link_id = _id(args, "id")
    url = _text(args, "url", max_length=MAX_URL_LENGTH)
    created_at = _time(args, "createdAt")
    domain = _optional_text(args, "domain")
    source = _optional_text(args, "source")
    title = _optional_text(args, "title")
    taken = db.execute(
        "SELECT 1 FROM links WHERE id = ?1 UNION ALL SELECT 1 FROM link_aliases WHERE alias_id = ?1",
        (link_id,),
    ).get
    if taken is not None:
        raise _Skip("link id already exists")
    try:
        normalized = normalize_url(url)
    except ValueError:
        # Kept, not skipped: the user saved it, and processing will fail it
        # with a clear error rather than the link silently vanishing.
        normalized = None
    if normalized is not None:
        existing = db.execute(
            "SELECT id FROM links WHERE normalized_url = ?", (normalized,)
        ).get
        if existing is not None:
            db.execute(
                "INSERT INTO link_aliases (alias_id, link_id, url, created_version) VALUES (?, ?, ?, ?)",
                (link_id, existing, url, context.version),
            )
            # Saving a deleted page again brings it back: that is what the
            # user asked for by saving it.
            db.execute("UPDATE links SET deleted_at = NULL WHERE id = ?", (existing,))
            _reprocess_if_unfinished(db, existing)
            return
        domain = domain or urlsplit(normalized).hostname
    db.execute(
        """INSERT INTO links (id, url, normalized_url, domain, source, created_at, created_version)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        (link_id, url, normalized, domain, source, created_at, context.version),
    )
    if title:
        _will_reindex(db, link_id, context)
        db.execute("INSERT INTO link_metadata (link_id, title) VALUES (?, ?)", (link_id, title))


def _reprocess_if_unfinished(db: apsw.Connection, link_id: str) -> None:
    """Saving again a link that failed or was cancelled asks for it anew, as
    a reprocess request does: the user wants the page, and the old error
    would otherwise be shown forever. A completed link keeps its results and
    a pending one its run."""
    db.execute(
        "DELETE FROM link_status WHERE link_id = ? AND status IN ('failed', 'cancelled')",
        (link_id,),
    )


def _link_deleted(db: apsw.Connection, args: dict, context: _Context) -> None:
    link_id = _link(db, args, "id")
    deleted_at = _time_or_event_time(args, "deletedAt", context)
    db.execute("UPDATE links SET deleted_at = ? WHERE id = ?", (deleted_at, link_id))


def _link_restored(db: apsw.Connection, args: dict, context: _Context) -> None:
    db.execute("UPDATE links SET deleted_at = NULL WHERE id = ?", (_link(db, args, "id"),))


def _link_completed(db: apsw.Connection, args: dict, context: _Context) -> None:
    link_id = _link(db, args, "id")
    completed_at = _time_or_event_time(args, "completedAt", context)
    db.execute("UPDATE links SET completed_at = ? WHERE id = ?", (completed_at, link_id))


def _link_uncompleted(db: apsw.Connection, args: dict, context: _Context) -> None:
    db.execute("UPDATE links SET completed_at = NULL WHERE id = ?", (_link(db, args, "id"),))


def _link_reprocess_requested(db: apsw.Connection, args: dict, context: _Context) -> None:
    # No status is "needs work"; the earlier results stay visible until the
    # new ones replace them.
    db.execute("DELETE FROM link_status WHERE link_id = ?", (_link(db, args, "linkId"),))


def _tag_created(db: apsw.Connection, args: dict, context: _Context) -> None:
    tag_id = _id(args, "id")
    name = _text(args, "name")
    created_at = _time(args, "createdAt")
    sort_order = args.get("sortOrder")
    if sort_order is not None and not _sortable(sort_order):
        raise _Skip("sortOrder must be a finite number (an integer within signed 64 bits)")
    if db.execute("SELECT 1 FROM tags WHERE id = ?", (tag_id,)).get is not None:
        raise _Skip("tag id already exists")
    db.execute(
        "INSERT INTO tags (id, name, sort_order, created_at) VALUES (?, ?, ?, ?)",
        (tag_id, name, sort_order, created_at),
    )


def _sortable(value: Any) -> bool:
    if type(value) is int:
        return INT64_MIN <= value <= INT64_MAX
    return type(value) is float and math.isfinite(value)


def _tag_renamed(db: apsw.Connection, args: dict, context: _Context) -> None:
    tag_id = _tag(db, args, "id")
    db.execute("UPDATE tags SET name = ? WHERE id = ?", (_text(args, "name"), tag_id))


def _tag_deleted(db: apsw.Connection, args: dict, context: _Context) -> None:
    tag_id = _tag(db, args, "id")
    deleted_at = _time_or_event_time(args, "deletedAt", context)
    db.execute("UPDATE tags SET deleted_at = ? WHERE id = ?", (deleted_at, tag_id))


def _link_tagged(db: apsw.Connection, args: dict, context: _Context) -> None:
    link_id = _link(db, args, "linkId")
    tag_id = _tag(db, args, "tagId")
    created_at = _time_or_event_time(args, "createdAt", context)
    db.execute(
        "INSERT OR IGNORE INTO link_tags (link_id, tag_id, created_at) VALUES (?, ?, ?)",
        (link_id, tag_id, created_at),
    )


def _link_untagged(db: apsw.Connection, args: dict, context: _Context) -> None:
    link_id = _link(db, args, "linkId")
    tag_id = _tag(db, args, "tagId")
    db.execute("DELETE FROM link_tags WHERE link_id = ? AND tag_id = ?", (link_id, tag_id))


def _suggestion(db: apsw.Connection, args: dict) -> tuple[str, str | None, str | None]:
    """The suggestion ``args["id"]`` names: (link id, tag id or None, new tag name or None)."""
    suggestion_id = _id(args, "id")
    found = db.execute(
        "SELECT link_id, tag_id, name FROM tag_suggestion_ids WHERE id = ?", (suggestion_id,)
    ).fetchone()
    if found is None:
        raise _Skip("unknown suggestion")
    return found


def _suggestion_accepted(db: apsw.Connection, args: dict, context: _Context) -> None:
    link_id, tag_id, new_name = _suggestion(db, args)
    if new_name is not None:
        # A new tag is accepted as the tag the client made (or chose) for it.
        if args.get("tagId") is None:
            raise _Skip("tagId is needed to accept a new tag")
        tag_id = _tag(db, args, "tagId")
        db.execute(
            """UPDATE new_tag_suggestions SET status = 'accepted', tag_id = ?
               WHERE link_id = ? AND name = ?""",
            (tag_id, link_id, new_name),
        )
    else:
        if args.get("tagId") is not None and _id(args, "tagId") != tag_id:
            raise _Skip("tagId is not the suggested tag")
        db.execute(
            "UPDATE tag_suggestions SET status = 'accepted' WHERE link_id = ? AND tag_id = ?",
            (link_id, tag_id),
        )
    # Accepting a suggestion tags the link; a client that also sends
    # LinkTagged changes nothing more.
    db.execute(
        "INSERT OR IGNORE INTO link_tags (link_id, tag_id, created_at) VALUES (?, ?, ?)",
        (link_id, tag_id, _optional_event_time(context)),
    )


def _optional_event_time(context: _Context) -> str | None:
    try:
        return format_time(_parse_time(context.at, "at"))
    except _Skip:
        return None


def _suggestion_dismissed(db: apsw.Connection, args: dict, context: _Context) -> None:
    link_id, tag_id, new_name = _suggestion(db, args)
    if new_name is not None:
        db.execute(
            "UPDATE new_tag_suggestions SET status = 'dismissed' WHERE link_id = ? AND name = ?",
            (link_id, new_name),
        )
        return
    db.execute(
        "UPDATE tag_suggestions SET status = 'dismissed' WHERE link_id = ? AND tag_id = ?",
        (link_id, tag_id),
    )


def _settings_changed(db: apsw.Connection, args: dict, context: _Context) -> None:
    checks = {
        "summarizer": summarizer_problem,
        "summarizerTimeout": timeout_problem,
        "tagSuggestions": tag_suggestions_problem,
    }
    chosen = {name: args.get(name) for name in checks}
    for name, problem in checks.items():
        if chosen[name] is not None and problem(chosen[name]) is not None:
            raise _Skip(f"{name} {problem(chosen[name])}")
    if all(value is None for value in chosen.values()):
        raise _Skip("no setting named")
    # What the event leaves out keeps its value.
    db.execute(
        """INSERT INTO org_settings (id, summarizer, summarizer_timeout, tag_suggestions, changed_at, changed_version)
           VALUES (1, :summarizer, :summarizerTimeout, :tagSuggestions, :at, :version)
           ON CONFLICT (id) DO UPDATE SET
               summarizer = coalesce(excluded.summarizer, summarizer),
               summarizer_timeout = coalesce(excluded.summarizer_timeout, summarizer_timeout),
               tag_suggestions = coalesce(excluded.tag_suggestions, tag_suggestions),
               changed_at = excluded.changed_at,
               changed_version = excluded.changed_version""",
        {**chosen, "at": _optional_event_time(context), "version": context.version},
    )


# Processor events.


def _previous_status(db: apsw.Connection, link_id: str) -> tuple[int, str | None]:
    """The link's attempts so far (at least 1 once it has an outcome) and start time."""
    row = db.execute(
        "SELECT attempts, started_at FROM link_status WHERE link_id = ?", (link_id,)
    ).fetchone()
    return (row[0] or 1, row[1]) if row else (1, None)


def _set_status(db: apsw.Connection, link_id: str, **columns: Any) -> None:
    """Replace the link's status row; attempts and start time carry over unless given."""
    attempts, started_at = _previous_status(db, link_id)
    row = {
        "link_id": link_id,
        "attempts": attempts,
        "started_at": started_at,
        "finished_at": None,
        "next_retry_at": None,
        "error_code": None,
        "error_message": None,
        "retryable": None,
        "reason": None,
        **columns,
    }
    db.execute(
        """INSERT OR REPLACE INTO link_status
           (link_id, status, attempts, started_at, finished_at, next_retry_at,
            error_code, error_message, retryable, reason)
           VALUES (:link_id, :status, :attempts, :started_at, :finished_at, :next_retry_at,
                   :error_code, :error_message, :retryable, :reason)""",
        row,
    )


def _processing_started(db: apsw.Connection, args: dict, context: _Context) -> None:
    link_id = _link(db, args, "linkId")
    attempt = _count(args, "attempt", minimum=1)
    started_at = _processor_time(_parse_time(args.get("startedAt"), "startedAt"), "startedAt")
    _set_status(
        db, link_id, status="pending", attempts=attempt, started_at=format_time(started_at)
    )


def _pending_link(db: apsw.Connection, args: dict) -> str:
    """The link an outcome event names, which must be pending.

    An outcome belongs to the run that started the link. When a reprocess
    request cleared the status meanwhile (or the link was never started),
    the outcome is stale: applying it would end the work the user asked for.
    """
    link_id = _link(db, args, "linkId")
    status = db.execute("SELECT status FROM link_status WHERE link_id = ?", (link_id,)).get
    if status != "pending":
        raise _Skip("link is not pending")
    return link_id


def _processing_completed(db: apsw.Connection, args: dict, context: _Context) -> None:
    link_id = _pending_link(db, args)
    completed_at = _time_or_event_time(args, "completedAt", context)
    _set_status(db, link_id, status="completed", finished_at=completed_at)


def retry_delay(attempts: int, retry_after: float | None) -> timedelta | None:
    """How long after a retryable failure the link is due again, or None when it is not.

    FIRST_RETRY_SECONDS after the first attempt, RETRY_GROWTH times longer
    after each one since; a server's Retry-After wins when it asks for
    longer. After MAX_ATTEMPTS: never.
    """
    if attempts >= MAX_ATTEMPTS:
        return None
    seconds = FIRST_RETRY_SECONDS * RETRY_GROWTH ** max(attempts - 1, 0)
    if retry_after is not None:
        seconds = max(seconds, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return timedelta(seconds=seconds)


def _processing_failed(db: apsw.Connection, args: dict, context: _Context) -> None:
    link_id = _pending_link(db, args)
    code = _text(args, "code", max_length=200)
    message = _optional_text(args, "message") or ""
    retryable = _flag(args, "retryable")
    retry_after = _number(args, "retryAfter")
    failed_at = _processor_time(_moment_or_event_time(args, "failedAt", context), "failedAt")
    attempts, _ = _previous_status(db, link_id)
    delay = retry_delay(attempts, retry_after) if retryable else None
    _set_status(
        db,
        link_id,
        status="failed",
        attempts=attempts,
        finished_at=format_time(failed_at),
        next_retry_at=format_time(failed_at + delay) if delay is not None else None,
        error_code=code,
        error_message=message,
        retryable=int(retryable),
    )


def _processing_cancelled(db: apsw.Connection, args: dict, context: _Context) -> None:
    link_id = _pending_link(db, args)
    reason = _optional_text(args, "reason")
    _set_status(db, link_id, status="cancelled", reason=reason)


def _will_reindex(db: apsw.Connection, link_id: str, context: _Context) -> None:
    """Note, before the first change to a link's metadata or text in this
    transaction, what the full-text index holds for it."""
    seq = db.execute("SELECT seq FROM links WHERE id = ?", (link_id,)).get
    if seq not in context.reindex:
        context.reindex[seq] = db.execute(
            "SELECT title, description, text FROM link_documents WHERE seq = ?", (seq,)
        ).fetchone()


def _update_search_index(db: apsw.Connection, reindex: dict[int, tuple | None]) -> None:
    """Bring the full-text index in step with the links changed, once per
    link and in rowid order.

    The index is external-content over the link_documents view, so an entry
    is removed by handing FTS5 the exact values it was built from. Indexing
    each event as it comes would delete and re-add a row FTS5 has pending,
    which makes it flush its pending data every time: ten times slower.
    """
    for seq in sorted(reindex):
        indexed = reindex[seq]
        if indexed is not None:
            db.execute(
                "INSERT INTO link_search (link_search, rowid, title, description, text) VALUES ('delete', ?, ?, ?, ?)",
                (seq, *indexed),
            )
        db.execute(
            "INSERT INTO link_search (rowid, title, description, text) SELECT seq, title, description, text FROM link_documents WHERE seq = ?",
            (seq,),
        )


METADATA_FIELDS = {
    "title": "title",
    "description": "description",
    "image": "image",
    "siteName": "site_name",
    "favicon": "favicon",
    "canonicalUrl": "canonical_url",
    "author": "author",
    "publishedAt": "published_at",
    "lang": "lang",
}


def _metadata_fetched(db: apsw.Connection, args: dict, context: _Context) -> None:
    link_id = _link(db, args, "linkId")
    values = {column: _optional_text(args, name) for name, column in METADATA_FIELDS.items()}
    if values["title"] is None:
        # A page without a title keeps the one the user saved it with.
        values["title"] = db.execute(
            "SELECT title FROM link_metadata WHERE link_id = ?", (link_id,)
        ).get
    _will_reindex(db, link_id, context)
    db.execute(
        f"""INSERT OR REPLACE INTO link_metadata (link_id, {", ".join(values)})
            VALUES (:link_id, {", ".join(":" + column for column in values)})""",
        {"link_id": link_id, **values},
    )


def _content_extracted(db: apsw.Connection, args: dict, context: _Context) -> None:
    link_id = _link(db, args, "linkId")
    text = args.get("text")
    if not isinstance(text, str):
        raise _Skip("text must be a string")
    word_count = _count(args, "wordCount")
    reading_minutes = _count(args, "readingMinutes")
    _will_reindex(db, link_id, context)
    db.execute(
        "INSERT OR REPLACE INTO link_text (link_id, text, word_count, reading_minutes) VALUES (?, ?, ?, ?)",
        (link_id, text, word_count, reading_minutes),
    )


def _summarized(db: apsw.Connection, args: dict, context: _Context) -> None:
    link_id = _link(db, args, "linkId")
    summary = args.get("summary")
    if not isinstance(summary, str):
        raise _Skip("summary must be a string")
    db.execute(
        """INSERT OR REPLACE INTO link_summaries (link_id, summary, model, fallback_from, fallback_reason)
           VALUES (?, ?, ?, ?, ?)""",
        (
            link_id,
            summary,
            _optional_text(args, "model"),
            _optional_text(args, "fallbackFrom"),
            _optional_text(args, "fallbackReason"),
        ),
    )


def _tag_suggested(db: apsw.Connection, args: dict, context: _Context) -> None:
    link_id = _link(db, args, "linkId")
    tag_id = _tag(db, args, "tagId")
    suggestion_id, score = _suggestion_given(db, args, link_id, tag_id=tag_id)
    # One suggestion per link and tag: suggesting it again (after a
    # reprocess) refreshes the score but keeps the user's answer.
    db.execute(
        """INSERT INTO tag_suggestions (link_id, tag_id, id, score, status)
           VALUES (?, ?, ?, ?, 'suggested')
           ON CONFLICT (link_id, tag_id) DO UPDATE SET id = excluded.id, score = excluded.score""",
        (link_id, tag_id, suggestion_id, score),
    )


def _new_tag_suggested(db: apsw.Connection, args: dict, context: _Context) -> None:
    link_id = _link(db, args, "linkId")
    name = _text(args, "name", max_length=MAX_NEW_TAG_NAME)
    if CONTROL_CHARACTERS.search(name):
        raise _Skip("name must not contain control characters")
    suggestion_id, score = _suggestion_given(db, args, link_id, name=name)
    # As for existing tags: suggesting it again keeps the user's answer.
    db.execute(
        """INSERT INTO new_tag_suggestions (link_id, name, id, score, status)
           VALUES (?, ?, ?, ?, 'suggested')
           ON CONFLICT (link_id, name) DO UPDATE SET id = excluded.id, score = excluded.score""",
        (link_id, name, suggestion_id, score),
    )


def _suggestion_given(
    db: apsw.Connection, args: dict, link_id: str, *, tag_id: str | None = None, name: str | None = None
) -> tuple[str, float]:
    """Record a new suggestion id (of tag ``tag_id``, or of a new tag ``name``)
    and return it with the suggestion's score."""
    suggestion_id = _id(args, "id")
    score = _number(args, "score")
    if score is None or score > 1:
        raise _Skip("score must be a number from 0 to 1")
    if db.execute("SELECT 1 FROM tag_suggestion_ids WHERE id = ?", (suggestion_id,)).get:
        raise _Skip("suggestion id already exists")
    db.execute(
        "INSERT INTO tag_suggestion_ids (id, link_id, tag_id, name) VALUES (?, ?, ?, ?)",
        (suggestion_id, link_id, tag_id, name),
    )
    return suggestion_id, score


HANDLERS: dict[str, Callable[[apsw.Connection, dict, _Context], None]] = {
    "v1.LinkCreated": _link_created,
    "v1.LinkDeleted": _link_deleted,
    "v1.LinkRestored": _link_restored,
    "v1.LinkCompleted": _link_completed,
    "v1.LinkUncompleted": _link_uncompleted,
    "v1.LinkReprocessRequested": _link_reprocess_requested,
    "v1.TagCreated": _tag_created,
    "v1.TagRenamed": _tag_renamed,
    "v1.TagDeleted": _tag_deleted,
    "v1.LinkTagged": _link_tagged,
    "v2.LinkUntagged": _link_untagged,
    "v1.TagSuggestionAccepted": _suggestion_accepted,
    "v1.TagSuggestionDismissed": _suggestion_dismissed,
    "v1.OrgSettingsChanged": _settings_changed,
    "v1.LinkProcessingStarted": _processing_started,
    "v1.LinkMetadataFetched": _metadata_fetched,
    "v1.LinkContentExtracted": _content_extracted,
    "v1.LinkSummarized": _summarized,
    "v1.TagSuggested": _tag_suggested,
    "v1.NewTagSuggested": _new_tag_suggested,
    "v1.LinkProcessingCompleted": _processing_completed,
    "v1.LinkProcessingFailed": _processing_failed,
    "v1.LinkProcessingCancelled": _processing_cancelled,
}
