"""One sync: pull what is new, push the outbox, rebuild the view.

Exactly once, across crashes and retries:

1. A batch id is stored with its events before the first push.
2. Before pushing, the replica is brought up to date; a batch whose id a
   pulled commit carries is already committed, and leaves the outbox
   without being sent again (a crash after the push, before its answer
   was recorded, ends here).
3. Otherwise the same batch is pushed again; the server answers a repeated
   batch id with the first commit's version, and applying the log ignores
   an event id seen before, so even an old repeat changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from linklog.api import Api, Refused, Unreachable
from linklog.outbox import Outbox
from linklog.replica import Replica

# Refusals that say the batch itself is wrong; anything else (a bad token,
# a damaged org) is the user's to fix, and the batch waits.
BATCH_REFUSALS = (400, 413, 422)


@dataclass
class SyncReport:
    pulled_commits: int = 0
    pushed_batches: int = 0
    pushed_events: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    version: int = 0
    head: int = 0
    offline: str | None = None


def pull(api: Api, replica: Replica, report: SyncReport) -> None:
    """Apply every commit after the replica's version, page by page."""
    for page in api.pages(replica.version):
        if page["commits"]:
            replica.apply_pulled(page["commits"])
            report.pulled_commits += len(page["commits"])
        report.head = page["head"]


def confirm_committed(replica: Replica, outbox: Outbox) -> None:
    """Drop the outbox's batches the replica shows committed."""
    outbox.confirm([batch.batch_id for batch in outbox.batches() if replica.batch_committed(batch.batch_id)])


def sync(
    api: Api,
    replica: Replica,
    outbox: Outbox,
    *,
    on_pushed: Callable[[int], None] = lambda events: None,
) -> SyncReport:
    """Pull, push the outbox batch by batch, pull again, rebuild the view.

    A server that cannot be reached ends the sync early with
    ``report.offline`` set; what was not pushed stays in the outbox.
    ``on_pushed`` is told the number of events of each batch pushed.
    """
    report = SyncReport()
    try:
        pull(api, replica, report)
        confirm_committed(replica, outbox)
        outbox.assign_batches()
        client_id = outbox.client_id()
        for batch in outbox.batches():
            try:
                api.push(batch.batch_id, client_id, batch.events)
            except Refused as refusal:
                if refusal.status not in BATCH_REFUSALS:
                    raise
                outbox.reject(batch.batch_id, str(refusal))
                report.rejected.append((batch.batch_id, str(refusal)))
                continue
            outbox.confirm([batch.batch_id])
            report.pushed_batches += 1
            report.pushed_events += len(batch.events)
            on_pushed(len(batch.events))
        if report.pushed_batches:
            pull(api, replica, report)
    except Unreachable as error:
        report.offline = str(error)
    finally:
        report.version = replica.version
        changed = report.pulled_commits or report.pushed_batches or report.rejected
        if changed or not replica.view_path.exists():
            replica.rebuild_view(outbox.pending())
    return report
