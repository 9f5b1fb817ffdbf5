"""An org's append-only log: one immutable commit object per version (DESIGN §4).

The commit point is a put-if-absent at ``head + 1``; nothing else
coordinates writers, and two writers can never both own a version. The head
is found by listing forward from the best version the caller already knows,
so no pointer object is rewritten on every commit (one hot key would cap the
whole org at about one write per second on R2).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from datetime import datetime, timezone

from pydantic import ValidationError

from chalicelib import fetchers
from chalicelib.events import StoredCommit, is_stored_event
from chalicelib.keys import check_org, log_key, log_prefix, version_of_log_key
from chalicelib.store.base import (
    Conflict,
    NotFound,
    ObjectStore,
    PreconditionFailed,
    Transient,
)

LIST_PAGE = 1000
# Full jitter: the n-th wait of one commit is uniform(0, min(cap, first *
# unit * 2**n)), where the unit is how long our last lost put took (at least
# the base): a commit costs one put round trip, so that is the time a winner
# needs, on S3 or on a loaded laptop alike. Writers that lost together
# spread over a few winners' worth of time instead of colliding again. The
# first window of 4 puts and the 2 s cap were measured over moto's server
# (docs/decisions.md): 1 put and 0.5 s let 8 writers lose about 2.5 races
# per commit, and let 32 writers starve past the budget.
BACKOFF_BASE_SECONDS = 0.005
BACKOFF_FIRST_WINDOW_PUTS = 4
BACKOFF_CAP_SECONDS = 2.0
# A commit is tried for up to this long, then the log is busy (503). An API
# call has 29 s; starvation, not a slow store, is what the bound is for, so
# it is time rather than a count of puts (ten puts gave 19 of 96 commits a
# 503 at 8 writers). The count bounds the requests one commit may cost.
COMMIT_BUDGET_SECONDS = 10
MAX_PUTS = 40
BUSY_RETRY_AFTER_SECONDS = 1

_COMMIT_NAME = re.compile(r"^[0-9]{20}\.json$")
_random = random.Random()
logger = logging.getLogger(__name__)


class LogBusy(Exception):
    """The log stayed contended past the retry bound.

    Nothing was written, unless ``may_have_landed``: the last put's answer
    was lost and what it wrote could not be read back.
    """

    def __init__(self, retry_after_seconds: int, *, may_have_landed: bool = False):
        self.retry_after_seconds = retry_after_seconds
        self.may_have_landed = may_have_landed
        super().__init__(f"log busy, retry after {retry_after_seconds}s")


class CorruptLog(Exception):
    """A commit object is unreadable or the log has a gap: the log is damaged."""

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


def find_head(store: ObjectStore, org: str, known: int = 0) -> int:
    """The highest committed version of ``org``'s log (0 when it is empty).

    ``known`` must be a version known to exist (or 0). One LIST answers
    when the head is within 1,000 versions of it; further away, HEAD
    requests gallop forward and bisect, so a cold start over a long log
    costs O(log n) requests rather than n / 1,000 listings.
    """
    check_org(org)
    while True:
        page = _list_versions(store, org, known, LIST_PAGE)
        if len(page) < LIST_PAGE:
            return page[-1] if page else known
        known = _gallop(store, org, page[-1])


def _list_versions(store: ObjectStore, org: str, after: int, limit: int) -> list[int]:
    """Up to ``limit`` commit versions after ``after``, in order.

    Other names under log/ are passed over, but a listing they fill up is
    followed by the next one: callers read "fewer than asked" as "this is
    the head", so a stray object must not shorten the answer.
    """
    versions: list[int] = []
    start_after = log_key(org, after) if after > 0 else None
    while len(versions) < limit:
        asked = limit - len(versions)
        listed = store.list(log_prefix(org), start_after=start_after, limit=asked)
        versions.extend(
            version_of_log_key(info.key)
            for info in listed
            if _COMMIT_NAME.fullmatch(info.key.rsplit("/", 1)[-1])
        )
        if len(listed) < asked:
            break
        start_after = listed[-1].key
    return versions


def _exists(store: ObjectStore, org: str, version: int) -> bool:
    try:
        store.head(log_key(org, version))
        return True
    except NotFound:
        return False


def _gallop(store: ObjectStore, org: str, present: int) -> int:
    """A version >= ``present`` that exists, near the head (versions have no gaps)."""
    step = LIST_PAGE
    while _exists(store, org, present + step):
        present += step
        step *= 2
    missing = present + step
    while missing - present > 1:
        middle = (present + missing) // 2
        if _exists(store, org, middle):
            present = middle
        else:
            missing = middle
    return present


def read_commits(store: ObjectStore, org: str, after: int, limit: int = 1000) -> list[dict]:
    """Commits with versions ``after + 1`` onwards, in order, at most ``limit``.

    Every commit read is checked (JSON, shape, version and org matching its
    key). A damaged one comes back as its stand-in (see ``damaged_commit``),
    so one garbled object costs its own events, not the org; a gap (a
    version missing below a later one) raises CorruptLog naming the key.
    The events of a sound commit are handed on as stored, malformed ones
    too: the state skips and counts them, pull leaves them out.
    """
    check_org(org)
    limit = max(0, min(limit, LIST_PAGE))
    if limit == 0:
        return []
    versions = _list_versions(store, org, after, limit)
    for expected, version in enumerate(versions, start=after + 1):
        if version != expected:
            raise CorruptLog(log_key(org, expected), f"missing; the log continues at {version}")
    if len(versions) <= 1:
        return [_read_commit(store, org, version) for version in versions]
    return list(fetchers.pool.map(lambda version: _read_commit(store, org, version), versions))


def _read_commit(store: ObjectStore, org: str, version: int) -> dict:
    """The commit at ``version``, or its stand-in when the object is damaged."""
    return commit_or_stand_in(org, version, store.get(log_key(org, version)).body)


def commit_or_stand_in(org: str, version: int, body: bytes) -> dict:
    """The commit stored as ``body`` at ``version``, or its stand-in when damaged.

    Reading a commit object and reading its copy in a pack both end here,
    so a damaged commit reads the same either way.
    """
    key = log_key(org, version)
    try:
        return decode_commit(key, body, org, version)
    except CorruptLog as damage:
        logger.error("damaged commit: %s", damage)
        return damaged_commit(org, version, damage.reason)


def damaged_commit(org: str, version: int, reason: str) -> dict:
    """What stands in for a commit object that cannot be read: no events, and why.

    The log is append-only, so a garbled commit can never be repaired;
    refusing to read past it would take the org down for good. Its events
    are lost; every later commit still counts. Pull hands the stand-in out
    as it is, so a client sees the damage.
    """
    return {"version": version, "org": org, "damaged": reason, "events": []}


def is_damaged(commit: dict) -> bool:
    """Whether ``commit`` is the stand-in for a damaged commit object."""
    return "damaged" in commit


def decode_commit(key: str, body: bytes, org: str, version: int) -> dict:
    """The commit stored under ``key``, checked; raises CorruptLog."""
    try:
        commit = json.loads(body.decode("utf-8"))
    except RecursionError:
        raise CorruptLog(key, "not JSON: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise CorruptLog(key, f"not JSON: {error}") from None
    try:
        StoredCommit.model_validate(commit)
    except ValidationError as error:
        first = error.errors()[0]
        path = ".".join(str(part) for part in first["loc"]) or "(commit)"
        raise CorruptLog(key, f"{path}: {first['msg']}") from None
    if commit["version"] != version or commit["org"] != org:
        raise CorruptLog(
            key, f"holds version {commit['version']} of org {commit['org']!r}"
        )
    return commit


def append(
    store: ObjectStore,
    org: str,
    events: list[dict],
    *,
    batch_id: str,
    author: dict,
    known_head: int = 0,
    max_attempts: int = MAX_PUTS,
    budget_seconds: float = COMMIT_BUDGET_SECONDS,
    sleep=time.sleep,
    clock=time.monotonic,
    find_head_first: bool = True,
) -> dict:
    """Commit ``events`` at the next version and return the landed commit.

    A 412 is certain (the store's contract: the version was taken before we
    tried), so a lost race reads nothing back: the loser waits (jittered,
    growing) and lists for the head, which has moved on by an unknown
    amount while it waited. Only when a put of ours at that version may
    have landed (it answered Transient) is a 412 resolved by reading the
    version back and comparing batch id and author: if it is ours, that
    commit is the answer. A 409 wrote nothing and is tried again at the
    same version. Past ``budget_seconds`` or ``max_attempts`` puts it raises
    LogBusy, saying whether a put of ours may have landed.

    ``find_head_first=False`` puts first at ``known_head + 1`` without
    looking for the head, for a caller whose ``known_head`` is recent (it
    has just listed, or it holds the state at that version): if commits
    landed since, the lost put waits and lists, as above.
    """
    check_org(org)
    committed_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    committed_at = committed_at.replace("+00:00", "Z")
    head = find_head(store, org, known_head) if find_head_first else known_head
    version = head + 1
    in_doubt = False  # a put of ours at ``version`` may have landed
    taken = False  # someone else owns ``version``: list before the next put
    put_seconds = BACKOFF_BASE_SECONDS
    started = clock()
    for attempt in range(max_attempts):
        if attempt:
            if clock() - started > budget_seconds:
                break
            sleep(_backoff(attempt - 1, put_seconds))
            if taken:
                # While we waited the head moved on by an unknown amount:
                # one listing finds it, where looking ahead would pay a put
                # per version (and collide with every other loser).
                version = _head_after_wait(store, org, version) + 1
                taken = False
        commit = {
            "version": version,
            "org": org,
            "batch_id": batch_id,
            "committed_at": committed_at,
            "author": author,
            "events": events,
        }
        if attempt == 0:
            _check_shape(commit)
        began = clock()
        try:
            store.put(log_key(org, version), encode_commit(commit), if_absent=True)
            return commit
        except Transient:
            # The next put at the same version tells: a 412 then sends us
            # to read what landed. Never move on from a version in doubt.
            in_doubt = True
            continue
        except Conflict:
            continue
        except PreconditionFailed:
            put_seconds = max(BACKOFF_BASE_SECONDS, clock() - began)
        if in_doubt:
            landed = _landed_at(store, org, version)
            if landed is None:
                continue  # unreadable for now: still in doubt, ask again
            if _is_ours(landed, batch_id, author):
                return landed
            in_doubt = False
        taken = True
    if in_doubt:
        landed = _landed_at(store, org, version)
        if landed is not None and _is_ours(landed, batch_id, author):
            return landed
        in_doubt = landed is None
    raise LogBusy(BUSY_RETRY_AFTER_SECONDS, may_have_landed=in_doubt)


def _head_after_wait(store: ObjectStore, org: str, present: int) -> int:
    """The head, listed from ``present`` (a version known to exist); when the
    listing fails, ``present`` itself: looking ahead from it is still right."""
    try:
        return find_head(store, org, present)
    except Transient:
        return present


def _landed_at(store: ObjectStore, org: str, version: int) -> dict | None:
    try:
        return _read_commit(store, org, version)
    except (NotFound, Transient):
        return None


def _is_ours(commit: dict, batch_id: str, author: dict) -> bool:
    return commit.get("batch_id") == batch_id and commit.get("author") == author


def _check_shape(commit: dict) -> None:
    try:
        StoredCommit.model_validate(commit)
    except ValidationError as error:
        raise ValueError(f"not a valid commit: {error}") from None
    # Reading tolerates a malformed event; writing one is a bug.
    for index, event in enumerate(commit["events"]):
        if not is_stored_event(event):
            raise ValueError(f"not a valid commit: events.{index} is not an event")


def _backoff(attempt: int, unit: float) -> float:
    window = BACKOFF_FIRST_WINDOW_PUTS * unit * 2**attempt
    return _random.uniform(0, min(BACKOFF_CAP_SECONDS, window))


def encode_commit(commit: dict) -> bytes:
    """The bytes a commit is stored as (what ``append`` puts)."""
    return json.dumps(commit, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
