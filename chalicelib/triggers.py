"""What wakes the processor, turned into "run a cycle of this org" (DESIGN §6).

A trigger carries only the org, and the cycle trusts only the state, so a
missed, late, duplicate or early trigger is harmless. These are the plain
functions behind the Lambda handlers in app.py and the local worker:

- ``handle_sqs_records``: a queue batch, grouped by org, one cycle per org,
  with SQS partial batch failures for the orgs that must be tried again.
- ``orgs_from_s3_event``: the orgs whose log got a new commit, from an S3
  ObjectCreated notification (direct, or wrapped in an SQS record).
- ``sweep``: the orgs whose log is ahead of their newest snapshot or whose
  state has a link needing work, found by listing the store.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterator, Protocol
from urllib.parse import unquote_plus

from chalicelib import lease as leases
from chalicelib import snapshots, state
from chalicelib.cycle import LEASE_SECONDS, CycleReport, run_cycle, utc_now
from chalicelib.keys import (
    VERSION_DIGITS,
    InvalidOrg,
    check_org,
    log_key,
    log_prefix,
    org_of_key,
)
from chalicelib.links.outcome import ProcessLink
from chalicelib.store.base import ObjectStore, StoreError

log = logging.getLogger(__name__)

# Outcomes after which the org's messages go back to the queue: the lease was
# held (a push may have landed after that cycle read the log), or our cycle
# stopped before writing (lost its lease, or the store failed). Either way
# someone must look again later; the visibility timeout is that "later".
RETRY_OUTCOMES = frozenset({"lease_held", "stopped"})

LOG_FILE = re.compile(rf"\d{{{VERSION_DIGITS}}}\.json")

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


def list_orgs(store: ObjectStore) -> Iterator[str]:
    """Every org with at least one object, in key order, one list request each.

    The store interface has no delimiter, so this skips from org to org with
    start_after rather than listing every commit of every org. A key under
    ``orgs/`` that names no valid org is stepped over.
    """
    start_after: str | None = None
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
    store: ObjectStore, *, now: datetime, enqueue: Callable[[str], None]
) -> list[str]:
    """Enqueue every org that needs a cycle; return them in key order.

    An org needs one when its log has commits after its newest snapshot of
    the current schema, or when its state (that snapshot) has a link that
    needs work at ``now`` (never started, reprocess requested, left pending,
    or a retry due). Cost: one list per org to find it, two lists to compare log and
    snapshot, and for an org whose log is not ahead one get of its released
    lease, which says when its state is next due (only without that hint,
    e.g. after a crashed cycle, the snapshot is restored: a list and a get). An org that cannot be checked (the store failed) is
    enqueued anyway: the cycle decides, and a spare cycle is cheap.
    """
    due: list[str] = []
    for org in list_orgs(store):
        try:
            needed = _needs_cycle(store, org, now)
        except Exception:
            log.exception("sweep could not check org %s; enqueueing it", org)
            needed = True
        if needed:
            enqueue(org)
            due.append(org)
    log.info(json.dumps({"sweep": {"orgs_enqueued": len(due)}}))
    return due


def _needs_cycle(store: ObjectStore, org: str, now: datetime) -> bool:
    found = readiness(store, org)
    if found.log_ahead:
        return True
    if found.known:
        due = found.next_due
    else:
        due = state.next_due(snapshots.restore_latest(store, org).db, now)
    return due is not None and due <= now


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


def cycle_runner(
    store: ObjectStore,
    *,
    process: ProcessLink,
    enqueue: Callable[[str], None] | None,
    holder_prefix: str = "processor",
    budget_seconds: float = 60,
    lease_seconds: float | None = None,
    now: Callable[[], datetime] = utc_now,
) -> RunCycle:
    """``run(org)``: one processor cycle of an org, as every trigger runs it.

    Each cycle gets a holder name of its own, so two cycles of one process
    never mistake each other's lease for their own. ``lease_seconds``
    (None: LEASE_SECONDS) is how long a crashed cycle's lease keeps others
    out (``LINKLOG_LEASE_SECONDS``).

    Before taking the lease it asks the store, cheaply, whether the org is
    idle (log not ahead of its snapshot, no link due): every commit wakes
    the processor, the processor's own commits included, and a wake-up for
    nothing should cost two lists and a small get, not a lease write and a
    snapshot restore. When the store cannot tell, the cycle decides.
    """

    def run(org: str):
        try:
            found = readiness(store, org)
        except StoreError:
            found = Readiness(log_ahead=True, known=False)
        if found.idle_at(now()):
            return CycleReport(org=org, outcome="nothing_to_do", next_due=found.next_due)
        holder = f"{holder_prefix}-{uuid.uuid4().hex[:12]}"
        return run_cycle(
            store,
            org,
            process=process,
            holder=holder,
            now=now,
            budget_seconds=budget_seconds,
            lease_seconds=lease_seconds or LEASE_SECONDS,
            enqueue=enqueue,
        )

    return run
