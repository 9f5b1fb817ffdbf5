"""The processor lease of an org: one holder at a time, with an epoch (DESIGN §6).

``orgs/{org}/lease.json`` holds the holder, the epoch and how long the lease
lasts. It is taken with put-if-absent, or with put-if-match over an expired
or released one (epoch + 1), renewed with put-if-match and released with
put-if-match of a released marker. The process that released it can take
it again with one put-if-match over its own marker (``reacquire``), which
lands only if nobody took the lease in between.

Expiry is judged on the caller's own monotonic clock, from the moment this
process first saw that exact lease object (same etag) unchanged, never from
a time written by another machine. Every write carries a fresh nonce, so
every write has a new etag and "unchanged" really means "not renewed".

A release whose state will need a cycle again writes an entry of the due
index (chalicelib.dueindex) at that time before the released marker, so
the sweep finds the org then without visiting every org.

Release keeps the object (marked released) instead of deleting it: the
epoch must only ever grow, and a deleted lease would make the next holder
start again at epoch 1, below the epochs already in the log, so the state
would skip its commits as stale (see docs/decisions.md).
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from chalicelib import dueindex
from chalicelib.keys import lease_key
from chalicelib.store.base import (
    Conflict,
    NotFound,
    ObjectStore,
    PreconditionFailed,
    StoreError,
    Transient,
)

Clock = Callable[[], float]

# A conditional lease write whose outcome is unknown is resolved by reading;
# if the read shows the write did not land, it is tried again, a few times.
WRITE_ATTEMPTS = 3
# Epochs end up in the state database's 64-bit integers (and in commits);
# a garbled lease naming a larger one is no lease, not a poisoned epoch.
MAX_EPOCH = 2**63 - 2


class LeaseLost(Exception):
    """The lease is no longer ours (taken over, or its renewal failed)."""


@dataclass(frozen=True)
class Lease:
    """A lease this process holds.

    ``valid_until`` is on the holder's own clock: the moment before the
    last write was sent, plus the duration. Anyone else starts counting
    only after seeing the written object, so they wait at least as long.
    """

    org: str
    holder: str
    epoch: int
    etag: str
    nonce: str
    duration: float
    valid_until: float

    def remaining(self, clock: Clock) -> float:
        """Seconds this lease is still safely ours, on our own clock."""
        return self.valid_until - clock()


@dataclass(frozen=True)
class _Seen:
    etag: str
    first_seen: float


# org -> the lease object this process last saw there and since when. One
# entry per org: a new etag replaces the old one, so the table stays small.
_first_seen: dict[str, _Seen] = {}
_first_seen_lock = threading.Lock()


def _body(
    holder: str,
    epoch: int,
    duration: float,
    nonce: str,
    released: bool,
    hint: Released | None = None,
) -> bytes:
    doc = {
        "holder": holder,
        "epoch": epoch,
        "duration_seconds": duration,
        "released": released,
        "nonce": nonce,
        "written_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }
    if released and hint is not None:
        doc["next_due"] = hint.next_due.isoformat() if hint.next_due is not None else None
    return json.dumps(doc, sort_keys=True).encode()


def _parse(body: bytes) -> dict | None:
    """The lease document, or None when it is not one (then it is treated as
    held, for our own duration, by someone unknown at epoch 0)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    epoch = doc.get("epoch")
    if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
        return None
    return doc


def _duration_of(doc: dict | None, default: float) -> float:
    value = doc.get("duration_seconds") if doc else None
    if type(value) not in (int, float) or not 0 < value < float("inf"):
        return default
    return float(value)


def _elapsed_since_first_seen(org: str, etag: str, clock: Clock) -> float:
    now = clock()
    with _first_seen_lock:
        seen = _first_seen.get(org)
        if seen is None or seen.etag != etag:
            _first_seen[org] = _Seen(etag, now)
            return 0.0
        return now - seen.first_seen


def _forget(org: str) -> None:
    with _first_seen_lock:
        _first_seen.pop(org, None)


def _write(
    store: ObjectStore,
    key: str,
    body: bytes,
    nonce: str,
    *,
    if_absent: bool = False,
    if_match: str | None = None,
) -> str | None:
    """One conditional lease write; the new etag, or None if it did not land.

    A 412 (or, for put-if-match, a missing object) is certain, the store's
    contract, so it returns None at once: a caller that goes on to
    ``acquire`` reads the lease there, not twice. After a transient error
    a 412 is not: that try of ours may have landed and changed the etag.
    Those, and a 409 (another write in flight), are resolved by reading
    the object back and looking for our nonce.
    """
    in_doubt = False  # a try of ours may have landed
    for _ in range(WRITE_ATTEMPTS):
        try:
            return store.put(key, body, if_absent=if_absent, if_match=if_match)
        except (PreconditionFailed, NotFound):
            if not in_doubt:
                return None
        except Transient:
            in_doubt = True
        except Conflict:
            pass
        try:
            current = store.get(key)
        except NotFound:
            if if_match is not None:
                return None
            continue
        except StoreError:
            continue
        doc = _parse(current.body)
        if doc is not None and doc.get("nonce") == nonce:
            return current.etag
        if if_absent or current.etag != if_match:
            return None
    return None


def acquire(
    store: ObjectStore, org: str, holder: str, *, duration: float, clock: Clock
) -> Lease | None:
    """Take the org's lease, or return None if someone else holds it.

    A lease held by another is taken over (epoch + 1) once it has stayed
    unchanged for its duration on ``clock``, counted from when this process
    first saw it; a released lease is taken over at once.
    """
    key = lease_key(org)
    nonce = uuid.uuid4().hex
    try:
        current = store.get(key)
    except NotFound:
        current = None
    except StoreError:
        return None

    if current is None:
        epoch, condition = 1, {"if_absent": True}
    else:
        doc = _parse(current.body)
        if doc is None or not doc.get("released"):
            held_for = _elapsed_since_first_seen(org, current.etag, clock)
            if held_for < _duration_of(doc, duration):
                return None
        epoch = (doc["epoch"] if doc else 0) + 1
        condition = {"if_match": current.etag}

    started = clock()
    etag = _write(
        store, key, _body(holder, epoch, duration, nonce, False), nonce, **condition
    )
    if etag is None:
        return None
    _forget(org)
    return Lease(org, holder, epoch, etag, nonce, duration, started + duration)


def reacquire(
    store: ObjectStore, org: str, holder: str, *, released: str, epoch: int,
    duration: float, clock: Clock,
) -> Lease | None:
    """Take the lease again over our own released marker: one put, no read.

    ``released`` is the etag our ``release`` returned and ``epoch`` the
    epoch it released. The put lands only if the lease object is still that
    marker, so nobody has taken the lease since (every lease write has a
    new etag): no other processor has committed or snapshotted meanwhile,
    save one that had already lost the lease before ours. None when the
    marker is gone; then ``acquire`` decides as usual.
    """
    nonce = uuid.uuid4().hex
    started = clock()
    etag = _write(
        store, lease_key(org), _body(holder, epoch + 1, duration, nonce, False), nonce,
        if_match=released,
    )
    if etag is None:
        return None
    _forget(org)
    return Lease(org, holder, epoch + 1, etag, nonce, duration, started + duration)


def renew(
    store: ObjectStore, lease: Lease, clock: Clock, *, epoch: int | None = None
) -> Lease:
    """Extend the lease by its duration; raises LeaseLost if it is not ours.

    ``epoch`` raises the lease's epoch while renewing, for a holder that
    learns the log already carries its epoch or a higher one.
    """
    new_epoch = lease.epoch if epoch is None else max(epoch, lease.epoch)
    nonce = uuid.uuid4().hex
    # Even past valid_until the put-if-match is safe: it lands only if no
    # one has taken the lease over in between.
    started = clock()
    etag = _write(
        store,
        lease_key(lease.org),
        _body(lease.holder, new_epoch, lease.duration, nonce, False),
        nonce,
        if_match=lease.etag,
    )
    if etag is None:
        raise LeaseLost(f"lease of {lease.org} was taken over or could not be renewed")
    return Lease(
        lease.org,
        lease.holder,
        new_epoch,
        etag,
        nonce,
        lease.duration,
        started + lease.duration,
    )


def release(store: ObjectStore, lease: Lease, *, hint: Released | None = None) -> str | None:
    """Give the lease up so the next processor need not wait for it to expire.

    ``hint`` says when the org's state next needs a cycle (``next_due``:
    a time, possibly already past; None: no link will need work without a
    new event). The released marker carries it, so a trigger can tell a
    quiet org from one with work waiting by reading this small object
    instead of restoring the snapshot; the write costs nothing extra, as
    release writes the marker anyway. Without a hint (the holder never
    learned its state, e.g. its restore failed) the marker carries none,
    and readers ask the state: a wrong "nothing is waiting" would leave
    links unprocessed until the next push.

    A hint with a time is first written into the due index, so the time a
    released lease names is always backed by an entry the sweep will read;
    if that write fails the marker carries no hint (the entry that led to
    this cycle then stays, see triggers.sweep).

    Returns the released marker's etag (for ``reacquire``), or None if it
    was no longer ours (or the release could not be confirmed; it then
    simply expires).
    """
    if hint is not None and hint.next_due is not None:
        try:
            dueindex.mark(store, lease.org, hint.next_due, reason="release")
        except StoreError:
            hint = None
    nonce = uuid.uuid4().hex
    etag = _write(
        store,
        lease_key(lease.org),
        _body(lease.holder, lease.epoch, lease.duration, nonce, True, hint),
        nonce,
        if_match=lease.etag,
    )
    return etag


@dataclass(frozen=True)
class Released:
    """What a released lease says: when its last holder's state next needs a
    cycle (None: no link will need work until a new event)."""

    next_due: datetime | None


def released(store: ObjectStore, org: str) -> Released | None:
    """The org's lease if it is released and carries a next-due time; else None.

    None (no lease, one held or expired mid-cycle, one written before the
    hint existed, or an unreadable one) means "no hint": ask the state.
    Raises the store's errors.
    """
    try:
        body = store.get(lease_key(org)).body
    except NotFound:
        return None
    doc = _parse(body)
    if doc is None or doc.get("released") is not True or "next_due" not in doc:
        return None
    raw = doc["next_due"]
    if raw is None:
        return Released(next_due=None)
    try:
        due = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        due = None
    if due is None or due.tzinfo is None:
        return None
    return Released(next_due=due)
