"""FaultyStore fails on cue, the way S3 does, and the same way for the same seed."""

from __future__ import annotations

import pytest

from chalicelib.store import Conflict, LocalStore, NotFound, PreconditionFailed, Transient
from chalicelib.store.faulty import Fault, FaultyStore, InjectedFault


@pytest.fixture
def inner(tmp_path):
    return LocalStore(str(tmp_path / "store"))


def third_put(fault):
    return lambda kind, key, n: fault if kind == "put" and n == 3 else None


def test_without_faults_it_is_the_inner_store(inner):
    store = FaultyStore(inner)

    etag = store.put("k", b"v", if_absent=True)

    assert store.get("k").body == b"v"
    assert store.head("k").etag == etag
    assert [o.key for o in store.list("")] == ["k"]
    store.delete("k", if_match=etag)
    with pytest.raises(NotFound):
        store.get("k")
    assert store.injected == []


def test_plan_fails_the_third_put_before_it_happens(inner):
    store = FaultyStore(inner, plan=third_put(Fault.TRANSIENT))
    store.put("k1", b"1")
    store.put("k2", b"2")

    with pytest.raises(Transient):
        store.put("k3", b"3", if_absent=True)
    store.put("k4", b"4")

    assert [o.key for o in inner.list("")] == ["k1", "k2", "k4"]
    assert store.injected == [InjectedFault(kind="put", key="k3", n=3, fault=Fault.TRANSIENT)]


def test_lost_response_writes_then_raises_transient(inner):
    store = FaultyStore(inner, plan=third_put(Fault.LOST_RESPONSE))
    store.put("k1", b"1")
    store.put("k2", b"2")

    with pytest.raises(Transient):
        store.put("k3", b"mine", if_absent=True)

    assert inner.get("k3").body == b"mine"


def test_conflict_on_conditional_put_changes_nothing(inner):
    old = inner.put("lease.json", b"epoch 1")
    store = FaultyStore(inner, plan=lambda kind, key, n: Fault.CONFLICT if kind == "put" else None)

    with pytest.raises(Conflict):
        store.put("lease.json", b"epoch 2", if_match=old)

    assert inner.get("lease.json").body == b"epoch 1"


def test_lost_response_on_delete_deletes_then_raises(inner):
    etag = inner.put("lease.json", b"mine")
    store = FaultyStore(inner, plan=lambda kind, key, n: Fault.LOST_RESPONSE if kind == "delete" else None)

    with pytest.raises(Transient):
        store.delete("lease.json", if_match=etag)

    with pytest.raises(NotFound):
        inner.get("lease.json")


def test_transient_on_reads(inner):
    inner.put("k", b"v")
    store = FaultyStore(inner, plan=lambda kind, key, n: Fault.TRANSIENT if n == 1 else None)

    for read in (lambda: store.get("k"), lambda: store.head("k"), lambda: store.list("")):
        with pytest.raises(Transient):
            read()
        read()

    assert [(f.kind, f.n) for f in store.injected] == [("get", 1), ("head", 1), ("list", 1)]


class Pieces(list):
    def write(self, piece):
        self.append(bytes(piece))


def test_a_failed_download_is_cut_off_after_its_first_piece(inner):
    body = b"0123456789abcdef" * 200_000  # 3.2 MB: four pieces
    inner.put("k", body)
    store = FaultyStore(inner, plan=lambda kind, key, n: Fault.TRANSIENT if n == 1 else None)
    cut = Pieces()

    with pytest.raises(Transient):
        store.download("k", cut)
    whole = Pieces()
    store.download("k", whole)

    assert len(cut) == 1 and body.startswith(cut[0]) and len(cut[0]) < len(body)
    assert b"".join(whole) == body
    assert [(f.kind, f.n) for f in store.injected] == [("get", 1)]


@pytest.mark.parametrize(
    "fault, request_",
    [
        (Fault.CONFLICT, lambda s: s.get("k")),
        (Fault.LOST_RESPONSE, lambda s: s.list("")),
        (Fault.LOST_RESPONSE, lambda s: s.head("k")),
        (Fault.CONFLICT, lambda s: s.put("k", b"x")),
        (Fault.CONFLICT, lambda s: s.delete("k")),
    ],
)
def test_plan_naming_an_impossible_fault_is_refused(inner, fault, request_):
    store = FaultyStore(inner, plan=lambda kind, key, n: fault)

    with pytest.raises(ValueError):
        request_(store)

    assert inner.list("") == []


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_fail_rate_outside_0_to_1_is_refused(inner, rate):
    with pytest.raises(ValueError):
        FaultyStore(inner, fail_rate=rate)


def run_workload(store: FaultyStore) -> list[str]:
    outcomes = []
    for i in range(120):
        try:
            store.put(f"k{i % 40}", str(i).encode(), if_absent=i % 2 == 0)
            store.get(f"k{i % 40}")
            outcomes.append("ok")
        except (Transient, Conflict, PreconditionFailed) as e:
            outcomes.append(type(e).__name__)
    return outcomes


def test_same_seed_fails_the_same_way(tmp_path):
    first = FaultyStore(LocalStore(str(tmp_path / "one")), fail_rate=0.1, seed=7)
    second = FaultyStore(LocalStore(str(tmp_path / "two")), fail_rate=0.1, seed=7)
    other = FaultyStore(LocalStore(str(tmp_path / "three")), fail_rate=0.1, seed=8)

    outcomes = run_workload(first)

    assert run_workload(second) == outcomes
    assert first.injected == second.injected
    run_workload(other)
    assert other.injected != first.injected


def test_fail_rate_is_roughly_kept_and_every_fault_kind_appears(inner):
    store = FaultyStore(inner, fail_rate=0.1, seed=1)

    for i in range(600):
        try:
            store.put(f"k{i % 50}", b"x", if_absent=True)
        except (Transient, Conflict, PreconditionFailed):
            pass

    injected = len(store.injected)
    assert 35 <= injected <= 85
    assert {f.fault for f in store.injected} == set(Fault)
