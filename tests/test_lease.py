"""The processor lease: one holder at a time, epochs that only grow, expiry
judged on our own clock."""

import json
import threading
from datetime import datetime, timezone

import pytest

from chalicelib import lease
from chalicelib.keys import InvalidOrg
from chalicelib.store.faulty import Fault, FaultyStore
from clocks import FakeClock


def failing_puts(fault, count=1):
    """A plan failing the first ``count`` puts with ``fault``."""
    return lambda kind, key, n: fault if kind == "put" and n <= count else None


def lease_doc(store, org="acme"):
    return json.loads(store.get("orgs/%s/lease.json" % org).body)


def test_first_acquire_creates_the_lease_at_epoch_1(any_store):
    clock = FakeClock()
    got = lease.acquire(any_store, "acme", "proc-a", duration=30, clock=clock)
    assert (got.holder, got.epoch, got.duration) == ("proc-a", 1, 30)
    assert got.remaining(clock) == 30
    doc = lease_doc(any_store)
    assert (doc["holder"], doc["epoch"], doc["released"]) == ("proc-a", 1, False)


def test_a_held_lease_is_taken_over_only_after_its_duration_on_our_clock(any_store):
    clock = FakeClock()
    a = lease.acquire(any_store, "acme", "proc-a", duration=30, clock=clock)
    assert lease.acquire(any_store, "acme", "proc-b", duration=30, clock=clock) is None
    clock.advance(29)
    assert lease.acquire(any_store, "acme", "proc-b", duration=30, clock=clock) is None
    clock.advance(1)
    b = lease.acquire(any_store, "acme", "proc-b", duration=30, clock=clock)
    assert (b.holder, b.epoch) == ("proc-b", 2)
    assert lease_doc(any_store)["holder"] == "proc-b"
    with pytest.raises(lease.LeaseLost):
        lease.renew(any_store, a, clock)


def test_renewing_restarts_the_wait_of_others(any_store):
    clock = FakeClock()
    a = lease.acquire(any_store, "acme", "proc-a", duration=30, clock=clock)
    assert lease.acquire(any_store, "acme", "proc-b", duration=30, clock=clock) is None
    clock.advance(20)
    a = lease.renew(any_store, a, clock)
    assert a.epoch == 1
    clock.advance(15)
    # proc-b first saw the renewed lease just now, 35 s after the first one.
    assert lease.acquire(any_store, "acme", "proc-b", duration=30, clock=clock) is None
    clock.advance(29)
    assert lease.acquire(any_store, "acme", "proc-b", duration=30, clock=clock) is None
    clock.advance(1)
    assert lease.acquire(any_store, "acme", "proc-b", duration=30, clock=clock).epoch == 2


def test_the_time_written_in_the_lease_is_not_trusted(any_store):
    clock = FakeClock()
    any_store.put(
        "orgs/acme/lease.json",
        json.dumps(
            {"holder": "skewed", "epoch": 7, "duration_seconds": 30, "released": False,
             "nonce": "n", "written_at": "1970-01-01T00:00:00+00:00"}
        ).encode(),
        if_absent=True,
    )
    assert lease.acquire(any_store, "acme", "proc-b", duration=30, clock=clock) is None
    clock.advance(30)
    assert lease.acquire(any_store, "acme", "proc-b", duration=30, clock=clock).epoch == 8


def test_release_lets_the_next_holder_in_at_once_with_a_higher_epoch(any_store):
    clock = FakeClock()
    a = lease.acquire(any_store, "acme", "proc-a", duration=30, clock=clock)
    assert lease.release(any_store, a) is not None
    assert lease_doc(any_store)["released"] is True
    b = lease.acquire(any_store, "acme", "proc-b", duration=30, clock=clock)
    assert (b.holder, b.epoch) == ("proc-b", 2)


def test_a_stale_holder_cannot_release_or_renew_the_new_lease(any_store):
    clock = FakeClock()
    a = lease.acquire(any_store, "acme", "proc-a", duration=30, clock=clock)
    assert lease.acquire(any_store, "acme", "proc-b", duration=30, clock=clock) is None
    clock.advance(31)
    b = lease.acquire(any_store, "acme", "proc-b", duration=30, clock=clock)
    assert lease.release(any_store, a) is None
    with pytest.raises(lease.LeaseLost):
        lease.renew(any_store, a, clock)
    doc = lease_doc(any_store)
    assert (doc["holder"], doc["epoch"], doc["released"]) == ("proc-b", 2, False)
    assert lease.renew(any_store, b, clock).epoch == 2


def test_renew_can_raise_the_epoch(any_store):
    clock = FakeClock()
    a = lease.acquire(any_store, "acme", "proc-a", duration=30, clock=clock)
    a = lease.renew(any_store, a, clock, epoch=5)
    assert a.epoch == 5
    assert lease_doc(any_store)["epoch"] == 5
    assert lease.renew(any_store, a, clock, epoch=3).epoch == 5


class SlowResponse:
    """A store whose writes land at once but answer ``seconds`` later on ``clock``."""

    def __init__(self, inner, clock: FakeClock, seconds: float):
        self.inner = inner
        self.clock = clock
        self.seconds = seconds

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, body, **conditions):
        etag = self.inner.put(key, body, **conditions)
        self.clock.advance(self.seconds)
        return etag


@pytest.mark.parametrize("write", ["first acquire", "takeover", "renewal"])
def test_a_slow_write_response_is_counted_against_the_lease(local_store, write):
    # A rival may see our write the moment it lands, before our slow
    # response comes back, and its wait starts then: the holder must count
    # its lease from before it sent the write.
    clock = FakeClock()
    if write == "takeover":
        lease.release(local_store, lease.acquire(local_store, "acme", "old", duration=30,
                                                 clock=clock))
    held = None
    if write == "renewal":
        held = lease.acquire(local_store, "acme", "proc-a", duration=30, clock=clock)
    # The rival's clock stays at the moment our write lands.
    rival_clock = FakeClock(clock.now)

    store = SlowResponse(local_store, clock, seconds=20)
    if held is None:
        held = lease.acquire(store, "acme", "proc-a", duration=30, clock=clock)
    else:
        held = lease.renew(store, held, clock)
    assert lease.acquire(local_store, "acme", "rival", duration=30, clock=rival_clock) is None

    assert held.remaining(clock) <= 10
    rival_clock.advance(30)
    clock.advance(10)
    assert lease.acquire(local_store, "acme", "rival", duration=30, clock=rival_clock)
    assert held.remaining(clock) <= 0, "the rival took over a lease we still thought ours"


def race_to_acquire(store, clock, racers=8) -> list[lease.Lease]:
    """``racers`` threads, released together, each trying to take the
    lease once; returns the leases they got."""
    barrier = threading.Barrier(racers)
    won = []

    def race(n):
        barrier.wait()
        got = lease.acquire(store, "acme", f"proc-{n}", duration=30, clock=clock)
        if got is not None:
            won.append(got)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won


def test_threads_racing_for_a_free_lease_leave_one_winner(any_store):
    won = race_to_acquire(any_store, FakeClock())
    assert len(won) == 1
    assert lease_doc(any_store)["holder"] == won[0].holder


def test_threads_racing_to_take_over_an_expired_lease_leave_one_winner(local_store):
    clock = FakeClock()
    lease.acquire(local_store, "acme", "dead", duration=30, clock=clock)
    assert lease.acquire(local_store, "acme", "watcher", duration=30, clock=clock) is None
    clock.advance(30)
    assert [w.epoch for w in race_to_acquire(local_store, clock)] == [2]


@pytest.mark.parametrize("fault", [Fault.LOST_RESPONSE, Fault.CONFLICT])
def test_an_acquire_whose_outcome_is_unknown_is_resolved_by_reading(local_store, fault):
    store = FaultyStore(local_store, plan=failing_puts(fault))
    got = lease.acquire(store, "acme", "proc-a", duration=30, clock=FakeClock())
    assert got is not None and got.epoch == 1
    assert got.etag == local_store.get("orgs/acme/lease.json").etag
    assert lease_doc(local_store)["nonce"] == got.nonce


def test_an_acquire_that_failed_before_landing_is_tried_again(local_store):
    store = FaultyStore(local_store, plan=failing_puts(Fault.TRANSIENT))
    got = lease.acquire(store, "acme", "proc-a", duration=30, clock=FakeClock())
    assert got.epoch == 1
    assert local_store.counts()["put"] == 1, "the failed try never reached the store"
    assert lease_doc(local_store)["nonce"] == got.nonce


def test_a_real_412_is_not_mistaken_for_our_own_write(local_store):
    clock = FakeClock()
    lease.release(local_store, lease.acquire(local_store, "acme", "proc-a", duration=30,
                                             clock=clock))

    def proc_c_gets_in_first(kind, key, n):
        if kind == "put" and n == 1:
            assert lease.acquire(local_store, "acme", "proc-c", duration=30, clock=clock)
        return None

    store = FaultyStore(local_store, plan=proc_c_gets_in_first)
    assert lease.acquire(store, "acme", "proc-b", duration=30, clock=clock) is None
    doc = lease_doc(local_store)
    assert (doc["holder"], doc["epoch"]) == ("proc-c", 2)


def test_a_renewal_whose_response_was_lost_is_resolved_by_reading(local_store):
    clock = FakeClock()
    a = lease.acquire(local_store, "acme", "proc-a", duration=30, clock=clock)
    store = FaultyStore(local_store, plan=failing_puts(Fault.LOST_RESPONSE))
    renewed = lease.renew(store, a, clock)
    assert renewed.etag == local_store.get("orgs/acme/lease.json").etag
    assert renewed.etag != a.etag


def test_a_renewal_that_keeps_failing_loses_the_lease(local_store):
    clock = FakeClock()
    a = lease.acquire(local_store, "acme", "proc-a", duration=30, clock=clock)
    store = FaultyStore(local_store, plan=failing_puts(Fault.TRANSIENT, lease.WRITE_ATTEMPTS))
    with pytest.raises(lease.LeaseLost):
        lease.renew(store, a, clock)
    assert lease_doc(local_store)["nonce"] == a.nonce


def test_a_release_whose_response_was_lost_still_frees_the_lease(local_store):
    clock = FakeClock()
    a = lease.acquire(local_store, "acme", "proc-a", duration=30, clock=clock)
    store = FaultyStore(local_store, plan=failing_puts(Fault.LOST_RESPONSE))
    assert lease.release(store, a) is not None
    assert lease.acquire(local_store, "acme", "proc-b", duration=30, clock=clock).epoch == 2


@pytest.mark.parametrize(
    "body, epoch",
    [
        (b"{not json", 1),
        (b"[1, 2]", 1),
        (b'{"holder": "x", "epoch": "7", "duration_seconds": 30}', 1),
        (b'{"holder": "x", "epoch": true, "duration_seconds": 30}', 1),
        (b'{"holder": "x", "epoch": -3, "duration_seconds": 30}', 1),
        (b'{"holder": "x", "epoch": 4, "duration_seconds": "soon"}', 5),
        (b'{"holder": "x", "epoch": 4, "duration_seconds": -1}', 5),
        (b'{"holder": "x", "epoch": 4, "duration_seconds": 1e999}', 5),
    ],
)
def test_a_malformed_lease_is_held_for_our_duration_then_replaced(local_store, body, epoch):
    clock = FakeClock()
    local_store.put("orgs/acme/lease.json", body, if_absent=True)
    assert lease.acquire(local_store, "acme", "proc-a", duration=30, clock=clock) is None
    clock.advance(29)
    assert lease.acquire(local_store, "acme", "proc-a", duration=30, clock=clock) is None
    clock.advance(1)
    assert lease.acquire(local_store, "acme", "proc-a", duration=30, clock=clock).epoch == epoch
    assert lease_doc(local_store)["holder"] == "proc-a"


@pytest.mark.parametrize("org", ["", "a/b", "../x", "x" * 65, None])
def test_a_bad_org_is_refused_before_any_request(local_store, org):
    with pytest.raises(InvalidOrg):
        lease.acquire(local_store, org, "proc-a", duration=30, clock=FakeClock())
    assert local_store.total() == 0


def test_a_released_lease_carries_when_the_org_is_next_due(local_store):
    clock = FakeClock()
    due = datetime(2026, 11, 23, 21, 0, tzinfo=timezone.utc)
    held = lease.acquire(local_store, "acme", "p1", duration=60, clock=clock)
    assert lease.released(local_store, "acme") is None  # held: no hint

    lease.release(local_store, held, hint=lease.Released(next_due=due))
    assert lease.released(local_store, "acme") == lease.Released(next_due=due)

    again = lease.acquire(local_store, "acme", "p2", duration=60, clock=clock)
    lease.release(local_store, again, hint=lease.Released(next_due=None))
    assert lease.released(local_store, "acme") == lease.Released(next_due=None)


def test_a_release_without_a_hint_leaves_the_state_to_decide(local_store):
    """A holder that never read its state must not tell the idle check
    "nothing is waiting"."""
    held = lease.acquire(local_store, "acme", "p1", duration=60, clock=FakeClock())
    lease.release(local_store, held)
    assert lease_doc(local_store)["released"] is True
    assert lease.released(local_store, "acme") is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"epoch": 1, "released": true}',
        b'{"epoch": 1, "released": true, "next_due": "tomorrow"}',
        b'{"epoch": 1, "released": true, "next_due": "2026-11-23T21:00:00"}',
        b'{"epoch": 1, "released": true, "next_due": 5}',
        b'{"epoch": 1, "released": "yes", "next_due": null}',
    ],
)
def test_a_lease_without_a_usable_hint_gives_none(local_store, body):
    local_store.put("orgs/acme/lease.json", body)
    assert lease.released(local_store, "acme") is None


def test_no_lease_gives_no_hint(local_store):
    assert lease.released(local_store, "acme") is None


def test_a_reacquire_that_meets_a_412_reads_nothing(local_store):
    # A 412 is certain (the store's contract): the cycle that goes on to
    # acquire reads the lease there, so reacquire must not read it too.
    clock = FakeClock()
    ours = lease.acquire(local_store, "acme", "ours", duration=30, clock=clock)
    released = lease.release(local_store, ours)
    lease.release(local_store, lease.acquire(local_store, "acme", "theirs", duration=30,
                                             clock=clock))
    before = local_store.counts()
    assert lease.reacquire(local_store, "acme", "ours", released=released, epoch=ours.epoch,
                           duration=30, clock=clock) is None
    after = local_store.counts()
    assert {kind: after[kind] - before[kind] for kind in after
            if after[kind] != before[kind]} == {"put": 1}


def test_a_412_after_a_lost_answer_is_resolved_by_reading(local_store):
    # Our first put landed but its answer was lost, and the read that would
    # tell failed too: the next put meets our own write's etag. That 412
    # is not certain, and reading shows the lease is ours.
    clock = FakeClock()
    first = lease.acquire(local_store, "acme", "proc-a", duration=30, clock=clock)

    def lost_then_unreadable(kind, key, n):
        if (kind, n) == ("put", 1):
            return Fault.LOST_RESPONSE
        if (kind, n) == ("get", 1):
            return Fault.TRANSIENT
        return None

    store = FaultyStore(local_store, plan=lost_then_unreadable)
    renewed = lease.renew(store, first, clock)
    assert renewed.etag == local_store.get("orgs/acme/lease.json").etag
    assert lease_doc(local_store)["nonce"] == renewed.nonce
