"""The local processor for ``make run``: a thread that plays SQS and the schedule.

It takes orgs from the queue and runs one cycle each, as the Lambda SQS
handler does; it sweeps the due index now and then, as the scheduled
function does, so retries come due and orgs whose wake-up was lost get
processed (its first sweep on a store from before the index also walks
every org once, so commits written there by other means are found). Which org to look at again, and when, is decided here in one
place:

- work left: again at once;
- lease held, cycle stopped or raised: again after ``retry_delay`` seconds
  (the lease's holder may have missed a push that landed mid-cycle);
- a retry due later: again when it is due.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from typing import Callable

from chalicelib.cycle import utc_now
from chalicelib.keptstate import KeptStates
from chalicelib.links.outcome import ProcessLink
from chalicelib.queue import Queue
from chalicelib.store.base import ObjectStore
from chalicelib.triggers import RETRY_OUTCOMES, RunCycle, cycle_runner, sweep

log = logging.getLogger(__name__)

# How long one receive may block, so a stop request is noticed soon; an SQS
# receive of under a second is a short poll, so not less for SQS.
POLL_SECONDS = 1.0


def start_worker(
    store: ObjectStore,
    queue: Queue,
    *,
    process: ProcessLink,
    stop_event: threading.Event | None = None,
    sweep_every: float = 60,
    retry_delay: float = 5,
    run: RunCycle | None = None,
    now: Callable[[], datetime] = utc_now,
    clock: Callable[[], float] = time.monotonic,
    poll_seconds: float = POLL_SECONDS,
    lease_seconds: float | None = None,
) -> threading.Thread:
    """Start the worker thread (a daemon) and return it; set ``stop_event`` to end it.

    ``run(org)`` defaults to a real cycle with ``process`` and
    ``lease_seconds`` (None: the cycle's default) that keeps the last org's
    state between its cycles (chalicelib.keptstate); tests may hand in their
    own. The first sweep runs at once, so work left by an earlier run (or
    written straight into the store) is picked up on start.
    """
    if sweep_every <= 0 or poll_seconds <= 0 or retry_delay < 0:
        raise ValueError("sweep_every and poll_seconds must be positive, retry_delay not negative")
    stop = stop_event if stop_event is not None else threading.Event()
    if run is None:
        run = cycle_runner(
            store, process=process, enqueue=None, holder_prefix=f"worker-{os.getpid()}",
            lease_seconds=lease_seconds, now=now, kept=KeptStates(),
        )
    thread = threading.Thread(
        target=_work,
        args=(store, queue, run, stop, sweep_every, retry_delay, now, clock, poll_seconds),
        name="linklog-worker",
        daemon=True,
    )
    thread.start()
    log.info("local worker started: cycles for queued orgs, a sweep every %s s", sweep_every)
    return thread


def _work(store, queue, run, stop, sweep_every, retry_delay, now, clock, poll_seconds) -> None:
    next_sweep = clock()
    while not stop.is_set():
        if clock() >= next_sweep:
            try:
                sweep(store, now=now(), enqueue=queue.send)
            except Exception:
                log.exception("sweep failed; trying again in %s s", sweep_every)
            next_sweep = clock() + sweep_every
        try:
            org = queue.receive(timeout=min(poll_seconds, max(0.0, next_sweep - clock())))
        except Exception:
            # An SQS queue can be unreachable for a while; the worker must outlive it.
            log.exception("receiving from the queue failed; trying again in %s s", retry_delay)
            stop.wait(retry_delay)
            continue
        if org is not None and not stop.is_set():
            _cycle(org, queue, run, retry_delay, now)


def _cycle(org: str, queue: Queue, run: RunCycle, retry_delay: float, now) -> None:
    try:
        report = run(org)
    except Exception:
        log.exception("cycle of org %s failed; again in %s s", org, retry_delay)
        queue.send(org, delay_seconds=retry_delay)
        return
    log.info("cycle of org %s: %s", org, report.outcome)
    if report.outcome in RETRY_OUTCOMES:
        queue.send(org, delay_seconds=retry_delay)
    elif report.outcome == "work_left":
        queue.send(org)
    due = getattr(report, "next_due", None)
    if due is not None:
        queue.send(org, delay_seconds=max(0.0, (due - now()).total_seconds()))
