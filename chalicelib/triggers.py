"""What wakes the processor, turned into "run a cycle of this org" (DESIGN §6).

A trigger carries only the org, and the cycle trusts only the state, so a
missed, late, duplicate or early trigger is harmless. These are the plain
functions behind the Lambda handlers in app.py and the local worker:

- ``handle_sqs_records``: a queue batch, grouped by org, one cycle per org,
  with SQS partial batch failures for the orgs that must be tried again.
- ``orgs_from_s3_event``: the orgs whose log got a new commit, from an S3
  ObjectCreated notification (direct, or wrapped in an SQS record).
- ``sweep``: the orgs the due index names up to now (chalicelib.dueindex)
  whose log is ahead of their newest snapshot or whose state has a link
  needing work; the cost follows the orgs that are due, not all orgs.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator, Protocol
from urllib.parse import unquote_plus

from chalicelib import dueindex, snapshots
from chalicelib import lease as leases
from chalicelib.cycle import LEASE_SECONDS, CycleReport, run_cycle, utc_now
from chalicelib.keptstate import KeptHead, KeptStates
from chalicelib.keys import (
    ORG_PATTERN,
    VERSION_DIGITS,
    InvalidOrg,
    check_org,
    log_key,
    log_prefix,
    org_of_key,
)
from chalicelib.links.outcome import ProcessLink
from chalicelib.store.base import NotFound, ObjectStore, StoreError

log = logging.getLogger(__name__)

# Outcomes after which the org's messages go back to the queue: the lease was
# held (a push may have landed after that cycle read the log), or our cycle
# stopped before writing (lost its lease, or the store failed). Either way
# someone must look again later; the visibility timeout is that "later".
RETRY_OUTCOMES = frozenset({"lease_held", "stopped"})

LOG_FILE = re.compile(rf"\d{{{VERSION_DIGITS}}}\.json")

# The sweep's one-off walk over the orgs from before the due index: how far
# it got. Outside orgs/, so no org (and no bucket notification) sees it.
WALK_KEY = "sweep/walk.json"
# Orgs the walk looks at per sweep (about four requests each), so a sweep
# stays within its function's timeout however many orgs there are.
WALK_ORGS_PER_SWEEP = 1000
# Orgs the sweep checks at the same time (each check is three small requests).
CHECKS_AT_ONCE = 16

# Every key under orgs/{org}/ is built by chalicelib.keys from letters,
# digits, '_', '-', '.' and '/', all of which sort before '~'; so listing
# with start_after "orgs/{org}/~" skips the whole org in one request.
PAST_ORG = "~"


class CycleOutcome(Protocol):
    outcome: str


RunCycle = Callable[[str], CycleOutcome]


def handle_sqs_records(
    records: list[dict], *, run: RunCycle, max_parallel: int = 10
) -> dict:
    """Run one cycle per org named in an SQS batch; report what must be retried.

    A record is ``{"org": ...}`` (sent by chalicelib.queue) or an S3 event
    notification the bucket sent to the queue. Records naming the same org
    share one cycle. Every record of an org whose lease was held, whose cycle
    stopped or raised, is returned in ``batchItemFailures`` so SQS delivers it
    again; the other orgs' records are done. A record that names no valid org
    (not JSON, not an object, a bad org name) is logged and dropped: no
    redelivery could ever make it valid, and a poison message must not loop.
    """
    records_of_org: dict[str, list[str]] = {}
    message_ids: list[str] = []
    for record in records:
        message_id = record.get("messageId") if isinstance(record, dict) else None
        if not isinstance(message_id, str):
            log.warning("dropped an SQS record without a messageId: %.200r", record)
            continue
        message_ids.append(message_id)
        for org in sorted(_orgs_of_sqs_record(record)):
            records_of_org.setdefault(org, []).append(message_id)

    failed: set[str] = set()
    if records_of_org:
        workers = max(1, min(max_parallel, len(records_of_org)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            needs_retry = pool.map(lambda org: _run_and_judge(run, org), records_of_org)
            for org, retry in zip(records_of_org, needs_retry):
                if retry:
                    failed.update(records_of_org[org])

    failures = [m for m in dict.fromkeys(message_ids) if m in failed]
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}


def _run_and_judge(run: RunCycle, org: str) -> bool:
    """Run the org's cycle; True if its messages must be delivered again."""
    try:
        report = run(org)
    except Exception:
        log.exception("cycle of org %s failed; its messages will be redelivered", org)
        return True
    if report.outcome in RETRY_OUTCOMES:
        log.info("cycle of org %s: %s; its messages will be redelivered", org, report.outcome)
        return True
    return False


def _orgs_of_sqs_record(record: dict) -> set[str]:
    body = record.get("body")
    try:
        payload = json.loads(body)
    except (TypeError, ValueError):
        log.warning("dropped an SQS record whose body is not JSON: %.200r", body)
        return set()
    if isinstance(payload, dict) and "org" in payload:
        try:
            return {check_org(payload["org"])}
        except InvalidOrg as error:
            log.warning("dropped an SQS record: %s", error)
            return set()
    if isinstance(payload, dict) and ("Records" in payload or "Event" in payload):
        return orgs_from_s3_event(payload)
    log.warning("dropped an SQS record that names no org: %.200r", body)
    return set()


def orgs_from_s3_event(event: dict) -> set[str]:
    """Orgs whose log got a commit, from an S3 ObjectCreated notification.

    Takes the notification as S3 sends it to a function, or an SQS event
    whose records carry such notifications (the bucket notifies the queue).
    Anything else in it (the lease and snapshot keys, other event names,
    S3's test event, junk) is skipped with a log line.
    """
    if not isinstance(event, dict):
        log.warning("skipped an S3 event that is not an object: %.200r", event)
        return set()
    if event.get("Event") == "s3:TestEvent":
        return set()
    records = event.get("Records")
    if not isinstance(records, list):
        log.warning("skipped an S3 event without Records: %.200r", event)
        return set()
    orgs: set[str] = set()
    for record in records:
        orgs.update(_orgs_of_s3_record(record))
    return orgs


def _orgs_of_s3_record(record: Any) -> set[str]:
    if not isinstance(record, dict):
        log.warning("skipped an S3 event record that is not an object: %.200r", record)
        return set()
    if record.get("eventSource") == "aws:sqs":
        try:
            return orgs_from_s3_event(json.loads(record.get("body")))
        except (TypeError, ValueError):
            log.warning("skipped an SQS record whose body is not JSON: %.200r", record)
            return set()
    try:
        name = record["eventName"]
        key = unquote_plus(record["s3"]["object"]["key"])
    except (KeyError, TypeError):
        log.warning("skipped an S3 event record without eventName or key: %.200r", record)
        return set()
    if not isinstance(name, str) or not name.startswith("ObjectCreated:"):
        return set()
    key = _without_store_prefix(key)
    org = org_of_key(key)
    if org is None:
        log.warning("skipped an S3 event for a key outside any org: %.200r", key)
        return set()
    prefix = log_prefix(org)
    if not (key.startswith(prefix) and LOG_FILE.fullmatch(key[len(prefix):])):
        return set()
    return {org}


def _without_store_prefix(key: str) -> str:
    """The store key of a bucket key: a store URL may carry a prefix
    (``s3://bucket/prefix``), so ``prefix/orgs/a/log/…`` is ``orgs/a/log/…``."""
    if key.startswith("orgs/"):
        return key
    at = key.rfind("/orgs/")
    return key[at + 1:] if at >= 0 else key


def list_orgs(store: ObjectStore, *, after: str | None = None) -> Iterator[str]:
    """Every org with at least one object (after org ``after``), in key order,
    one list request each.

    The store interface has no delimiter, so this skips from org to org with
    start_after rather than listing every commit of every org. A key under
    ``orgs/`` that names no valid org is stepped over.
    """
    start_after = f"orgs/{check_org(after)}/{PAST_ORG}" if after is not None else None
    while True:
        found = store.list("orgs/", start_after=start_after, limit=1)
        if not found:
            return
        key = found[0].key
        org = org_of_key(key)
        if org is not None:
            yield org
        segments = key.split("/")
        start_after = f"orgs/{segments[1]}/{PAST_ORG}" if len(segments) > 2 else key


def sweep(
    store: ObjectStore,
    *,
    now: datetime,
    enqueue: Callable[[str], None],
    walk_orgs: int = WALK_ORGS_PER_SWEEP,
) -> list[str]:
    """Enqueue every org that needs a cycle among those the due index names;
    return them in name order.

    Reads the index up to ``now`` (chalicelib.dueindex: one list request per
    1,000 entries due) and checks each org named there with ``readiness``
    (two lists and a small get). An org that is not idle at ``now`` (log
    ahead, a link needing work, or a state only a cycle can judge: a cycle
    holds the lease or died holding it) is enqueued and its entries kept, so
    every sweep enqueues it again until a cycle has dealt with it. An idle
    org's entries are deleted, and so are keys under the index's prefix that
    are no entry. An org that cannot be checked (the store failed) is
    enqueued anyway: the cycle decides, and a spare cycle is cheap.

    Before that, up to ``walk_orgs`` orgs of the one-off walk over the orgs
    from before the index are indexed (``index_orgs_from_before``); once the
    walk is done that costs one small get. A walk step the store fails is
    tried again next sweep; the index is read all the same.
    """
    try:
        index_orgs_from_before(store, now=now, most=walk_orgs)
    except StoreError:
        log.exception("the walk over orgs from before the due index failed; next sweep retries")
    keys_of_org: dict[str, list[str]] = {}
    damaged: list[str] = []
    for key, entry in dueindex.listed_until(store, now):
        if entry is None:
            damaged.append(key)
        else:
            keys_of_org.setdefault(entry.org, []).append(key)
    orgs = sorted(keys_of_org)
    with ThreadPoolExecutor(max_workers=CHECKS_AT_ONCE) as pool:
        needed = list(pool.map(lambda org: _needs_cycle(store, org, now), orgs))
        due = [org for org, need in zip(orgs, needed) if need]
        for org in due:
            enqueue(org)
        stale = damaged + [
            key for org, need in zip(orgs, needed) if not need for key in keys_of_org[org]
        ]
        deleted = sum(pool.map(lambda key: _delete_entry(store, key), stale))
    log.info(json.dumps({"sweep": {
        "orgs_due": len(orgs), "orgs_enqueued": len(due),
        "entries_deleted": deleted, "damaged_keys": len(damaged),
    }}))
    return due


def _needs_cycle(store: ObjectStore, org: str, now: datetime) -> bool:
    try:
        return not readiness(store, org).idle_at(now)
    except Exception:
        log.exception("sweep could not check org %s; enqueueing it", org)
        return True


def _delete_entry(store: ObjectStore, key: str) -> bool:
    """Delete a key of the index the sweep is done with; False if it could not
    (it is then listed, and tried, again next sweep)."""
    try:
        store.delete(key)
    except (StoreError, ValueError):
        log.warning("sweep could not delete %.300r from the due index", key)
        return False
    return True


def index_orgs_from_before(store: ObjectStore, *, now: datetime, most: int) -> int:
    """One step of the one-off walk that writes due entries for orgs from
    before the index; returns the number of orgs it looked at.

    Its progress is kept in WALK_KEY (the last org walked, and whether the
    walk is done), so a walk over many orgs spreads over several sweeps and
    a crash repeats at most one step (a duplicate entry only costs a check).
    Per org: today's readiness check, and an entry now when the org is not
    idle, or at its released lease's next_due when that is a later time.
    Deleting WALK_KEY starts the walk again.
    """
    progress = _walk_progress(store)
    if progress.get("done") is True:
        return 0
    after = progress.get("after")
    walked = 0
    done = True
    for org in list_orgs(store, after=after):
        if walked == most:
            done = False
            break
        _index_org(store, org, now)
        walked += 1
        after = org
    store.put(WALK_KEY, json.dumps({"after": after, "done": done}).encode())
    log.info(json.dumps({"sweep_walk": {"orgs": walked, "after": after, "done": done}}))
    return walked


def _walk_progress(store: ObjectStore) -> dict:
    """What WALK_KEY says; an unreadable one starts the walk again."""
    try:
        progress = json.loads(store.get(WALK_KEY).body)
    except (NotFound, ValueError, RecursionError):
        return {}
    if not isinstance(progress, dict):
        return {}
    after = progress.get("after")
    if after is not None and not (isinstance(after, str) and ORG_PATTERN.fullmatch(after)):
        progress["after"] = None
    return progress


def _index_org(store: ObjectStore, org: str, now: datetime) -> None:
    try:
        found = readiness(store, org)
    except StoreError:
        found = Readiness(log_ahead=True, known=False)
    if not found.idle_at(now):
        dueindex.mark(store, org, now, reason="walk")
    elif found.next_due is not None:
        dueindex.mark(store, org, found.next_due, reason="walk")


@dataclass(frozen=True)
class Readiness:
    """What the store says, cheaply, about whether an org needs a cycle.

    ``log_ahead``: its log has commits after its newest snapshot. If not,
    the last cycle's state is the snapshot's, and ``known`` says whether
    that cycle's released lease told when the state is next due
    (``next_due``, from ``state.next_due``: a time already past while any
    link needs work; None: no link will need work without a new event).
    Not ``known``: a cycle holds the lease, died holding it, or released it
    without having read its state, and only the state can tell.
    """

    log_ahead: bool
    known: bool
    next_due: datetime | None = None

    def idle_at(self, now: datetime) -> bool:
        """True when the org certainly has nothing to do at ``now``."""
        return (
            not self.log_ahead
            and self.known
            and (self.next_due is None or self.next_due > now)
        )


def readiness(store: ObjectStore, org: str) -> Readiness:
    """Two lists and, when the log is not ahead, one small get of the lease."""
    snapshot_version = snapshots.newest_version(store, org)
    after = log_key(org, snapshot_version) if snapshot_version else None
    if store.list(log_prefix(org), start_after=after, limit=1):
        return Readiness(log_ahead=True, known=True)
    if snapshot_version == 0:
        return Readiness(log_ahead=False, known=True)
    hint = leases.released(store, org)
    if hint is None:
        return Readiness(log_ahead=False, known=False)
    return Readiness(log_ahead=False, known=True, next_due=hint.next_due)


def kept_readiness(store: ObjectStore, org: str, head: KeptHead) -> Readiness | None:
    """One list, for a container that keeps the org's state (``head``).

    The log is append-only and its commits immutable, so a log whose commit
    at the kept version is the very object the kept cycle saw (same etag)
    and has nothing after it is the log the kept state was built from:
    that state is the org's, whoever held the lease since. None when the
    log does not show that commit: it is another store's log, or one
    restored from a backup, and only ``readiness`` can tell.
    """
    if head.etag is None:
        return None
    after = log_key(org, head.version - 1) if head.version > 1 else None
    listed = store.list(log_prefix(org), start_after=after, limit=2)
    if not listed or (listed[0].key, listed[0].etag) != (log_key(org, head.version), head.etag):
        return None
    return Readiness(log_ahead=len(listed) > 1, known=True, next_due=head.next_due)


def cycle_runner(
    store: ObjectStore,
    *,
    process: ProcessLink,
    enqueue: Callable[[str], None] | None,
    holder_prefix: str = "processor",
    budget_seconds: float = 60,
    lease_seconds: float | None = None,
    now: Callable[[], datetime] = utc_now,
    kept: KeptStates | None = None,
) -> RunCycle:
    """``run(org)``: one processor cycle of an org, as every trigger runs it.

    Each cycle gets a holder name of its own, so two cycles of one process
    never mistake each other's lease for their own. ``lease_seconds``
    (None: LEASE_SECONDS) is how long a crashed cycle's lease keeps others
    out (``LINKLOG_LEASE_SECONDS``). ``kept`` is the container's kept
    states (chalicelib.keptstate; None: every cycle restores).

    Before taking the lease it asks the store, cheaply, whether the org is
    idle (log not ahead of its snapshot, no link due): every commit wakes
    the processor, the processor's own commits included, and a wake-up for
    nothing should cost two lists and a small get, not a lease write and a
    snapshot restore. When the store cannot tell, the cycle decides.

    When this container keeps the org's state, one list does
    (``kept_readiness``), for one lease duration after the kept cycle's
    release. A cycle elsewhere that took the lease since and died before
    writing a commit leaves no trace in the log: the sweep sees its lease
    held and enqueues the org until a cycle takes that lease over and
    releases it. Past that duration the wake-up goes back to ``readiness``,
    which reads the lease, so such a cycle comes, here or elsewhere.
    """
    lease_seconds = lease_seconds or LEASE_SECONDS
    trusted = timedelta(seconds=lease_seconds)

    def check(org: str, at: datetime) -> Readiness:
        head = kept.head(org) if kept is not None else None
        if head is not None and at - head.released_at < trusted:
            found = kept_readiness(store, org, head)
            if found is not None:
                return found
        return readiness(store, org)

    def run(org: str):
        at = now()
        try:
            found = check(org, at)
        except StoreError:
            found = Readiness(log_ahead=True, known=False)
        if found.idle_at(at):
            return CycleReport(org=org, outcome="nothing_to_do", next_due=found.next_due)
        holder = f"{holder_prefix}-{uuid.uuid4().hex[:12]}"
        return run_cycle(
            store,
            org,
            process=process,
            holder=holder,
            now=now,
            budget_seconds=budget_seconds,
            lease_seconds=lease_seconds,
            enqueue=enqueue,
            kept=kept,
        )

    return run
