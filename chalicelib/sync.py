"""Push and pull for clients (DESIGN §4, §8), over the log.

A retried push (same client, same batch id) must not commit twice, and a
pull must not hand out one event id twice. Both need to know what the log
already holds, which the log cannot answer cheaply (commits are keyed by
version only). So each process keeps a ``LogIndex``: per org, the head it
has read up to, the version of each (client, batch id), and the first
version of each event id. It catches up by reading only the commits written
since it last looked. A cold index reads at most ``cold_start_commits``
back from the head (see docs/decisions.md). A push of a new batch does
not need it: its marker (chalicelib.batchmarkers) says the batch is new,
so only retries and pulls catch up.

Within one process, pushes to one org take turns (a lock per org): racing
ourselves would only burn puts on 412s. Processes still race each other
through the log's put-if-absent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

from chalicelib import batchmarkers, packs
from chalicelib.api_errors import ApiError
from chalicelib.events import is_stored_event, parse_push
from chalicelib.keys import check_org
from chalicelib.log import (
    LIST_PAGE,
    MAX_PUTS,
    CorruptLog,
    LogBusy,
    append,
    find_head,
    is_damaged,
)
from chalicelib.params import invalid_fields, problem
from chalicelib.store.base import ObjectStore, Transient

MAX_PULL_EVENTS = 1000
COLD_START_COMMITS = 1000
# Event ids remembered per org; past this the oldest commits are forgotten
# (a warm container must not grow without bound).
MAX_INDEXED_EVENTS = 200_000
# Commits a pull reads at a time where the index does not know their sizes
# (below its floor). A page may use only a few of them, and every commit
# read is decoded: reading a page's worth of 1,000 to use a few made a cold
# pull mostly JSON work. The page loop reads chunk after chunk until full.
UNINDEXED_CHUNK = 64
# Batches given up on (503) remembered per org, so that a retry reaching the
# same container skips the catch-up; past this they are forgotten (their
# retry then catches up, as any retry elsewhere does).
MAX_UNLANDED = 1000

log = logging.getLogger(__name__)


@dataclass
class _OrgIndex:
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: bool = False
    head: int = 0
    floor: int = 0  # commits at or below the floor are not indexed
    batches: dict[tuple[str, str], int] = field(default_factory=dict)
    first_seen: dict[str, int] = field(default_factory=dict)
    # version -> (batch key, event ids), oldest first, for sizes and eviction
    commits: OrderedDict[int, tuple[tuple[str, str] | None, list[str]]] = field(
        default_factory=OrderedDict
    )
    events: int = 0
    # The org's packs as last listed, and the head when they were listed.
    packs: list[packs.Pack] = field(default_factory=list)
    packs_head: int = 0
    # Pushes of new batches do not catch up: they guess the next version
    # from the highest one this process knows exists (None: not looked yet)
    # while its guesses land, and list first from when one did not until a
    # listing finds no one else committed.
    latest: int | None = None
    guesses_land: bool = True
    # Batches whose push here claimed the marker, then gave up (503) with
    # nothing landed: their retry, if it comes here, needs no catch-up.
    unlanded: set[tuple[str, str]] = field(default_factory=set)

    def record(self, commit: dict, max_events: int) -> None:
        version = commit["version"]
        ids = [event["id"] for event in commit["events"] if is_stored_event(event)]
        # A damaged commit's batch is unknown: a retry of it commits again.
        key = None if is_damaged(commit) else _batch_key(commit["author"], commit["batch_id"])
        if key is not None:
            self.batches.setdefault(key, version)
        for event_id in ids:
            self.first_seen.setdefault(event_id, version)
        self.commits[version] = (key, ids)
        self.events += len(ids)
        self.head = version
        while self.events > max_events and len(self.commits) > 1:
            self._forget_oldest()

    def committed(self, commit: dict, known_head: int, max_events: int) -> None:
        """Note a commit this process made above ``known_head``, the head it tried from."""
        version = commit["version"]
        if self.started and version == self.head + 1:
            self.record(commit, max_events)
        self.latest = max(self.latest or 0, version)
        if version != known_head + 1:
            self.guesses_land = False

    def _forget_oldest(self) -> None:
        version, (key, ids) = self.commits.popitem(last=False)
        if self.batches.get(key) == version:
            del self.batches[key]
        for event_id in ids:
            if self.first_seen.get(event_id) == version:
                del self.first_seen[event_id]
        self.events -= len(ids)
        self.floor = version


def _batch_key(author: dict, batch_id: str) -> tuple[str, str]:
    # Batch ids are made by clients; two clients may pick the same one, so
    # a batch is known by who sent it as well.
    return (f"{author['kind']}:{author['id']}", batch_id)


class LogIndex:
    """What one process knows of each org's log; one index per store."""

    def __init__(
        self,
        *,
        cold_start_commits: int = COLD_START_COMMITS,
        max_events: int = MAX_INDEXED_EVENTS,
    ):
        self.cold_start_commits = cold_start_commits
        self.max_events = max_events
        self._orgs: dict[str, _OrgIndex] = {}
        self._lock = threading.Lock()
        self.pack_cache = packs.PackCache()

    def _org(self, org: str) -> _OrgIndex:
        with self._lock:
            return self._orgs.setdefault(org, _OrgIndex())

    def _catch_up(self, store: ObjectStore, org: str, entry: _OrgIndex) -> None:
        """Read the commits written since the index last looked (hold entry.lock)."""
        if not entry.started:
            head, entry.packs = packs.find_head(store, org)
            entry.packs_head = head
            entry.floor = entry.head = max(0, head - self.cold_start_commits)
            entry.started = True
        else:
            head = find_head(store, org, entry.head)
        while entry.head < head:
            upto = min(head, entry.head + LIST_PAGE)
            for commit in self._read(store, org, entry, entry.head, upto):
                entry.record(commit, self.max_events)

    def _read(self, store: ObjectStore, org: str, entry: _OrgIndex, after: int, upto: int) -> list[dict]:
        """Commits ``after + 1..upto``, all at or below the head the index knows.

        The packs are listed again when the range holds a whole pack's
        worth the last listing could not know of (it was taken at a lower
        head), at most once per head.
        """
        if upto > entry.packs_head and packs.worth_listing_packs(max(after, entry.packs_head), upto):
            older = [pack for pack in entry.packs if pack.last <= after]
            entry.packs = older + packs.list_packs(store, org, after)
            entry.packs_head = entry.head
        return packs.read_commits(store, org, after, upto, entry.packs, self.pack_cache)


def push(
    store: ObjectStore,
    org: str,
    body: bytes,
    *,
    notify: Callable[[str], None],
    index: LogIndex,
    max_attempts: int = MAX_PUTS,
    sleep=time.sleep,
) -> dict:
    """Validate a client's push body and commit it; returns ``{"version"}``.

    The same (client, batch id) pushed again returns the version of the
    first commit and writes nothing. ``notify(org)`` is called after the
    commit (the processor's wake-up); if it fails the push still succeeded,
    because the schedule sweep finds orgs whose log is ahead of their state.
    Raises ApiError: 400/413/422 for a bad body (nothing written), 503 with
    Retry-After when the log is too contended or the store unavailable.
    """
    check_org(org)
    batch = parse_push(body)
    author = {"kind": "client", "id": batch.client_id}
    key = _batch_key(author, batch.batch_id)
    entry = index._org(org)
    with store_failures_as_api_errors(), entry.lock:
        if batchmarkers.claim(store, org, *key) or key in entry.unlanded:
            # The batch is new (or its push here gave up with nothing
            # landed): no need to read what others committed.
            version, known = None, _next_version_guess(store, org, entry)
        else:
            # A retry (or a claim in doubt): look for the batch in the log.
            # Not there means its first push died between marker and commit,
            # is still committing, or is older than the index reaches; it is
            # committed then, as before markers (docs/decisions.md).
            index._catch_up(store, org, entry)
            version, known = entry.batches.get(key), entry.head
        if version is None:
            commit = _append(store, org, batch, author, key, entry, known, max_attempts, sleep)
            version = commit["version"]
            entry.committed(commit, known, index.max_events)
    try:
        notify(org)
    except Exception:
        log.exception("push to %s committed version %d but notify failed", org, version)
    return {"version": version}


def _next_version_guess(store: ObjectStore, org: str, entry: _OrgIndex) -> int:
    """The head to commit a new batch above, read from the log only when
    this process has never looked or its last guess did not land."""
    if entry.latest is None and not entry.started:
        return packs.find_head(store, org)[0]
    known = max(entry.head, entry.latest or 0)
    if entry.guesses_land:
        return known
    # Others committed while we last tried: one listing costs less than a
    # stale guess (a lost put, a wait, then the listing anyway). Guessing
    # starts again once a listing finds no one else committed (a dev
    # server's own processor commits between pushes for a while).
    head = find_head(store, org, known)
    entry.guesses_land = head == known
    return head


def _append(store, org, batch, author, key, entry, known_head, max_attempts, sleep) -> dict:
    """Commit the batch (``key`` in the index) above ``known_head`` (see
    log.append); remember a give-up."""
    try:
        commit = append(
            store,
            org,
            batch.events,
            batch_id=batch.batch_id,
            author=author,
            known_head=known_head,
            max_attempts=max_attempts,
            sleep=sleep,
            # The head was just listed or is a guess: listing again would
            # add a request to every commit, and a stale guess costs a 412.
            find_head_first=False,
        )
    except LogBusy as busy:
        if not busy.may_have_landed:
            if len(entry.unlanded) >= MAX_UNLANDED:
                entry.unlanded.clear()
            entry.unlanded.add(key)
        raise
    entry.unlanded.discard(key)
    return commit


def pull(
    store: ObjectStore,
    org: str,
    since: int,
    limit: int = MAX_PULL_EVENTS,
    *,
    index: LogIndex,
) -> dict:
    """Commits after ``since`` in version order: ``{"commits", "head", "has_more"}``.

    A page holds at most ``limit`` events (at most 1,000) and never splits
    a commit; a first commit larger than the limit comes alone. Events whose
    id an earlier commit already carried are left out, and so are objects
    in a commit that are not events (no id, name, args and at).
    """
    check_org(org)
    _check_pull_arguments(since, limit)
    entry = index._org(org)
    with store_failures_as_api_errors():
        caught_up = False
        with entry.lock:
            if not entry.started:
                index._catch_up(store, org, entry)
                caught_up = True
            head = entry.head
        commits: list[dict] = []
        handed: set[str] = set()
        count, cursor = 0, min(since, head)
        while True:
            while cursor < head and count < limit:
                wanted = _commits_fitting(entry, cursor, head, limit - count)
                page = index._read(store, org, entry, cursor, min(head, cursor + wanted))
                for commit in page:
                    # first_seen is only added to (or trimmed) under the lock;
                    # a lookup outside it sees a consistent entry.
                    events = _unseen_events(commit, entry.first_seen, handed)
                    if commits and count + len(events) > limit:
                        return {"commits": commits, "head": head, "has_more": True}
                    commits.append({**commit, "events": events})
                    handed.update(event["id"] for event in events)
                    count += len(events)
                    cursor = commit["version"]
                    if count >= limit:
                        break
            if caught_up or (count >= limit and cursor < head):
                break
            # A page that ends below the head this process knew needs no
            # listing (what it holds cannot change, and there is more); one
            # that reaches it, full or not, looks for newer commits, or it
            # would answer has_more false with the processor's commits unseen.
            with entry.lock:
                index._catch_up(store, org, entry)
                head = entry.head
            caught_up = True
            if not commits:
                cursor = min(since, head)
    return {"commits": commits, "head": head, "has_more": cursor < head}


def _commits_fitting(entry: _OrgIndex, cursor: int, head: int, room: int) -> int:
    """How many commits after ``cursor`` to read to fill ``room`` events.

    The index knows each indexed commit's size, so a page of large commits
    does not read a thousand objects to use two. Below the index's floor
    sizes are unknown: every commit holds at least one event, so ``room``
    commits are enough, and at most UNINDEXED_CHUNK are read at a time.
    """
    wanted = total = 0
    for version in range(cursor + 1, min(head, cursor + LIST_PAGE) + 1):
        indexed = entry.commits.get(version)
        if indexed is None:
            return max(1, min(room, head - cursor, UNINDEXED_CHUNK))
        size = len(indexed[1])
        if wanted and total + size > room:
            break
        wanted += 1
        total += size
        if total >= room:
            break
    return max(1, wanted)


def _unseen_events(commit: dict, first_seen: dict[str, int], handed: set[str]) -> list[dict]:
    version = commit["version"]
    kept, ids = [], set()
    for event in commit["events"]:
        if not is_stored_event(event):
            # Not an event at all (hand-written, or a bug): no client could use it.
            continue
        event_id = event["id"]
        if first_seen.get(event_id, version) < version or event_id in handed or event_id in ids:
            continue
        ids.add(event_id)
        kept.append(event)
    return kept


def _check_pull_arguments(since, limit) -> None:
    problems = []
    if not _is_integer(since) or since < 0:
        problems.append(problem("since", "must be an integer >= 0"))
    if not _is_integer(limit) or not 1 <= limit <= MAX_PULL_EVENTS:
        problems.append(problem("limit", f"must be an integer from 1 to {MAX_PULL_EVENTS}"))
    if problems:
        raise invalid_fields(problems)


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@contextmanager
def store_failures_as_api_errors():
    """Store and log failures become API errors (503 to retry, 500 for a damaged log).

    The read routes use it too, so a client sees one code for one failure
    whichever route met it.
    """
    try:
        yield
    except LogBusy as error:
        raise ApiError(
            503,
            "the log is busy; retry after the given delay",
            code="log_busy",
            retry_after=error.retry_after_seconds,
        ) from error
    except Transient as error:
        raise ApiError(
            503, "the store is unavailable; retry shortly", code="store_unavailable"
        ) from error
    except CorruptLog as error:
        log.error("damaged log: %s", error)
        raise ApiError(500, "the org's log is damaged", code="log_corrupt") from error
