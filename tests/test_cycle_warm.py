"""Warm cycles: a container keeps the org's state between its cycles
(chalicelib.keptstate) and reuses it only while nobody else held the lease.

Every test ends by comparing the state, and a restore from what the cycles
stored, with a full replay of the log.
"""

import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import cycle, keptstate, packs, snapshots, state, triggers
from chalicelib import lease as leases
from chalicelib.keys import delta_key, log_key
from chalicelib.store import CountingStore, LocalStore
from chalicelib.store.faulty import Fault, FaultyStore
from clocks import T0, FakeClock
from processing_org import (
    FakeProcessor,
    check_every_link_ended_once,
    client_commit,
    link_id,
    save_links,
)
from processes import kill_child_at
from statelog import dump, replay

CHILD = Path(__file__).resolve().parent / "cycle_child.py"
LINKS = 20


@pytest.fixture(autouse=True)
def deltas_of_any_size(monkeypatch):
    # A tiny org's delta is a large part of its base: allow any size, so
    # these cycles write deltas as a large org's do.
    monkeypatch.setattr(snapshots, "MAX_CHAIN_FRACTION", 1000.0)


def run(store, kept, *, holder="proc-a", clock=None, **kwargs) -> cycle.CycleReport:
    lines = []
    report = cycle.run_cycle(
        store, "acme", process=FakeProcessor(), holder=holder, clock=clock or FakeClock(),
        now=lambda: T0, emit=lines.append, kept=kept, **kwargs,
    )
    assert len(lines) == 1
    return report


def save_round(store, n: int) -> None:
    """LINKS new links in one client commit, ids from n * LINKS."""
    save_links(store, "acme", range(n * LINKS, (n + 1) * LINKS))


def check_state(store) -> None:
    """The newest snapshot plus the log, and a restore alone, equal a replay."""
    replayed = dump(replay(store, "acme"))
    restored = snapshots.restore_latest(store, "acme")
    assert restored.version == state.version(replay(store, "acme"))
    assert dump(restored.db) == replayed


def spent(store, before: dict) -> dict:
    return {kind: count - before[kind] for kind, count in store.counts().items() if count - before[kind]}


def tags_then_a_first_cycle(store) -> None:
    """Six client commits (a cycle snapshots them at 6), then 20 links a
    cycle ends at version 9: the cycles measured after it stay inside one
    8-commit range and write no pack."""
    for n in range(6):
        client_commit(store, "acme", "v1.TagCreated", {"id": f"tag-{n}", "name": f"t{n}"})
    assert run(store, keptstate.KeptStates()).outcome == "nothing_to_do"
    save_round(store, 0)
    first = run(store, keptstate.KeptStates())
    assert (first.outcome, first.version_after) == ("done", 9)


@pytest.mark.parametrize("any_store", ["local", "server"], indirect=True)
def test_a_warm_20_link_cycle_costs_7_requests_and_a_cold_one_11(any_store):
    store = any_store
    tags_then_a_first_cycle(store)

    save_round(store, 1)
    kept = keptstate.KeptStates()
    before = store.counts()
    cold = run(store, kept)
    cold_spent = spent(store, before)
    save_round(store, 2)
    before = store.counts()
    warm = run(store, kept)
    warm_spent = spent(store, before)

    assert (cold.outcome, warm.outcome) == ("done", "done")
    assert (cold.record.warm, warm.record.warm) == (False, True)
    assert (cold.record.snapshot_kind, warm.record.snapshot_kind) == ("delta", "delta")
    # get lease, put lease; list snapshots, get base, get its delta; list
    # log, get the client's commit; put started, put results, put delta;
    # put lease.
    assert cold_spent == {"get": 4, "put": 5, "list": 2}
    # put lease; list log, get the client's commit; put started, put
    # results, put delta; put lease.
    assert warm_spent == {"get": 1, "put": 5, "list": 1}
    assert warm.version_after == 15
    check_state(store)


@pytest.mark.parametrize("any_store", ["local", "server"], indirect=True)
def test_a_warm_cycle_whose_lease_put_misses_reads_the_lease_once(any_store):
    store = any_store
    tags_then_a_first_cycle(store)
    kept = keptstate.KeptStates()
    save_round(store, 1)
    assert run(store, kept).version_after == 12
    # Someone else looks: takes the lease and releases it, writing nothing.
    clock = FakeClock()
    leases.release(store, leases.acquire(store, "acme", "theirs", duration=30, clock=clock))

    save_round(store, 2)
    before = store.counts()
    missed = run(store, kept)
    assert (missed.outcome, missed.record.warm, missed.version_after) == ("done", False, 15)
    # put lease (412); get and put lease; list snapshots, get base, get
    # the deltas at 9 and 12; list log, get the client's commit; put
    # started, put results, put delta; put lease. A cold cycle's requests
    # plus the one put that missed (the 412 is certain: no read back).
    assert spent(store, before) == {"get": 5, "put": 6, "list": 2}
    check_state(store)


@pytest.mark.parametrize("any_store", ["local", "server"], indirect=True)
@pytest.mark.parametrize("first_cycle_here", [True, False])
def test_a_warm_cycle_that_completes_a_range_packs_what_its_container_holds(
    any_store, first_cycle_here
):
    store = any_store
    ours = keptstate.KeptStates()
    save_round(store, 0)
    # Versions 2 and 3: the first cycle, ours or another container's.
    assert run(store, ours if first_cycle_here else keptstate.KeptStates()).version_after == 3
    save_round(store, 1)
    assert run(store, ours).version_after == 6
    save_round(store, 2)
    before = store.counts()
    report = run(store, ours)
    assert (report.outcome, report.record.warm, report.version_after) == ("done", True, 9)
    # put lease; list log, get the client's commit; put started, put
    # results, put delta; list packs, put the pack of 1..8; put lease.
    # Commits 1 to 8 were read or written by this container's cycles, save
    # 1 to 3 when another container ran the first cycle: those are read.
    lacking = 0 if first_cycle_here else 3
    assert spent(store, before) == {"get": 1 + lacking, "list": 2, "put": 6}
    assert packs.list_packs(store, "acme") == [packs.Pack(1, 8)]
    packed = packs.read_bodies(store, "acme", 1, 8, [packs.Pack(1, 8)])
    assert packed == [store.get(log_key("acme", v)).body for v in range(1, 9)]
    check_state(store)


def test_warm_cycles_write_a_chain_a_restore_turns_into_the_replayed_state(local_store):
    kept = keptstate.KeptStates()
    kinds = []
    for n in range(snapshots.MAX_CHAIN + 3):
        save_round(local_store, n)
        client_commit(local_store, "acme", "v1.LinkNoteUpdated",
                      {"id": link_id(n), "note": f"read {n}"})
        report = run(local_store, kept)
        assert report.outcome == "done"
        assert report.record.warm == (n > 0)
        kinds.append(report.record.snapshot_kind)
        # Restoring through the chain the warm cycles wrote gives their state.
        check_state(local_store)
    # A replay, then deltas up to the bound, then a compaction, all warm.
    assert kinds[0] == "full"
    assert kinds[1:snapshots.MAX_CHAIN + 1] == ["delta"] * snapshots.MAX_CHAIN
    assert kinds[snapshots.MAX_CHAIN + 1] == "full"
    check_every_link_ended_once(local_store, "acme", LINKS * (snapshots.MAX_CHAIN + 3))


@pytest.mark.parametrize("any_store", ["local", "server"], indirect=True)
def test_a_cycle_by_another_processor_between_two_of_ours_stops_the_reuse(any_store):
    ours, theirs = keptstate.KeptStates(), keptstate.KeptStates()
    clock = FakeClock()
    for n, (kept, holder) in enumerate([(ours, "ours"), (ours, "ours"), (theirs, "theirs"),
                                        (ours, "ours"), (ours, "ours")]):
        save_round(any_store, n)
        report = run(any_store, kept, holder=holder, clock=clock)
        assert report.outcome == "done"
        # Ours resumes only after a cycle of its own: the third of its cycles
        # finds the lease written by theirs, drops the kept state, restores.
        assert report.record.warm == (n in (1, 4)), n
    assert ours.orgs() == ["acme"]
    check_every_link_ended_once(any_store, "acme", 5 * LINKS)
    check_state(any_store)


class PushBeforeFirstCommit:
    """A store on which a client pushes just before the cycle's first commit
    put: after the cycle caught up with the log, before it commits."""

    def __init__(self, inner):
        self.inner = inner
        self.pushed = False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, body, **kwargs):
        if not self.pushed and key.startswith("orgs/acme/log/"):
            self.pushed = True
            save_links(self.inner, "acme", [2 * LINKS])
        return self.inner.put(key, body, **kwargs)


def test_a_client_push_between_our_catch_up_and_our_commit_is_read_and_applied(local_store):
    kept = keptstate.KeptStates()
    save_round(local_store, 0)
    run(local_store, kept)
    save_round(local_store, 1)

    store = PushBeforeFirstCommit(local_store)
    report = run(store, kept)
    assert store.pushed
    assert (report.outcome, report.record.warm) == ("done", True)
    # The push took the version our first commit tried: one lost put more
    # than the usual lease, started, results, delta and release, and the
    # due index entry for the pushed link; the push is read back to be
    # applied with ours.
    assert report.requests["put"] == 7
    assert report.requests["get"] == 2
    assert report.version_after == state.version(replay(local_store, "acme"))
    # The pushed link is in the kept state: the next cycle, warm, processes it.
    after = run(local_store, kept)
    assert (after.record.warm, after.links_done) == (True, (link_id(2 * LINKS),))
    check_every_link_ended_once(local_store, "acme", 2 * LINKS + 1)
    check_state(local_store)


def only_delta_puts_fail(kind, key, n):
    return Fault.TRANSIENT if kind == "put" and key.endswith(".delta") else None


def test_a_cycle_whose_snapshot_put_fails_keeps_nothing(local_store):
    kept = keptstate.KeptStates()
    save_round(local_store, 0)
    run(local_store, kept)
    save_round(local_store, 1)

    report = run(FaultyStore(local_store, plan=only_delta_puts_fail), kept)
    assert report.outcome == "done"
    assert report.record.error is not None
    assert kept.orgs() == []
    save_round(local_store, 2)
    again = run(local_store, kept)
    assert (again.outcome, again.record.warm) == ("done", False)
    check_every_link_ended_once(local_store, "acme", 3 * LINKS)
    check_state(local_store)


def test_a_cycle_with_any_error_keeps_nothing(local_store):
    # A pack that cannot be written leaves the state sound, but a cycle
    # that met any error is not trusted to have left it so.
    kept = keptstate.KeptStates()
    store = FaultyStore(local_store, plan=lambda kind, key, n: (
        Fault.TRANSIENT if kind == "put" and "/packs/" in key else None))
    errors = []
    for n in range(4):
        save_round(local_store, n)
        report = run(store, kept)
        assert report.outcome == "done"
        errors.append(report.record.error)
        assert kept.orgs() == ([] if report.record.error else ["acme"])
    assert any(error and "packs" in error for error in errors)
    check_every_link_ended_once(local_store, "acme", 4 * LINKS)
    check_state(local_store)


def test_another_writers_delta_at_our_key_is_never_built_on(local_store):
    # A processor that lost the lease before ours can still put a delta of
    # the same version: its pages need not be laid out as ours, so our
    # next delta must not name it as parent.
    kept = keptstate.KeptStates()
    save_round(local_store, 0)
    run(local_store, kept)
    save_round(local_store, 1)
    base = snapshots.restore_latest(local_store, "acme").chain.base_version

    def theirs_first(step):
        if step == "snapshot":
            head = state.version(replay(local_store, "acme"))
            local_store.put(delta_key("acme", state.SCHEMA_HASH, base, head), b"theirs")

    report = run(local_store, kept, checkpoint=theirs_first)
    assert report.outcome == "done"
    assert kept.orgs() == []
    save_round(local_store, 2)
    assert run(local_store, kept).record.warm is False
    check_every_link_ended_once(local_store, "acme", 3 * LINKS)
    check_state(local_store)


class Died(Exception):
    """The cycle's process dying, as a checkpoint plays it."""


@pytest.mark.parametrize("step", ["leased", "started", "processed", "committed", "snapshot"])
def test_a_cycle_that_dies_midway_leaves_no_state_to_reuse(local_store, step):
    kept = keptstate.KeptStates()
    save_round(local_store, 0)
    run(local_store, kept)
    save_round(local_store, 1)

    def die(at):
        if at == step:
            raise Died

    clock = FakeClock()
    with pytest.raises(Died):
        run(local_store, kept, clock=clock, checkpoint=die)
    assert kept.orgs() == []
    clock.advance(cycle.LEASE_SECONDS)  # the dead cycle's lease
    report = run(local_store, kept, clock=clock)
    assert report.record.warm is False
    check_every_link_ended_once(local_store, "acme", 2 * LINKS)
    check_state(local_store)


@pytest.mark.parametrize("step", ["started", "delta_put"])
def test_a_warm_cycle_killed_midway_then_a_cycle_in_a_new_process(tmp_path, step):
    store_dir = str(tmp_path / "store")
    store = CountingStore(LocalStore(store_dir))
    save_round(store, 0)
    # The child runs a cycle to the end, saves 20 more links, and is killed
    # at ``step`` of its next cycle, which resumed the state it kept.
    kill_child_at([str(CHILD), store_dir, step, "warm"], step)
    clock = FakeClock()
    kept = keptstate.KeptStates()
    outcomes = []
    for _ in range(10):
        report = run(store, kept, holder="heir", clock=clock, lease_seconds=30)
        outcomes.append(report.outcome)
        if report.outcome == "lease_held":
            clock.advance(30)
        elif report.outcome == "nothing_to_do":
            break
    assert outcomes[-1] == "nothing_to_do", outcomes
    check_every_link_ended_once(store, "acme", 2 * LINKS)
    check_state(store)


def test_a_container_keeps_the_last_orgs_and_closes_the_rest(local_store):
    kept = keptstate.KeptStates(most=1)
    for org in ("acme", "beta"):
        save_links(local_store, org, range(3))
        cycle.run_cycle(local_store, org, process=FakeProcessor(), holder="p",
                        clock=FakeClock(), now=lambda: T0, emit=lambda line: None, kept=kept)
    assert kept.orgs() == ["beta"]
    save_links(local_store, "acme", [7])
    report = cycle.run_cycle(local_store, "acme", process=FakeProcessor(), holder="p",
                             clock=FakeClock(), now=lambda: T0, emit=lambda line: None,
                             kept=kept)
    assert report.record.warm is False
    assert kept.orgs() == ["acme"]
    with pytest.raises(ValueError):
        keptstate.KeptStates(most=0)


ACTIONS = st.one_of(
    st.tuples(st.just("push"), st.integers(1, 4)),
    st.tuples(st.just("cycle"), st.integers(0, 2)),
    st.tuples(st.just("faulty cycle"), st.integers(0, 2), st.integers(0, 10_000)),
    st.tuples(st.just("new container"), st.integers(0, 2)),
)


@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ACTIONS, min_size=1, max_size=10))
def test_any_interleaving_of_containers_pushes_and_faults_ends_in_the_replayed_state(actions):
    # Three containers, each with its kept states, take turns with pushes,
    # cycles through a store failing a fifth of its requests, and restarts
    # (a new container loses what the old one kept). Whatever the order,
    # what the cycles leave in the store restores to the replayed state.
    with tempfile.TemporaryDirectory() as directory:
        store = CountingStore(LocalStore(directory))
        containers = [keptstate.KeptStates() for _ in range(3)]
        clock = FakeClock()
        saved = 0
        try:
            for action in actions:
                if action[0] == "push":
                    save_links(store, "acme", range(saved, saved + action[1]))
                    saved += action[1]
                elif action[0] == "new container":
                    containers[action[1]].clear()
                else:
                    faulty = action[0] == "faulty cycle"
                    on = FaultyStore(store, fail_rate=0.2, seed=action[2]) if faulty else store
                    report = run(on, containers[action[1]], clock=clock, lease_seconds=30)
                    if report.outcome in ("lease_held", "stopped"):
                        clock.advance(30)  # a lease a failed release left
            for _ in range(20):
                report = run(store, containers[0], clock=clock, lease_seconds=30)
                if report.outcome == "nothing_to_do":
                    break
                clock.advance(30)
            assert report.outcome == "nothing_to_do"
            check_state(store)
            check_every_link_ended_once(store, "acme", saved)
        finally:
            for kept in containers:
                kept.clear()


@pytest.mark.parametrize("any_store", ["local", "server"], indirect=True)
def test_a_wake_up_for_nothing_where_the_state_is_kept_costs_one_list(any_store):
    # The kept head's etag comes from the cycle's put, the check's from a
    # listing: on S3 as on the local store they are the same.
    store = CountingStore(any_store)
    kept = keptstate.KeptStates()
    wake = triggers.cycle_runner(store, process=FakeProcessor(), enqueue=None, kept=kept,
                                 now=lambda: T0)
    save_round(store, 0)
    assert wake("acme").outcome == "done"

    before = store.counts()
    assert wake("acme").outcome == "nothing_to_do"
    assert spent(store, before) == {"list": 1}
    # Where no state is kept: the newest snapshot, the log after it, the lease.
    elsewhere = triggers.cycle_runner(store, process=FakeProcessor(), enqueue=None,
                                      kept=keptstate.KeptStates(), now=lambda: T0)
    before = store.counts()
    assert elsewhere("acme").outcome == "nothing_to_do"
    assert spent(store, before) == {"list": 2, "get": 1}

    # Another container's push: the log is ahead of the kept state.
    save_round(store, 1)
    assert wake("acme").outcome == "done"
    check_state(store)
    check_every_link_ended_once(store, "acme", 2 * LINKS)


def test_the_kept_idle_check_still_wakes_for_work_left(tmp_path):
    # A cycle cut short by its budget keeps its state with links pending:
    # the one-list check must not call that org idle.
    store = LocalStore(str(tmp_path))
    kept = keptstate.KeptStates()
    save_round(store, 0)
    report = run(store, kept, concurrency=1, per_origin=1, budget_seconds=0.001)
    assert report.work_left and kept.orgs() == ["acme"]
    found = triggers.kept_readiness(store, "acme", kept.head("acme"))
    assert found is not None and not found.idle_at(T0)


def test_a_state_kept_from_another_log_never_calls_this_one_idle(tmp_path):
    # The cause of the Lambda sweep test's hang: app.py's one KeptStates
    # outlives a store (a test's bucket; a bucket restored from a backup).
    # It kept acme at some version with nothing due; the log this store has
    # for acme ends at that very version, with links never processed. A
    # check that trusted "nothing after the kept version" called it idle on
    # every wake-up, the sweep's too, and the links waited forever.
    first = LocalStore(str(tmp_path / "first"))
    kept = keptstate.KeptStates()
    save_round(first, 0)
    assert run(first, kept).outcome == "done"
    version = kept.head("acme").version

    second = CountingStore(LocalStore(str(tmp_path / "second")))
    save_round(second, 0)
    for n in range(version - 1):
        client_commit(second, "acme", "v1.TagCreated", {"id": f"tag-{n}", "name": f"t{n}"})
    assert triggers.readiness(second, "acme").log_ahead
    wake = triggers.cycle_runner(second, process=FakeProcessor(), enqueue=None, kept=kept,
                                 now=lambda: T0)
    assert wake("acme").outcome == "done"
    check_every_link_ended_once(second, "acme", LINKS)
    check_state(second)


def test_after_one_lease_duration_a_wake_up_reads_the_lease_again(tmp_path):
    # Another container's cycle took the lease after ours and died before
    # writing: the log shows nothing, so within a lease duration the kept
    # state answers "idle"; after it, the full check sees a lease nobody
    # released, and a cycle takes it over and releases it for the sweep.
    store = CountingStore(LocalStore(str(tmp_path)))
    kept = keptstate.KeptStates()
    at = [T0]
    wake = triggers.cycle_runner(store, process=FakeProcessor(), enqueue=None, kept=kept,
                                 now=lambda: at[0], lease_seconds=0.5)
    save_round(store, 0)
    assert wake("acme").outcome == "done"
    dead = leases.acquire(store, "acme", "dead", duration=0.5, clock=time.monotonic)
    assert dead is not None
    assert triggers.readiness(store, "acme") == triggers.Readiness(log_ahead=False, known=False)

    before = dict(store.counts())
    assert wake("acme").outcome == "nothing_to_do"
    assert spent(store, before) == {"list": 1}

    at[0] = T0 + timedelta(seconds=1)
    outcomes = []
    while (outcome := wake("acme").outcome) == "lease_held":
        outcomes.append(outcome)
        time.sleep(0.1)  # the dead holder's lease runs out on our clock
    assert outcomes and outcome == "nothing_to_do"
    assert triggers.readiness(store, "acme").idle_at(at[0])
