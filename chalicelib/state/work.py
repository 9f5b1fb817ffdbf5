"""Which links of an org need processing now, and when to look again (DESIGN §6)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Iterable

import apsw

from chalicelib.links.outcome import LinkJob, TagChoice
from chalicelib.links.tags import common_words
from chalicelib.state.apply import MAX_ATTEMPTS
from chalicelib.state.queries import org_settings
from chalicelib.state.times import format_time, parse_time

# The one definition of "this link needs work now", shared by the work
# list and the idle check so the two can never disagree.
_NEEDS_WORK = """links.deleted_at IS NULL AND (
    status.link_id IS NULL
    OR status.status = 'pending'
    OR (status.status = 'failed' AND status.retryable = 1
        AND status.attempts < :max_attempts AND status.next_retry_at <= :now))"""


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
    max_attempts: int = MAX_ATTEMPTS,
    limit: int | None = None,
) -> list[LinkJob]:
    """Links to process now, oldest saved first, each with the org's
    tags and settings (summarizer, new tag suggestions).

    A link that is not deleted needs work when it has no status (never
    started, or reprocess requested), when it is pending, or when it failed
    with a retryable error, has had fewer than ``max_attempts`` attempts and
    its retry time has come.

    A pending link needs work because only a cycle holding the org's lease
    reads this, and every link pending in its state was started by an
    earlier holder: one that released the lease (its budget ended before
    the link did; a late result is dropped) or lost it (it crashed, or can
    no longer commit: the lease is renewed before every commit, and our
    commits carry a higher epoch, which makes the state skip its commits).
    Either way no result for that start will ever land, so waiting for one
    would only leave the link pending.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, not {limit}")
    rows = db.execute(
        f"""SELECT links.id, links.url FROM links
           LEFT JOIN link_status AS status ON status.link_id = links.id
           WHERE {_NEEDS_WORK}
           ORDER BY links.seq
           LIMIT :limit""",
        {
            "now": format_time(now),
            "max_attempts": max_attempts,
            "limit": -1 if limit is None else limit,
        },
    ).fetchall()
    if not rows:
        return []
    tags = live_tags(db)
    # Read every cycle: a settings change applies from the next link processed.
    chosen = org_settings(db)
    common = org_common_words(db) if chosen.suggest_new_tags else frozenset()
    return [
        LinkJob(
            link_id=link_id,
            url=url,
            tags=tags,
            suggest_new_tags=chosen.suggest_new_tags,
            common_words=common,
            summarizer=chosen.summarizer,
            summarizer_timeout=chosen.summarizer_timeout,
        )
        for link_id, url in rows
    ]


# The org's newest pages that tell its common words, and how much of each
# text is read: enough for shares to mean something (on the readability
# test pages, 10,000 characters find the words the whole texts find, 5,000
# miss "using" and "data"), little enough that a cycle pays a tenth of a
# second for them.
COMMON_WORDS_PAGES = 100
COMMON_WORDS_CHARS = 10_000


def org_common_words(db: apsw.Connection) -> frozenset[str]:
    """The words on many of the org's recent pages, which new tags leave out.

    Read from the titles and the start of the texts of its newest
    ``COMMON_WORDS_PAGES`` saved links, so the cost of a cycle does not
    grow with the org.
    """
    texts = db.execute(
        """SELECT coalesce(meta.title, '') || char(10) || substr(link_text.text, 1, :chars)
           FROM link_text JOIN links ON links.id = link_text.link_id
           LEFT JOIN link_metadata AS meta ON meta.link_id = links.id
           WHERE links.deleted_at IS NULL ORDER BY links.seq DESC LIMIT :pages""",
        {"chars": COMMON_WORDS_CHARS, "pages": COMMON_WORDS_PAGES},
    )
    return common_words(text for (text,) in texts)


def next_due(
    db: apsw.Connection, now: datetime, *, max_attempts: int = MAX_ATTEMPTS
) -> datetime | None:
    """When the org next needs a cycle: ``now`` if a link needs work now
    (links_needing_work would find one), else the earliest retry time of a
    retryable failure; None when no link will ever need work without a new
    event. This is the idle check's only source (the released lease carries
    it), so it must never say "later" or "never" while a link is waiting.
    """
    parameters = {"now": format_time(now), "max_attempts": max_attempts}
    waiting = db.execute(
        f"""SELECT 1 FROM links LEFT JOIN link_status AS status ON status.link_id = links.id
            WHERE {_NEEDS_WORK} LIMIT 1""",
        parameters,
    ).fetchone()
    if waiting is not None:
        return now
    retry_at = db.execute(
        """SELECT min(next_retry_at) FROM link_status JOIN links ON links.id = link_id
           WHERE links.deleted_at IS NULL AND status = 'failed' AND retryable = 1
             AND attempts < :max_attempts AND next_retry_at IS NOT NULL""",
        parameters,
    ).get
    return parse_time(retry_at) if retry_at is not None else None


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
