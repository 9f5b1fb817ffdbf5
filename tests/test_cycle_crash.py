"""A processor process killed with SIGKILL at each step of a cycle, then run
again: no event lost, none applied twice, every link terminal."""

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from chalicelib import cycle, orgstate, snapshotparts, snapshots, state
from chalicelib.store import CountingStore, LocalStore
from chalicelib.state.apply import MAX_ATTEMPTS
from chalicelib.store.faulty import FaultyStore
from clocks import T0, FakeClock
from processing_org import (
    FakeProcessor,
    check_every_link_ended_once,
    processor_history,
    save_links,
)
from processes import kill_child_at
from statelog import all_commits

CHILD = Path(__file__).resolve().parent / "cycle_child.py"
LINKS = 6


def kill_at(store_dir: str, step: str) -> None:
    """Start a processor process, wait until it reaches ``step``, SIGKILL it."""
    kill_child_at([str(CHILD), store_dir, step], step)


def settled(store) -> bool:
    """Every link terminal and a snapshot at the head of the log."""
    db = orgstate.load(store, "acme")
    return snapshots.restore_latest(store, "acme").version == state.version(db) and not (
        db.execute(
            "SELECT 1 FROM links LEFT JOIN link_status ON link_id = links.id "
            "WHERE status IS NULL OR status = 'pending'"
        ).fetchall()
    )


def run_until_idle(store, clean_store, clock, now) -> list[str]:
    """Cycles as fresh processors would run them, until all is settled."""
    outcomes = []
    for _ in range(60):
        report = cycle.run_cycle(store, "acme", process=FakeProcessor(), holder="heir",
                                 clock=clock, now=lambda: now, lease_seconds=30,
                                 emit=lambda line: None)
        outcomes.append(report.outcome)
        if report.outcome == "lease_held":
            # The dead process's lease: wait it out on our own clock.
            clock.advance(30)
        elif report.outcome == "nothing_to_do":
            if settled(clean_store):
                return outcomes
            # A snapshot put failed: a later cycle writes it.
            pass
    raise AssertionError(f"never idle: {outcomes}")


@pytest.mark.parametrize("fail_rate", [0.0, 0.1])
@pytest.mark.parametrize("step", ["delta_put", "compaction_put", "part_put"])
def test_a_processor_killed_writing_a_delta_or_compacting_loses_nothing(
    tmp_path, monkeypatch, step, fail_rate
):
    # Deltas of these tiny orgs are a large part of their base: allow any size.
    monkeypatch.setattr(snapshots, "MAX_CHAIN_FRACTION", 1000.0)
    # Full snapshots in parts of two pages, as the child writes them.
    monkeypatch.setattr(snapshotparts, "PART_SIZE", 2 * 4096)
    store_dir = str(tmp_path / "store")
    store = CountingStore(LocalStore(store_dir))
    # A base (and, to compact, a delta on it) from cycles that finished.
    rounds = 1 if step == "delta_put" else 2
    for n in range(rounds):
        save_links(store, "acme", range(n * LINKS, (n + 1) * LINKS))
        run_until_idle(store, store, FakeClock(), T0)
    chain_before = snapshots.restore_latest(store, "acme").chain
    assert len(chain_before.deltas) == rounds - 1
    save_links(store, "acme", range(rounds * LINKS, (rounds + 1) * LINKS))

    kill_at(store_dir, step)
    if step == "part_put":
        # Parts landed, the snapshot object naming them did not: a restore
        # does not see them, and the heir's restore falls back to the base.
        listed = snapshots.list_objects(store, "acme")
        assert listed.orphans and all(".parts/" in info.key for info in listed.orphans)
        fallen_back = snapshots.restore_latest(store, "acme")
        assert (fallen_back.chain, fallen_back.skipped) == (chain_before, [])
    heirs_store = FaultyStore(store, fail_rate=fail_rate, seed=7)
    run_until_idle(heirs_store, store, FakeClock(), T0)

    db = check_every_link_ended_once(store, "acme", (rounds + 1) * LINKS)
    restored = snapshots.restore_latest(store, "acme")
    assert restored.version == state.version(db)
    assert restored.skipped == []


@pytest.mark.parametrize("fail_rate", [0.0, 0.1])
@pytest.mark.parametrize(
    "step", ["leased", "started", "processing", "processed", "committed", "snapshot",
             "snapshot_put"]
)
def test_a_processor_killed_at_each_step_loses_nothing_and_doubles_nothing(
    tmp_path, step, fail_rate
):
    store_dir = str(tmp_path / "store")
    store = CountingStore(LocalStore(store_dir))
    save_links(store, "acme", range(LINKS))

    kill_at(store_dir, step)
    before_rerun = all_commits(store, "acme")

    # The heirs meet a store failing fail_rate of their requests.
    heirs_store = FaultyStore(store, fail_rate=fail_rate, seed=7)
    outcomes = run_until_idle(heirs_store, store, FakeClock(), T0)
    assert "lease_held" in outcomes

    commits = all_commits(store, "acme")
    assert commits[: len(before_rerun)] == before_rerun, "nothing written was lost"
    ids = Counter(e["id"] for c in commits for e in c["events"])
    assert [i for i, n in ids.items() if n > 1] == []

    db = check_every_link_ended_once(store, "acme", LINKS)
    # Each start a stopped or killed cycle left pending counts as an attempt:
    # a link fails for good only after MAX_ATTEMPTS of them.
    history = processor_history(commits)
    gave_up = {link for link, code in db.execute(
        "SELECT link_id, error_code FROM link_status WHERE status = 'failed'")
        if code == "too_many_attempts" and history[link].attempts_started == list(range(1, MAX_ATTEMPTS + 1))}
    statuses = dict(db.execute("SELECT status, count(*) FROM link_status GROUP BY status"))
    assert statuses == {key: n for key, n in
                        [("completed", LINKS - len(gave_up)), ("failed", len(gave_up))] if n}
    if fail_rate == 0:
        assert not gave_up
    assert snapshots.restore_latest(store, "acme").version == state.version(db)
