"""The due index: when an org next needs a look, kept where the sweep can read it
without visiting every org.

An entry is an empty-ish object ``due/{UTC time}/{org}/{nonce}``. The time is
the state database's fixed-width text form, so the store lists entries in
time order and the sweep reads only the keys up to now: one list request
however many orgs are idle. Who writes an entry:

- a cycle releasing the lease, at its state's ``next_due`` (now when work
  is left or a link is pending, the earliest retry otherwise; none when
  nothing will need work without a new event);
- a push or an import, a little after its commit (``PushMarks``): the net
  under the queue message and the bucket's notification;
- the sweep's one-off walk over the orgs from before the index.

Entries are hints, deleted only by the sweep, and only once it has checked
that their org is idle (``triggers.sweep``). So the entry that led to a
cycle outlives that cycle: if it dies holding the lease, the org is not
idle (a held lease tells nothing) and every sweep enqueues it again until a
cycle has released the lease. The nonce makes every entry a key of its own,
so deleting one never removes a newer entry that names the same time.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator

from chalicelib.keys import ORG_PATTERN, check_org
from chalicelib.state.times import format_time, parse_time
from chalicelib.store.base import ObjectStore
from chalicelib.store.keyrules import MAX_LIST

PREFIX = "due/"
# Every character of a time, an org and a nonce sorts before '~', so
# "due/{time}/~" is after every entry of that time.
PAST_TIME = "~"
NONCE = re.compile(r"[0-9a-f]{32}")
TIME_CHARS = len(format_time(datetime(2000, 1, 1, tzinfo=timezone.utc)))


@dataclass(frozen=True)
class Entry:
    """One entry of the index: ``org`` needs a look at ``due``."""

    key: str
    org: str
    due: datetime


def entry_key(org: str, due: datetime) -> str:
    """A new entry's key: the time, the org, and a nonce that makes it unique."""
    return f"{PREFIX}{format_time(due)}/{check_org(org)}/{uuid.uuid4().hex}"


def mark(store: ObjectStore, org: str, due: datetime, *, reason: str) -> str:
    """Write an entry saying ``org`` needs a look at ``due``; returns its key.

    ``reason`` (lease, release, push, walk) is kept in the body for whoever
    looks at the bucket; the sweep reads only keys. Raises the store's errors.
    """
    key = entry_key(org, due)
    store.put(key, json.dumps({"org": org, "due": format_time(due), "reason": reason}).encode())
    return key


def parse_entry(key: str) -> Entry | None:
    """The entry a key names, or None for a key this module never writes."""
    parts = key.split("/")
    if len(parts) != 4 or f"{parts[0]}/" != PREFIX:
        return None
    _, when, org, nonce = parts
    if len(when) != TIME_CHARS or not ORG_PATTERN.fullmatch(org) or not NONCE.fullmatch(nonce):
        return None
    try:
        due = parse_time(when)
    except ValueError:
        return None
    # strptime accepts some widths FORMAT never writes; only the one form sorts right.
    if format_time(due) != when:
        return None
    return Entry(key=key, org=org, due=due)


def listed_until(store: ObjectStore, now: datetime) -> Iterator[tuple[str, Entry | None]]:
    """Every key of the index due at or before ``now``, in time order, with its
    entry (None for a key that is not one: damaged or foreign).

    One list request per 1,000 keys, and one for the first key after ``now``,
    so the cost follows the entries that are due, not the number of orgs.
    """
    last = f"{PREFIX}{format_time(now)}/{PAST_TIME}"
    start_after: str | None = None
    while True:
        page = store.list(PREFIX, start_after=start_after, limit=MAX_LIST)
        for found in page:
            if found.key > last:
                return
            yield found.key, parse_entry(found.key)
        if len(page) < MAX_LIST:
            return
        start_after = page[-1].key


class PushMarks:
    """Entries for commits written by the API, at most one per org a minute.

    A push's first triggers are its queue message and the bucket's
    notification; this entry is the net under both. It is written ``DELAY``
    after the commit (by then the processor has usually seen it, and the
    sweep only checks and deletes it), and not again while this process's
    last entry for the org is still more than ``MARGIN`` in the future: no
    one deletes an entry before it comes due, so that entry covers the new
    commit too. The margin leaves room for clock skew and a sweep in flight.
    """

    DELAY = timedelta(seconds=90)
    MARGIN = timedelta(seconds=30)
    # Forgetting only costs an extra put; the table stays small.
    MAX_ORGS = 10_000

    def __init__(self) -> None:
        self._due: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def after_commit(self, store: ObjectStore, org: str, now: datetime) -> None:
        """Make sure an entry comes due for ``org`` soon after ``now``."""
        with self._lock:
            covered = self._due.get(org)
            if covered is not None and covered > now + self.MARGIN:
                return
        due = now + self.DELAY
        mark(store, org, due, reason="push")
        with self._lock:
            if len(self._due) >= self.MAX_ORGS:
                self._due = {o: d for o, d in self._due.items() if d > now}
            self._due[org] = due

