"""One processor cycle of one org (DESIGN §6).

lease → restore → delta → choose links → commit "started" → process several
at a time (politely per origin) within the budget → commit all results →
apply → one snapshot → prune → release → enqueue again if work is left.

A container that ran the org's last cycle may have kept its state
(chalicelib.keptstate): the lease is then retaken over that cycle's own
release with one put, and the kept database catches up from the log
instead of restoring a snapshot.

Whatever the number of links, a cycle writes at most two log commits and
one snapshot. The trigger that woke the cycle carries only the org: the
cycle decides from the state what to do, so duplicate, late or early
triggers are harmless.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import apsw

from chalicelib import lease as leases
from chalicelib import log, orgstate, packs, snapshots, state
from chalicelib.cyclelog import CycleRecord, MeteredStore, log_line, process_cycles
from chalicelib.keptstate import KeptHead, KeptState, KeptStates
from chalicelib.keys import check_org, log_key, version_of_snapshot_key
from chalicelib.links.outcome import LinkFailure, LinkJob, LinkOutcome, ProcessLink
from chalicelib.links.politeness import CONCURRENCY, PER_ORIGIN, OriginSlots, choose
from chalicelib.processor_events import link_events, result_events, started_events
from chalicelib.state.apply import MAX_ATTEMPTS
from chalicelib.store.base import ObjectStore, StoreError

OUTCOMES = ("done", "work_left", "lease_held", "nothing_to_do", "stopped")

# Longer than any sane budget plus the commits and the snapshot; renewed
# while processing whenever less than half of it is left.
LEASE_SECONDS = 120.0
# What one link may take at worst (the fetcher's timeouts): a cycle starts
# no more links than its fetch slots (CONCURRENCY in all, PER_ORIGIN per
# origin) can finish within the budget at that pace.
LINK_SECONDS = 10.0
SNAPSHOTS_KEPT = 3
# The commits (and packs) a cycle read or wrote, kept for its pack step and,
# with a kept state, for the next cycles': a range of eight commits is then
# packed from memory. Results commits carry page text, so this is bounded.
LOG_CACHE_BYTES = 16 << 20
MAX_HOLDER_CHARS = 200


def utc_now() -> datetime:
    """The current time in UTC: the default ``now`` of cycles, triggers and the worker."""
    return datetime.now(timezone.utc)


class Fenced(Exception):
    """A commit of a higher epoch is in the log: another processor took over."""


@dataclass
class CycleReport:
    """What a cycle did; ``outcome`` is one of OUTCOMES."""

    org: str
    outcome: str
    epoch: int | None = None
    version_before: int = 0
    version_after: int = 0
    commits_written: int = 0
    snapshot_key: str | None = None
    links_started: tuple[str, ...] = ()
    links_done: tuple[str, ...] = ()
    links_failed: tuple[str, ...] = ()
    work_left: bool = False
    # When the state next needs a cycle (state.next_due); None: never
    # without a new event, or unknown (the state was never restored).
    next_due: datetime | None = None
    requests: dict[str, int] = field(default_factory=dict)
    record: CycleRecord | None = None


def _given_up(job: LinkJob, attempts: int) -> LinkOutcome:
    return LinkOutcome(
        link_id=job.link_id,
        failure=LinkFailure(
            "too_many_attempts",
            f"processing was started {attempts} times and never finished",
            False,
        ),
    )


def _safe_process(process: ProcessLink, job: LinkJob) -> LinkOutcome:
    # A bug or surprise in link processing is that link's failure, never
    # the end of the cycle for every other link.
    try:
        outcome = process(job)
    except Exception as error:  # noqa: BLE001 - any error becomes data
        return LinkOutcome(
            link_id=job.link_id,
            failure=LinkFailure(
                "internal_error", f"{type(error).__name__}: {error}"[:500], True
            ),
        )
    if not isinstance(outcome, LinkOutcome) or outcome.link_id != job.link_id:
        return LinkOutcome(
            link_id=job.link_id,
            failure=LinkFailure(
                "internal_error", f"link processing answered {outcome!r:.200}", False
            ),
        )
    return outcome


class _Cycle:
    """The state of one running cycle; run_cycle is its only user."""

    def __init__(self, store, org, process, holder, clock, now, budget, concurrency,
                 per_origin, lease_seconds, link_seconds, checkpoint, kept):
        self.store = MeteredStore(store)
        self.kept: KeptStates | None = kept
        self.org = org
        self.process = process
        self.holder = holder
        self.clock = clock
        self.now = now
        self.concurrency = concurrency
        self.per_origin = per_origin
        self.lease_seconds = lease_seconds
        self.link_seconds = link_seconds
        self.checkpoint = checkpoint
        self.started_at = clock()
        self.deadline = self.started_at + budget
        self.record = CycleRecord(org=org, holder=holder)
        self.report = CycleReport(org=org, outcome="stopped")
        self.lease: leases.Lease | None = None
        self.db: apsw.Connection | None = None
        self.chain: snapshots.Chain | None = None
        self.digests = None
        # The snapshot objects the cycle knows of: listed by its restore (or
        # by the cycle that kept the state), plus what it wrote since.
        self.listed: snapshots.Listed | None = None
        # The state's version before the log was applied (restored or kept).
        self.started_from = 0
        # The stored bodies of the commits read or written (and packs read).
        self.log_cache = packs.PackCache(LOG_CACHE_BYTES)
        # The newest snapshot the cycle knows is ``chain``'s tip at the
        # state's version, with the pages ``digests`` describe: the state
        # may be kept for the next cycle.
        self.at_chain_tip = False

    def timed(self, name: str, started: float) -> None:
        self.record.add_time(name, self.clock() - started)

    def keep_lease(self, epoch: int | None = None) -> None:
        """Make sure the lease is ours for at least half its duration more.

        Renewing rewrites the lease object, and one key takes only about one
        write a second on some stores, so it is renewed only when needed:
        the lease is ours until ``valid_until`` on our own clock, because a
        taker waits a full duration from when it first saw our last write.
        """
        if epoch is not None or self.lease.remaining(self.clock) < self.lease.duration / 2:
            started = self.clock()
            self.lease = leases.renew(self.store, self.lease, self.clock, epoch=epoch)
            self.timed("lease", started)
            self.record.epoch = self.lease.epoch

    def take_lease(self) -> KeptState | None:
        """Take the lease; return the org's kept state if it is still good.

        With a kept state the lease is retaken over the kept cycle's own
        release (one put); if someone took the lease since, that state is
        dropped and the lease acquired as usual.
        """
        kept = self.kept.take(self.org) if self.kept is not None else None
        if kept is not None:
            try:
                self.lease = leases.reacquire(
                    self.store, self.org, self.holder, released=kept.released,
                    epoch=kept.epoch, duration=self.lease_seconds, clock=self.clock,
                )
            except BaseException:
                kept.close()
                raise
            if self.lease is not None:
                return kept
            kept.close()
        self.lease = leases.acquire(
            self.store, self.org, self.holder, duration=self.lease_seconds, clock=self.clock
        )
        return None

    def resume(self, kept: KeptState) -> None:
        """Bring the kept state to the head of the log: no snapshot is read."""
        self.db = kept.db
        self.chain = kept.chain
        self.digests = kept.digests
        self.listed = kept.listed
        self.log_cache = kept.log_cache
        self.record.warm = True
        self.started_from = state.version(self.db)
        timings = {"read_log": 0.0, "apply": 0.0}
        pages = orgstate.apply_rest_of_log(self.store, self.org, self.db, timings, self.log_cache)
        self.record.add_time("apply", timings["read_log"] + timings["apply"])
        self.record.commits_applied += sum(page.commits for page in pages)
        self.record.events_applied += sum(page.events_applied for page in pages)
        self.record.version_before = state.version(self.db)
        self.move_epoch_above_log()

    def restore(self) -> None:
        opened = orgstate.open_state(
            self.store, self.org, with_digests=True, cache=self.log_cache
        )
        self.db = opened.db
        self.chain = opened.chain
        self.digests = opened.digests
        self.listed = opened.listed
        self.started_from = opened.snapshot_version
        for name in ("snapshot_get", "deserialize", "apply"):
            self.record.add_time(name, opened.timings.get(name, 0.0))
        # Reading the delta is part of bringing the state up to date.
        self.record.add_time("apply", opened.timings.get("read_log", 0.0))
        self.record.snapshot_restored = opened.snapshot_version if opened.snapshot_key else None
        self.record.commits_applied += opened.commits_applied
        self.record.events_applied += sum(stats.events_applied for stats in opened.stats)
        self.record.version_before = opened.version
        self.move_epoch_above_log()

    def move_epoch_above_log(self) -> None:
        """The log may carry our epoch already if the lease object was ever
        lost; commits at or below the highest applied epoch would be
        skipped as stale, so the lease moves above it first."""
        highest = state.processor_epoch(self.db)
        if highest >= self.lease.epoch:
            self.keep_lease(epoch=highest + 1)

    def apply(self, commits: list[dict]) -> None:
        if not commits:
            return
        stats = state.apply_commits(self.db, commits)
        self.record.commits_applied += stats.commits
        self.record.events_applied += stats.events_applied

    def fence(self) -> None:
        """Stop if the state has applied a processor commit of a higher epoch."""
        if state.processor_epoch(self.db) > self.lease.epoch:
            raise Fenced(f"{self.org}: a processor of a higher epoch committed")

    def commit(self, events: list[dict]) -> None:
        """Append one processor commit and apply it with whatever came before.

        Raises Fenced when a commit of a higher epoch landed before ours.
        """
        self.keep_lease()
        started = self.clock()
        before = state.version(self.db)
        # The state was at the head a moment ago: put there without listing.
        # A client commit landing since costs a lost put, and is read below.
        landed = log.append(
            self.store,
            self.org,
            events,
            batch_id=uuid.uuid4().hex,
            author={"kind": "processor", "id": self.holder, "epoch": self.lease.epoch},
            known_head=before,
            find_head_first=False,
        )
        self.record.commits_written += 1
        # The bytes append put (or, its answer lost, read back as ours: the
        # same JSON encodes to the same bytes), for the pack step.
        self.log_cache.put_commit(self.org, landed["version"], log.encode_commit(landed))
        self.timed("commit", started)
        started = self.clock()
        # Every version below ours is committed (our put there met a 412,
        # or a listing showed it), so they are read without listing.
        between = packs.read_commits(
            self.store, self.org, before, landed["version"] - 1, [], self.log_cache
        )
        self.apply(between + [landed])
        self.timed("apply", started)
        self.fence()

    def choose(self, candidates: list[LinkJob]) -> list[LinkJob]:
        """The links the budget left can finish: each fetch slot runs
        ``rounds`` links one after another even if every page takes the
        fetcher's worst case. Counted after the restore, which may have
        used some of the budget, so no link is started only to be cut off
        (each start counts as one of its attempts)."""
        # To the nearest round: the worst case is rare, and the time a
        # restore takes should not cost a whole round.
        rounds = max(1, round((self.deadline - self.clock()) / self.link_seconds))
        return choose(
            candidates,
            most=self.concurrency * rounds,
            most_per_origin=min(self.per_origin, self.concurrency) * rounds,
        )

    def process_all(self, jobs: list[LinkJob]) -> dict[str, LinkOutcome]:
        """Process the jobs, ``concurrency`` at a time and at most
        ``per_origin`` at a time against one origin, until the budget ends;
        whatever is left of it, every link gets one worst case's time."""
        outcomes: dict[str, LinkOutcome] = {}
        started = self.clock()
        deadline = max(self.deadline, started + self.link_seconds)
        waiting = OriginSlots(jobs, self.per_origin)
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        running: dict[Future, LinkJob] = {}

        def start_what_fits() -> None:
            while len(running) < self.concurrency:
                job = waiting.take()
                if job is None:
                    return
                running[pool.submit(_safe_process, self.process, job)] = job

        try:
            start_what_fits()
            while running:
                self.keep_lease()
                left = deadline - self.clock()
                if left <= 0:
                    break
                timeout = min(left, max(0.05, self.lease.remaining(self.clock) / 4))
                done, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
                for future in done:
                    job = running.pop(future)
                    waiting.finished(job)
                    outcomes[job.link_id] = future.result()
                start_what_fits()
        finally:
            # Links still running or not yet started when the budget ends get
            # no result: they stay pending, and the next cycle takes them again.
            pool.shutdown(wait=False, cancel_futures=True)
            self.timed("process", started)
        return outcomes

    def snapshot(self) -> None:
        """Write one snapshot at our version, unless one as new exists: a
        delta on the chain we restored from, or a full snapshot when that
        chain is done (snapshots.write_next).

        It decides from the snapshot objects it knows of (``listed``), not
        from a new listing: we have held the lease since they were listed,
        so only a processor that lost the lease before we took it can have
        written others, and what such a write can do is harmless (see
        docs/decisions.md, "Warm cycles"). A full snapshot lists again to
        prune, since pruning must see every base.

        A failed snapshot never fails the cycle: the log already holds every
        result, and a missing snapshot only makes the next restore replay a
        little more.
        """
        self.keep_lease()
        version = state.version(self.db)
        listed = self.listed
        newest = listed.newest_version()
        chain = self.chain
        # A stale processor must not make restores go back in time. At
        # the newest version itself, a chain we could not restore whole
        # (a damaged delta) is replaced by a full snapshot.
        healing = (
            version == newest
            and chain is not None
            and not chain.complete
            and not any(version_of_snapshot_key(b.key) == version for b in listed.bases)
        )
        if version < newest or (version == newest and not healing):
            self.at_chain_tip = (
                chain is not None and chain.complete and chain.tip_version == version
            )
            return
        self.checkpoint("snapshot")
        put_before = self.store.seconds("put")
        started = self.clock()
        try:
            written = snapshots.write_next(
                self.store, self.org, self.db, chain, self.digests, listed,
                with_digests=self.kept is not None,
            )
            if written is None:
                self.record.error = "snapshot not written (see the warning before)"
                return
            spent = self.clock() - started
            snapshot_put = self.store.seconds("put") - put_before
            self.record.add_time("snapshot_put", snapshot_put)
            self.record.add_time("serialize", max(0.0, spent - snapshot_put))
            self.record.snapshot_written = version
            self.record.snapshot_kind = written.kind
            self.record.chain_length = written.chain_length
            self.record.delta_bytes = written.delta_bytes
            self.record.pages_changed = written.pages_changed
            self.report.snapshot_key = written.key
            if written.object is None:
                # Another writer's object of that key was there: its pages
                # may be laid out otherwise than ours, so no later delta of
                # ours can sit on it.
                return
            self.chain = written.chain
            self.digests = written.digests or self.digests
            if written.kind == "delta":
                self.listed = listed.with_delta(written.chain.base_version, written.object)
            else:
                now_listed = snapshots.list_objects(self.store, self.org)
                older = max(0, len(now_listed.bases) - SNAPSHOTS_KEPT)
                deleted = snapshots.delete_snapshots(
                    self.store, now_listed.bases[:older], now_listed
                )
                self.listed = now_listed.without(deleted)
            self.at_chain_tip = written.digests is not None
        except StoreError as error:
            self.record.error = f"snapshot: {type(error).__name__}: {error}"

    def pack(self) -> None:
        """Write the log packs of ranges completed since the snapshot we restored.

        The cycle holds the lease, so one writer at a time does this work;
        a range completes at most once per eight commits, so most cycles
        skip it without a request. A failed pack never fails the cycle: the
        commits stay the truth, and the next cycle that completes a range
        writes whatever is missing.
        """
        version = state.version(self.db)
        since = self.started_from
        if version // packs.LEVELS[0] == since // packs.LEVELS[0]:
            return
        self.keep_lease()
        self.checkpoint("pack")
        started = self.clock()
        try:
            packs.write_packs(self.store, self.org, version, cache=self.log_cache)
        except StoreError as error:
            self.record.error = f"packs: {type(error).__name__}: {error}"
        self.timed("pack", started)

    def run(self) -> None:
        started = self.clock()
        kept = self.take_lease()
        self.timed("lease", started)
        if self.lease is None:
            self.report.outcome = "lease_held"
            return
        self.record.epoch = self.lease.epoch
        self.checkpoint("leased")
        if kept is not None:
            self.resume(kept)
        else:
            self.restore()

        chosen = state.links_needing_work(self.db, self.now())
        jobs = self.choose(chosen)
        if not jobs:
            # Client commits alone still earn a snapshot, so the next restore
            # and the sweep both find the snapshot at the head of the log.
            self.snapshot()
            self.pack()
            self.report.outcome = "nothing_to_do"
            return

        so_far = state.attempts_of(self.db, [job.link_id for job in jobs])
        attempt = {job.link_id: so_far.get(job.link_id, 0) + 1 for job in jobs}
        to_start = [job for job in jobs if attempt[job.link_id] <= MAX_ATTEMPTS]
        # A link still pending after its last attempt killed every cycle that
        # took it (a page that exhausts memory, say): it fails for good here
        # instead of taking down a cycle every five minutes forever.
        at = self.now()
        gave_up = {
            job.link_id: result_events(_given_up(job, attempt[job.link_id] - 1), at)
            for job in jobs
            if attempt[job.link_id] > MAX_ATTEMPTS
        }
        self.commit(
            started_events(((job, attempt[job.link_id]) for job in to_start), at)
            + [event for events in gave_up.values() for event in events]
        )
        self.report.links_started = tuple(job.link_id for job in to_start)
        self.record.links_started = len(to_start)
        self.checkpoint("started")

        results = dict(gave_up)
        processed: dict[str, list[dict]] = {}
        if to_start:
            outcomes = self.process_all(to_start)
            self.checkpoint("processed")
            at = self.now()
            processed = {
                link: link_events(outcomes[link], at)
                for link in self.report.links_started
                if link in outcomes
            }
            if processed:
                self.commit([event for events in processed.values() for event in events])
            results.update(processed)
        # The state ignores an outcome for a link that is no longer pending
        # (a reprocess request overtook us): such a link needs work again.
        status = state.statuses_of(self.db, results)
        self.report.links_done = tuple(
            link for link in results if status.get(link) == "completed"
        )
        self.report.links_failed = tuple(
            link for link in results if status.get(link) == "failed"
        )
        overtaken = len(results) - len(self.report.links_done) - len(self.report.links_failed)
        self.record.links_done = len(self.report.links_done)
        self.record.links_failed = len(self.report.links_failed)
        self.record.links_unfinished = len(to_start) - len(processed)
        self.checkpoint("committed")

        self.snapshot()
        self.pack()
        self.report.work_left = (
            len(chosen) > len(jobs) or len(processed) < len(to_start) or overtaken > 0
        )
        self.report.outcome = "work_left" if self.report.work_left else "done"


def run_cycle(
    store: ObjectStore,
    org: str,
    *,
    process: ProcessLink,
    holder: str,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = utc_now,
    budget_seconds: float = 60,
    concurrency: int = CONCURRENCY,
    per_origin: int = PER_ORIGIN,
    enqueue: Callable[[str], None] | None = None,
    lease_seconds: float = LEASE_SECONDS,
    link_seconds: float = LINK_SECONDS,
    checkpoint: Callable[[str], None] = lambda step: None,
    emit: Callable[[str], None] = print,
    kept: KeptStates | None = None,
) -> CycleReport:
    """Run one cycle for ``org`` and report what happened.

    ``process`` turns one LinkJob into a LinkOutcome, called from up to
    ``concurrency`` threads, at most ``per_origin`` at once for one origin;
    ``clock`` (monotonic seconds) judges the lease and the budget; ``now``
    stamps events and decides which retries are due; ``enqueue(org)`` is
    called when work is left. ``checkpoint(step)`` is called at "leased",
    "started", "processed", "committed" and "snapshot" (just before the
    snapshot put), for tests that stop a cycle at a chosen step. ``emit`` receives the cycle's one
    JSON log line. ``kept`` is the container's kept states
    (chalicelib.keptstate): the cycle starts from the org's kept state when
    it is still good, and a cycle that ends cleanly keeps its own there.

    Store failures and a lost lease end the cycle with outcome "stopped"
    (nothing half-written: every write is one commit or one immutable
    object); the report's record says why.
    """
    check_org(org)
    if min(concurrency, per_origin) < 1 or min(budget_seconds, lease_seconds, link_seconds) <= 0:
        raise ValueError("concurrency, per origin, budget, lease and link seconds must be positive")
    # The holder becomes the author id of our commits, which the log bounds.
    if not isinstance(holder, str) or not 1 <= len(holder) <= MAX_HOLDER_CHARS:
        raise ValueError(f"holder must be 1 to {MAX_HOLDER_CHARS} characters")
    cycle = _Cycle(store, org, process, holder, clock, now, budget_seconds, concurrency,
                   per_origin, lease_seconds, link_seconds, checkpoint, kept)
    try:
        cycle.run()
    except (StoreError, leases.LeaseLost, log.LogBusy, Fenced) as error:
        cycle.report.outcome = "stopped"
        cycle.record.error = f"{type(error).__name__}: {error}"
    except Exception as error:
        # Anything else is a bug or a damaged log: it still gets its log
        # line, and then goes up to the trigger, which retries the org.
        cycle.record.error = f"{type(error).__name__}: {error}"
        _finish(cycle, emit, None)
        raise
    return _finish(cycle, emit, enqueue)


def _finish(cycle: _Cycle, emit: Callable[[str], None], enqueue) -> CycleReport:
    """Release the lease, keep or drop the state, fill in the figures, emit
    the log line, enqueue."""
    report = cycle.report
    record = cycle.record
    hint = None
    if cycle.db is not None:
        record.version_after = state.version(cycle.db)
        report.next_due = state.next_due(cycle.db, cycle.now())
        hint = leases.Released(next_due=report.next_due)
    released = None
    if cycle.lease is not None:
        # Only a cycle that restored its state may tell the idle check when
        # the org is next due; without a state the marker carries no hint.
        started = cycle.clock()
        released = leases.release(cycle.store, cycle.lease, hint=hint)
        cycle.timed("lease", started)
    _keep_or_drop(cycle, released)
    record.outcome = report.outcome
    record.work_left = report.work_left
    record.requests = cycle.store.counts()
    record.bytes_read = cycle.store.bytes_read
    record.bytes_written = cycle.store.bytes_written
    # The report repeats the record's figures that callers read.
    report.epoch = record.epoch
    report.version_before = record.version_before
    report.version_after = record.version_after
    report.commits_written = record.commits_written
    report.requests = record.requests
    record.add_time("total", cycle.clock() - cycle.started_at)
    report.record = record
    process_cycles.remember(record)
    emit(log_line(record))
    if report.work_left and enqueue is not None:
        enqueue(cycle.org)
    return report


def _keep_or_drop(cycle: _Cycle, released: str | None) -> None:
    """Keep the state for the org's next cycle in this container when the
    cycle ended with no error (a stopped cycle always has one), released
    its lease and left the newest snapshot it knows at its state;
    otherwise close it (a database a failed cycle may have half-changed is
    never reused)."""
    clean = (
        cycle.kept is not None
        and released is not None
        and cycle.record.error is None
        and cycle.at_chain_tip
    )
    if clean:
        version = cycle.record.version_after
        head = KeptHead(
            version=version,
            etag=cycle.store.etag_seen(log_key(cycle.org, version)) if version else None,
            next_due=cycle.report.next_due,
            released_at=cycle.now(),
        )
        cycle.kept.keep(KeptState(
            org=cycle.org, db=cycle.db, chain=cycle.chain, digests=cycle.digests,
            listed=cycle.listed, released=released, epoch=cycle.lease.epoch, head=head,
            log_cache=cycle.log_cache,
        ))
        return
    if cycle.digests is not None:
        cycle.digests.close()
    if cycle.db is not None:
        cycle.db.close()
