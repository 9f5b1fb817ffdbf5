"""The read side of an org's state, for the API: links, one link, search, SQL.

Nothing here writes. run_readonly_sql runs user-written SQL, so it is held
read-only by SQLite itself (an authorizer and ``PRAGMA query_only``), not by
looking at the text.
"""

from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import apsw
import apsw.ext

from chalicelib.orgsettings import DEFAULTS, OrgSettings

DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_SEARCH_RESULTS = 100
MAX_SEARCH_QUERY = 1000
MAX_SQL_LENGTH = 10_000
# The largest string or blob user SQL may build: randomblob(1e9) would
# otherwise take a gigabyte from a Lambda function. Stored texts are far
# smaller.
MAX_VALUE_BYTES = 10_000_000
# The rows of one answer, as JSON: a thousand rows of a megabyte each would
# otherwise be a gigabyte built in memory and sent.
MAX_RESULT_BYTES = 5_000_000
STATUSES = ("new", "pending", "completed", "failed", "cancelled")
# Title and description matches say more about a page than a word deep in
# its text.
SEARCH_WEIGHTS = (10.0, 5.0, 1.0)

_LINK_COLUMNS = """
    links.seq, links.id, links.url, links.normalized_url, links.domain, links.source,
    links.created_at, links.completed_at, links.deleted_at,
    status.status, status.attempts, status.started_at, status.finished_at,
    status.next_retry_at, status.error_code, status.error_message, status.retryable,
    (SELECT reading_minutes FROM link_text WHERE link_text.link_id = links.id),
    meta.link_id, meta.title, meta.description, meta.image, meta.site_name, meta.favicon,
    meta.canonical_url, meta.author, meta.published_at, meta.lang
"""
_LINK_JOINS = """
    FROM links
    LEFT JOIN link_status AS status ON status.link_id = links.id
    LEFT JOIN link_metadata AS meta ON meta.link_id = links.id
"""
_METADATA_KEYS = (
    "title", "description", "image", "site_name", "favicon",
    "canonical_url", "author", "published_at", "lang",
)


@dataclass(frozen=True)
class LinkPage:
    """One page of links, newest saved first; pass next_cursor for the next page."""

    links: list[dict]
    next_cursor: str | None


@dataclass(frozen=True)
class SqlResult:
    """Rows of JSON values (see json_value); ``truncated_reason`` is
    "max_rows" or "max_bytes" when ``truncated``, else None."""

    columns: list[str]
    rows: list[tuple]
    truncated: bool
    truncated_reason: str | None = None


class QueryRejected(Exception):
    """User SQL that was not run, or was stopped.

    ``code`` is one of: invalid, too_long, empty, multiple_statements,
    invalid_sql, not_allowed, time_limit, too_big, invalid_text.
    """

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


def _link_dict(row: tuple) -> dict:
    (seq, link_id, url, normalized_url, domain, source, created_at, completed_at,
     deleted_at, status, attempts, started_at, finished_at, next_retry_at,
     error_code, error_message, retryable, reading_minutes, metadata_link, *metadata) = row
    return {
        "id": link_id,
        "url": url,
        "normalized_url": normalized_url,
        "domain": domain,
        "source": source,
        "created_at": created_at,
        "completed_at": completed_at,
        "deleted_at": deleted_at,
        "status": status or "new",
        "attempts": attempts or 0,
        "started_at": started_at,
        "finished_at": finished_at,
        "next_retry_at": next_retry_at,
        "error": (
            {"code": error_code, "message": error_message, "retryable": bool(retryable)}
            if error_code is not None
            else None
        ),
        "metadata": dict(zip(_METADATA_KEYS, metadata)) if metadata_link else None,
        "reading_minutes": reading_minutes,
    }


def _tags_of(db: apsw.Connection, link_ids: list[str]) -> dict[str, list[dict]]:
    tags: dict[str, list[dict]] = {link_id: [] for link_id in link_ids}
    if not link_ids:
        return tags
    rows = db.execute(
        f"""SELECT link_tags.link_id, tags.id, tags.name FROM link_tags
            JOIN tags ON tags.id = link_tags.tag_id
            WHERE tags.deleted_at IS NULL AND link_tags.link_id IN ({",".join("?" * len(link_ids))})
            ORDER BY tags.sort_order IS NULL, tags.sort_order, tags.name, tags.id""",
        link_ids,
    )
    for link_id, tag_id, name in rows:
        tags[link_id].append({"id": tag_id, "name": name})
    return tags


def list_links(
    db: apsw.Connection,
    *,
    status: str | None = None,
    tag: str | None = None,
    archived: bool | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE,
) -> LinkPage:
    """Saved links that are not deleted, newest first, with status, metadata and tags.

    ``status`` is one of STATUSES ("new": not processed yet); ``tag`` a tag
    id; ``archived`` True for links marked read (``v1.LinkCompleted``),
    False for the others; ``cursor`` the next_cursor of the previous page.
    The cursor is a position in saving order, so pages stay stable while
    links are saved, processed or archived. Bad values raise ValueError.
    """
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be an integer from 1 to {MAX_PAGE}")
    if tag is not None and not isinstance(tag, str):
        raise ValueError("tag must be a tag id")
    if archived is not None and not isinstance(archived, bool):
        raise ValueError("archived must be true or false")
    before = _cursor_position(cursor)
    conditions = ["links.deleted_at IS NULL"]
    params: dict[str, Any] = {"limit": limit + 1}
    if before is not None:
        conditions.append("links.seq < :before")
        params["before"] = before
    if status == "new":
        conditions.append("status.status IS NULL")
    elif status is not None:
        conditions.append("status.status = :status")
        params["status"] = status
    if tag is not None:
        conditions.append(
            "EXISTS (SELECT 1 FROM link_tags WHERE link_tags.link_id = links.id AND link_tags.tag_id = :tag)"
        )
        params["tag"] = tag
    if archived is not None:
        conditions.append(f"links.completed_at IS {'NOT ' if archived else ''}NULL")
    rows = db.execute(
        f"SELECT {_LINK_COLUMNS} {_LINK_JOINS} WHERE {' AND '.join(conditions)} "
        "ORDER BY links.seq DESC LIMIT :limit",
        params,
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    links = [_link_dict(row) for row in rows]
    tags = _tags_of(db, [link["id"] for link in links])
    for link in links:
        link["tags"] = tags[link["id"]]
    return LinkPage(links=links, next_cursor=str(rows[-1][0]) if more else None)


@dataclass
class TagPage:
    """One page of tags, in their order; pass next_cursor for the next page."""

    tags: list[dict]
    next_cursor: str | None


def list_tags(db: apsw.Connection, *, cursor: str | None = None, limit: int = DEFAULT_PAGE) -> TagPage:
    """The org's tags (deleted ones left out), in their sort order and then by
    name, each with ``count``: how many saved (not deleted) links carry it.

    The cursor holds the last tag's place in that order (its sort order,
    name and id), so a page starts after it even if tags were added,
    renamed or deleted since. Bad values raise ValueError.
    """
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be an integer from 1 to {MAX_PAGE}")
    # NULL sort orders come last; coalesce gives the row value a number to compare.
    key = "tags.sort_order IS NULL, coalesce(tags.sort_order, 0), tags.name, tags.id"
    condition = ""
    params: dict[str, Any] = {"limit": limit + 1}
    if cursor is not None:
        condition = f"AND ({key}) > (:unsorted, :sort_order, :name, :id)"
        params.update(zip(("unsorted", "sort_order", "name", "id"), _tag_cursor_place(cursor)))
    rows = db.execute(
        f"""SELECT tags.id, tags.name, tags.sort_order, tags.created_at,
                  (SELECT count(*) FROM link_tags JOIN links ON links.id = link_tags.link_id
                   WHERE link_tags.tag_id = tags.id AND links.deleted_at IS NULL)
           FROM tags WHERE tags.deleted_at IS NULL {condition}
           ORDER BY {key} LIMIT :limit""",
        params,
    ).fetchall()
    tags = [
        {"id": tag_id, "name": name, "sort_order": sort_order, "created_at": created_at, "count": count}
        for tag_id, name, sort_order, created_at, count in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        last = tags[-1]
        place = [last["sort_order"] is None, last["sort_order"] or 0, last["name"], last["id"]]
        next_cursor = base64.urlsafe_b64encode(json.dumps(place).encode()).decode().rstrip("=")
    return TagPage(tags=tags, next_cursor=next_cursor)


def _tag_cursor_place(cursor: str) -> tuple[bool, float, str, str]:
    """The place a list_tags cursor holds; ValueError for anything else."""
    problem = ValueError("cursor must be the next_cursor of a previous page")
    if not isinstance(cursor, str) or len(cursor) > 2048:
        raise problem
    try:
        place = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, RecursionError):  # bad base64, UTF-8 or JSON, or JSON nested too deep
        raise problem from None
    if not (isinstance(place, list) and len(place) == 4 and isinstance(place[0], bool)
            and type(place[1]) in (int, float) and math.isfinite(place[1])
            and all(isinstance(text, str) for text in place[2:])):
        raise problem
    try:
        # SQLite takes UTF-8 text only: no unpaired surrogates.
        place[2].encode("utf-8"), place[3].encode("utf-8")
    except UnicodeEncodeError:
        raise problem from None
    return tuple(place)


def _links_by_id(db: apsw.Connection, link_ids: list[str]) -> dict[str, dict]:
    """The link dicts (as list_links has them, tags included) of ``link_ids``."""
    if not link_ids:
        return {}
    rows = db.execute(
        f"SELECT {_LINK_COLUMNS} {_LINK_JOINS} WHERE links.id IN ({','.join('?' * len(link_ids))})",
        link_ids,
    ).fetchall()
    links = {link["id"]: link for link in map(_link_dict, rows)}
    tags = _tags_of(db, list(links))
    for link_id, link in links.items():
        link["tags"] = tags[link_id]
    return links


def _cursor_position(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not isinstance(cursor, str) or not cursor.isdigit() or len(cursor) > 18:
        raise ValueError("cursor must be the next_cursor of a previous page")
    return int(cursor)


def get_link(db: apsw.Connection, link_id: str) -> dict | None:
    """One link (by its id or an alias id) with text, summary, tags and
    suggestions; deleted links too. None when no such link exists."""
    if not isinstance(link_id, str):
        return None
    row = db.execute(
        f"""SELECT {_LINK_COLUMNS} {_LINK_JOINS}
            WHERE links.id = coalesce(
                (SELECT link_id FROM link_aliases WHERE alias_id = ?1), ?1)""",
        (link_id,),
    ).fetchone()
    if row is None:
        return None
    link = _link_dict(row)
    link_id = link["id"]
    link["tags"] = _tags_of(db, [link_id])[link_id]
    text = db.execute(
        "SELECT text, word_count, reading_minutes FROM link_text WHERE link_id = ?", (link_id,)
    ).fetchone()
    link["text"], link["word_count"], link["reading_minutes"] = text or (None, 0, 0)
    summary = db.execute(
        "SELECT summary, model, fallback_from, fallback_reason FROM link_summaries WHERE link_id = ?",
        (link_id,),
    ).fetchone()
    (
        link["summary"],
        link["summary_model"],
        link["summary_fallback_from"],
        link["summary_fallback_reason"],
    ) = summary or (None, None, None, None)
    link["suggestions"] = _suggestions_of(db, link_id)
    link["aliases"] = [
        alias for (alias,) in db.execute(
            "SELECT alias_id FROM link_aliases WHERE link_id = ? ORDER BY created_version, alias_id",
            (link_id,),
        )
    ]
    return link


def _suggestions_of(db: apsw.Connection, link_id: str) -> list[dict]:
    """The link's tag suggestions, best first: of existing tags (``new``
    false) and of new tags (``new`` true; ``tag_id`` is null until one is
    accepted as a tag)."""
    rows = db.execute(
        """SELECT s.id, tags.id, tags.name, s.score, s.status, 0 FROM tag_suggestions AS s
               JOIN tags ON tags.id = s.tag_id
               WHERE s.link_id = ?1 AND tags.deleted_at IS NULL
           UNION ALL
           SELECT s.id, s.tag_id, s.name, s.score, s.status, 1 FROM new_tag_suggestions AS s
               WHERE s.link_id = ?1
           ORDER BY 4 DESC, 6, 3, 1""",
        (link_id,),
    )
    return [
        {"id": suggestion_id, "tag_id": tag_id, "tag_name": name, "score": score, "status": status, "new": bool(new)}
        for suggestion_id, tag_id, name, score, status, new in rows
    ]


def org_settings(db: apsw.Connection) -> OrgSettings:
    """The org's settings: what it chose, the defaults for what it never did."""
    row = db.execute(
        "SELECT summarizer, summarizer_timeout, tag_suggestions FROM org_settings WHERE id = 1"
    ).fetchone()
    if row is None:
        return DEFAULTS
    summarizer, timeout, tag_suggestions = row
    return OrgSettings(
        summarizer=summarizer or DEFAULTS.summarizer,
        summarizer_timeout=timeout if timeout is not None else DEFAULTS.summarizer_timeout,
        tag_suggestions=tag_suggestions or DEFAULTS.tag_suggestions,
    )


def fts_query(text: str) -> str | None:
    """User words as an FTS5 query that cannot be a syntax error: every word
    becomes a quoted phrase (all must match). None when no word is left."""
    terms = [
        '"' + word.replace('"', '""') + '"'
        for word in text.split()
        if any(character.isalnum() for character in word)
    ]
    return " ".join(terms) or None


def search(
    db: apsw.Connection, q: str, limit: int = 20, *, mark: tuple[str, str] = ("[", "]")
) -> list[dict]:
    """Links matching every word of ``q`` in title, description or text,
    best first (bm25), each with a snippet whose matches are wrapped in
    ``mark``, the same snippet as ``highlights`` (``[text, is_match]``
    pieces, for clients that mark matches themselves) and the ``link`` as
    list_links shows it. Deleted links are left out."""
    if not isinstance(q, str) or len(q) > MAX_SEARCH_QUERY:
        raise ValueError(f"q must be text of at most {MAX_SEARCH_QUERY} characters")
    if type(limit) is not int or not 1 <= limit <= MAX_SEARCH_RESULTS:
        raise ValueError(f"limit must be an integer from 1 to {MAX_SEARCH_RESULTS}")
    query = fts_query(q)
    if query is None:
        return []
    rows = db.execute(
        """SELECT links.id, links.url, meta.title,
                  snippet(link_search, -1, :open, :close, '…', 16),
                  bm25(link_search, :title_weight, :description_weight, :text_weight) AS score
           FROM link_search
           JOIN links ON links.seq = link_search.rowid
           LEFT JOIN link_metadata AS meta ON meta.link_id = links.id
           WHERE link_search MATCH :query AND links.deleted_at IS NULL
           ORDER BY score, links.seq DESC
           LIMIT :limit""",
        {
            "query": query,
            "open": _MATCH_OPEN,
            "close": _MATCH_CLOSE,
            "title_weight": SEARCH_WEIGHTS[0],
            "description_weight": SEARCH_WEIGHTS[1],
            "text_weight": SEARCH_WEIGHTS[2],
            "limit": limit,
        },
    ).fetchall()
    links = _links_by_id(db, [row[0] for row in rows])
    return [
        {
            "id": link_id,
            "url": url,
            "title": title,
            "snippet": snippet.replace(_MATCH_OPEN, mark[0]).replace(_MATCH_CLOSE, mark[1]),
            "highlights": _highlights(snippet),
            "score": -score,
            "link": links[link_id],
        }
        for link_id, url, title, snippet, score in rows
    ]


# FTS5 wraps matches in these (Unicode private-use characters, which page
# text does not use), so the pieces are found without guessing whether a
# bracket was the page's own.
_MATCH_OPEN, _MATCH_CLOSE = "\ue000", "\ue001"


def _highlights(snippet: str) -> list[list]:
    pieces: list[list] = []
    for index, part in enumerate(snippet.split(_MATCH_OPEN)):
        match, _, rest = part.partition(_MATCH_CLOSE) if index else ("", "", part)
        pieces.extend([text, is_match] for text, is_match in ((match, True), (rest, False)) if text)
    return pieces


_ALLOWED_ACTIONS = frozenset(
    {apsw.SQLITE_SELECT, apsw.SQLITE_READ, apsw.SQLITE_FUNCTION, apsw.SQLITE_RECURSIVE}
)
_DENIED_FUNCTIONS = frozenset({"load_extension"})
# FTS5 reads ``PRAGMA data_version`` to know whether its cached structure is
# current; without it no full-text query could run. It takes no argument
# and changes nothing.
_ALLOWED_PRAGMAS = frozenset({"data_version"})


class _Authorizer:
    """SQLite's authorizer callback: allow reading, deny and remember the rest."""

    def __init__(self) -> None:
        self.denied: list[str] = []

    def __call__(self, action: int, name1: str | None, name2: str | None,
                 database: str | None, trigger: str | None) -> int:
        if action == apsw.SQLITE_PRAGMA:
            allowed = (name1 or "").lower() in _ALLOWED_PRAGMAS and name2 is None
        elif action == apsw.SQLITE_FUNCTION:
            allowed = (name2 or "").lower() not in _DENIED_FUNCTIONS
        else:
            allowed = action in _ALLOWED_ACTIONS
        if allowed:
            return apsw.SQLITE_OK
        self.denied.append(apsw.mapping_authorizer_function.get(action, str(action)))
        return apsw.SQLITE_DENY


def run_readonly_sql(
    db: apsw.Connection,
    sql: str,
    *,
    max_rows: int = 1000,
    max_bytes: int = MAX_RESULT_BYTES,
    time_limit_ms: int = 1000,
    clock: Callable[[], float] = time.monotonic,
) -> SqlResult:
    """Run one user-written SELECT (or WITH ... SELECT) and return at most
    ``max_rows`` rows, of at most ``max_bytes`` as JSON, each value made
    JSON-ready by json_value.

    SQLite's authorizer allows only reading (SELECT, READ, FUNCTION and
    recursive CTEs) and ``PRAGMA query_only`` is on while it runs; the
    progress handler stops it after ``time_limit_ms``. Anything refused or
    stopped raises QueryRejected; the database is never changed.
    """
    if not isinstance(sql, str):
        raise QueryRejected("invalid", "the query must be text")
    if len(sql) > MAX_SQL_LENGTH:
        raise QueryRejected("too_long", f"the query is longer than {MAX_SQL_LENGTH} characters")
    statement = _single_statement(db, sql)
    deadline = clock() + time_limit_ms / 1000
    db.execute("PRAGMA query_only = ON")
    authorizer = _Authorizer()
    db.setauthorizer(authorizer)
    db.setprogresshandler(lambda: clock() > deadline, 1000)
    value_limit = db.limit(apsw.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    cursor = db.cursor()
    try:
        rows: list[tuple] = []
        size = 0
        truncated_reason = None
        for row in cursor.execute(statement.query):
            if len(rows) == max_rows:
                truncated_reason = "max_rows"
                break
            values = tuple(json_value(value) for value in row)
            # As the answer will carry it, with the comma before it.
            size += len(json.dumps(values)) + 1
            if size > max_bytes:
                truncated_reason = "max_bytes"
                break
            rows.append(values)
    except apsw.InterruptError:
        raise QueryRejected("time_limit", f"the query ran longer than {time_limit_ms} ms") from None
    except apsw.TooBigError:
        raise QueryRejected("too_big", f"a value would exceed {MAX_VALUE_BYTES} bytes") from None
    except UnicodeDecodeError:
        raise QueryRejected(
            "invalid_text", "a text value is not UTF-8; CAST it AS BLOB or use hex()"
        ) from None
    except apsw.Error as error:
        if authorizer.denied:
            raise QueryRejected(
                "not_allowed", f"only reading is allowed, not {authorizer.denied[0]}"
            ) from None
        raise QueryRejected("invalid_sql", str(error)) from None
    finally:
        cursor.close()
        db.limit(apsw.SQLITE_LIMIT_LENGTH, value_limit)
        db.setprogresshandler(None)
        db.setauthorizer(None)
        db.execute("PRAGMA query_only = OFF")
    columns = [name for name, _ in statement.description or ()]
    return SqlResult(
        columns=columns,
        rows=rows,
        truncated=truncated_reason is not None,
        truncated_reason=truncated_reason,
    )


def json_value(value: Any) -> Any:
    """A SQL value as JSON can carry it.

    A blob becomes ``{"base64": "<standard base64>"}`` (an object, so it is
    never mistaken for a text); an infinite real, which JSON has no number
    for, becomes the text "Infinity" or "-Infinity". Texts, integers, other
    reals and NULL pass as they are.
    """
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _single_statement(db: apsw.Connection, sql: str) -> apsw.ext.QueryDetails:
    """The one statement in ``sql``, prepared (not run) to find where it ends."""
    try:
        first = apsw.ext.query_info(db, sql)
        if not first.has_vdbe:
            raise QueryRejected("empty", "the query has no statement")
        rest = first.query_remaining
        if rest and apsw.ext.query_info(db, rest).has_vdbe:
            raise QueryRejected("multiple_statements", "send one statement at a time")
    except apsw.Error as error:
        raise QueryRejected("invalid_sql", str(error)) from None
    except ValueError:
        # NUL in the text, or a character UTF-8 has no form for.
        raise QueryRejected(
            "invalid", "the query must not contain NUL or unpaired surrogate characters"
        ) from None
    return first
