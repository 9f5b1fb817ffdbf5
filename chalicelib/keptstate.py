"""State kept warm between cycles of one org in one processor container.

A Lambda container runs many cycles, often of the same org in a row (a
backlog drains cycle after cycle). The state a cycle ends with is the
state the next one would restore: the last cycle wrote it as a snapshot.
So a cycle that ended cleanly hands its database to a ``KeptStates`` the
container owns, together with what it knows about the store: the chain
its snapshot is the tip of, its pages' digests, the snapshot objects it
knows of, and the etag of the released lease marker it wrote.

The next cycle of that org takes it back and retakes the lease with one
put-if-match over that marker (``lease.reacquire``). If the put lands,
nobody held the lease in between, so no other processor has written a
commit or a snapshot since (save one that had lost the lease before ours,
see docs/decisions.md), and the kept database plus the log's commits after
its version is the org's state: no lease get, no snapshot listing, no
download. If it does not land, the kept state is closed and the cycle
restores as usual.

A wake-up for an org whose state is kept here judges idleness from its
``KeptHead`` with one list (triggers.kept_readiness) instead of reading
the snapshot listing and the lease.

A kept state is taken out while a cycle runs and given back only by a
cycle that ended cleanly, so a cycle that failed, was fenced, could not
write its snapshot or died half-way never leaves a database behind for the
next one. Each kept database is a scratch file in /tmp (about 9 KB per
link), so a container keeps at most a few.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import apsw

from chalicelib.deltas import PageDigests
from chalicelib.packs import PackCache
from chalicelib.snapshots import Chain, Listed

# Orgs kept per container: one covers a backlog draining cycle after cycle,
# and each is a scratch file beside the one the running cycle restores.
MOST_KEPT = 1


@dataclass(frozen=True)
class KeptHead:
    """What a wake-up needs to judge the org idle from a kept state.

    ``version`` is the kept database's, ``etag`` the etag of the log's
    commit at that version as the cycle saw it (None: the cycle never saw
    it, e.g. it came out of a pack), ``next_due`` when the state next needs
    a cycle (state.next_due; None: not without a new event), and
    ``released_at`` when the cycle that kept it released the lease.
    """

    version: int
    etag: str | None
    next_due: datetime | None
    released_at: datetime


@dataclass
class KeptState:
    """One org's state as its last cycle in this container left it.

    ``db`` is at the version ``chain``'s tip names, and its pages are the
    ones ``digests`` describes: the snapshot objects in the store give back
    this very file. ``listed`` is every snapshot object the cycles knew of;
    ``released`` the etag of the lease marker the last cycle released, at
    ``epoch``. ``head`` is what the idle check needs (``KeptHead``);
    ``log_cache`` the commits the cycles read or wrote, for the next one's
    pack step.
    """

    org: str
    db: apsw.Connection
    chain: Chain
    digests: PageDigests
    listed: Listed
    released: str
    epoch: int
    head: KeptHead
    log_cache: PackCache

    def close(self) -> None:
        """Drop the database and its file."""
        self.digests.close()
        self.db.close()


class KeptStates:
    """The kept states of one container, at most ``most`` orgs (least
    recently kept dropped first). Safe to share between threads."""

    def __init__(self, most: int = MOST_KEPT):
        if most < 1:
            raise ValueError(f"keep at least one org, not {most}")
        self.most = most
        self._states: OrderedDict[str, KeptState] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, org: str) -> KeptState | None:
        """The org's kept state, now the caller's alone (None: none kept).

        The caller gives it back with ``keep`` or closes it."""
        with self._lock:
            return self._states.pop(org, None)

    def keep(self, state: KeptState) -> None:
        """Keep ``state`` for the org's next cycle here."""
        with self._lock:
            dropped = [self._states.pop(state.org, None)]
            self._states[state.org] = state
            while len(self._states) > self.most:
                dropped.append(self._states.popitem(last=False)[1])
        for old in dropped:
            if old is not None and old is not state:
                old.close()

    def head(self, org: str) -> KeptHead | None:
        """The org's kept state's head, for the idle check (None: none kept).

        The state stays kept: a check does not take it."""
        with self._lock:
            state = self._states.get(org)
            return None if state is None else state.head

    def orgs(self) -> list[str]:
        """The orgs kept, least recently kept first."""
        with self._lock:
            return list(self._states)

    def clear(self) -> None:
        """Close and drop every kept state."""
        with self._lock:
            states = list(self._states.values())
            self._states.clear()
        for state in states:
            state.close()
