"""Which links of an org need processing now, and when to look again (DESIGN §6)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Iterable

import apsw

from chalicelib.links.outcome import LinkJob, TagChoice
from chalicelib.state.apply import MAX_ATTEMPTS
from chalicelib.state.times import format_time, parse_time

STUCK_AFTER = timedelta(minutes=5)


def live_tags(db: apsw.Connection) -> tuple[TagChoice, ...]:
    """The org's tags that are not deleted, in the user's order."""
    return tuple(
        TagChoice(id=tag_id, name=name)
        for tag_id, name in db.execute(
            """SELECT id, name FROM tags WHERE deleted_at IS NULL
               ORDER BY sort_order IS NULL, sort_order, name, id"""
        )
    )


def links_needing_work(
    db: apsw.Connection,
    now: datetime,
    *,
    stuck_after: timedelta = STUCK_AFTER,
    max_attempts: int = MAX_ATTEMPTS,
    limit: int | None = None,
) -> list[LinkJob]:
    """Links to process now, oldest saved first.

    A link that is not deleted needs work when it has no status (new, or
    reprocess requested), when it has been pending for at least
    ``stuck_after`` (the run that started it died), or when it failed with
    a retryable error, has had fewer than ``max_attempts`` attempts and its
    retry time has come.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, not {limit}")
    rows = db.execute(
        """SELECT links.id, links.url FROM links
           LEFT JOIN link_status AS status ON status.link_id = links.id
           WHERE links.deleted_at IS NULL AND (
               status.link_id IS NULL
               OR (status.status = 'pending' AND status.started_at <= :stuck_before)
               OR (status.status = 'failed' AND status.retryable = 1
                   AND status.attempts < :max_attempts AND status.next_retry_at <= :now))
           ORDER BY links.seq
           LIMIT :limit""",
        {
            "now": format_time(now),
            "stuck_before": format_time(now - stuck_after),
            "max_attempts": max_attempts,
            "limit": -1 if limit is None else limit,
        },
    ).fetchall()
    if not rows:
        return []
    tags = live_tags(db)
    return [LinkJob(link_id=link_id, url=url, tags=tags) for link_id, url in rows]


def next_retry_due(
    db: apsw.Connection,
    *,
    stuck_after: timedelta = STUCK_AFTER,
    max_attempts: int = MAX_ATTEMPTS,
) -> datetime | None:
    """When a link that does not need work yet will need it: the earliest
    retry time of a retryable failure or the moment a pending link counts
    as stuck. None when nothing is waiting. Links that need work already
    (no status) are not counted: links_needing_work finds them.
    """
    retry_at, oldest_start = db.execute(
        """SELECT
             (SELECT min(next_retry_at) FROM link_status JOIN links ON links.id = link_id
              WHERE links.deleted_at IS NULL AND status = 'failed' AND retryable = 1
                AND attempts < :max_attempts AND next_retry_at IS NOT NULL),
             (SELECT min(started_at) FROM link_status JOIN links ON links.id = link_id
              WHERE links.deleted_at IS NULL AND status = 'pending')""",
        {"max_attempts": max_attempts},
    ).fetchone()
    candidates = []
    if retry_at is not None:
        candidates.append(parse_time(retry_at))
    if oldest_start is not None:
        candidates.append(parse_time(oldest_start) + stuck_after)
    return min(candidates, default=None)


def attempts_of(db: apsw.Connection, link_ids: Iterable[str]) -> dict[str, int]:
    """Attempts started so far, by link id; links never started are left out."""
    return dict(_status_column(db, "attempts", link_ids))


def statuses_of(db: apsw.Connection, link_ids: Iterable[str]) -> dict[str, str]:
    """Processing status (pending, completed, failed, cancelled) by link id;
    links with no status (new, or reprocess requested) are left out."""
    return dict(_status_column(db, "status", link_ids))


def _status_column(db: apsw.Connection, column: str, link_ids: Iterable[str]):
    return db.execute(
        f"SELECT link_id, {column} FROM link_status WHERE link_id IN "
        "(SELECT value FROM json_each(?))",
        (json.dumps(list(link_ids)),),
    )
