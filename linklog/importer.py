"""A bookmark file's import plan into the outbox, so a second run of the same
file recognises what the first one queued.

The plan (chalicelib.formats.plan, shared with ``POST /v1/import``) gives
batch, event and link ids derived from the file. A batch already in the
outbox or already committed (the replica's pulled batch ids) is not queued
again: an interrupted import, run again, queues only what did not get
through, and pushing uses the outbox's exactly-once protocol.
"""

from __future__ import annotations

from datetime import datetime, timezone

from chalicelib.formats.plan import ImportPlan, plan_import
from chalicelib.formats.screen import Screened
from linklog.outbox import Outbox
from linklog.replica import Replica


def plan(data: bytes, file_format: str, total: int, screened: Screened, replica: Replica, outbox: Outbox) -> ImportPlan:
    """The batches to queue for a file's screened bookmarks (``total`` read from it)."""
    return plan_import(
        data, file_format, total, screened, replica.view(), datetime.now(timezone.utc),
        sent=lambda batch_id: outbox.has_batch(batch_id) or replica.batch_committed(batch_id),
    )


def queue(plan: ImportPlan, replica: Replica, outbox: Outbox) -> None:
    """Put the plan's batches in the outbox (one transaction) and apply them to the view."""
    with outbox.db:
        for batch in plan.batches:
            outbox.add(batch.events, batch_id=batch.batch_id)
    replica.apply_local([event for batch in plan.batches for event in batch.events])
