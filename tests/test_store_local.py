"""The local directory store across processes, under SIGKILL, and on disk."""

from __future__ import annotations

import multiprocessing
import os
import random
import tempfile
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.store import LocalStore, NotFound, ObjectInfo, PreconditionFailed, StoreError
from chalicelib.store.keyrules import InvalidKey, check_prefix
from chalicelib.store.local import HEADER_SIZE, etag_of

# Fork starts a child in milliseconds; the children only touch the store.
FORK = multiprocessing.get_context("fork")


def increment(root: str, key: str, times: int) -> int:
    """Add 1 to the counter at ``key`` ``times`` times with compare-and-swap; returns the 412s seen."""
    store = LocalStore(root)
    refused = 0
    done = 0
    while done < times:
        current = store.get(key)
        try:
            store.put(key, str(int(current.body) + 1).encode(), if_match=current.etag)
            done += 1
        except PreconditionFailed:
            refused += 1
    return refused


def race_for_keys(root: str, me: int, rounds: int, barrier, results) -> None:
    store = LocalStore(root)
    won = []
    for round_ in range(rounds):
        barrier.wait()
        try:
            store.put(f"race/{round_:03d}", str(me).encode(), if_absent=True)
            won.append(round_)
        except PreconditionFailed:
            pass
    results.put((me, won))


def test_processes_incrementing_one_counter_with_put_if_match_lose_nothing(tmp_path):
    root = str(tmp_path / "store")
    LocalStore(root).put("counter", b"0")

    with FORK.Pool(4) as pool:
        refused = pool.starmap(increment, [(root, "counter", 150)] * 4)

    assert LocalStore(root).get("counter").body == b"600"
    assert sum(refused) > 0, "the processes never contended; the test proved nothing"


def test_processes_racing_put_if_absent_have_one_winner_per_key(tmp_path):
    root = str(tmp_path / "store")
    processes, rounds = 4, 100
    barrier = FORK.Barrier(processes)
    results = FORK.Queue()
    workers = [
        FORK.Process(target=race_for_keys, args=(root, me, rounds, barrier, results))
        for me in range(processes)
    ]
    for w in workers:
        w.start()
    wins = dict(results.get(timeout=60) for _ in workers)
    for w in workers:
        w.join()

    all_wins = sorted(r for won in wins.values() for r in won)
    assert all_wins == list(range(rounds))
    store = LocalStore(root)
    for me, won in wins.items():
        for round_ in won:
            assert store.get(f"race/{round_:03d}").body == str(me).encode()


OBJECT_SIZE = 1024 * 1024


def body_of(generation: int) -> bytes:
    return f"{generation:08d}".encode() * (OBJECT_SIZE // 8)


def is_whole(body: bytes) -> bool:
    return len(body) == OBJECT_SIZE and body == body[:8] * (OBJECT_SIZE // 8)


def write_forever(root: str) -> None:
    store = LocalStore(root)
    generation = 0
    etag = store.put("big", body_of(generation))
    while True:
        generation += 1
        if generation % 2:
            etag = store.put("big", body_of(generation), if_match=etag)
        else:
            etag = store.put("big", body_of(generation))
        store.put(f"new/{generation:06d}", body_of(generation), if_absent=True)


def temp_files(root: str) -> list[str]:
    return [n for _, _, names in os.walk(root) for n in names if n.startswith(".tmp-")]


def test_a_writer_killed_mid_put_leaves_the_old_or_the_new_object_never_a_torn_one(tmp_path):
    root = str(tmp_path / "store")
    store = LocalStore(root)
    rng = random.Random(5)
    left_temp_files = 0
    for trial in range(8):
        writer = FORK.Process(target=write_forever, args=(root,))
        writer.start()
        while not store.list("new/"):
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        writer.kill()
        writer.join()
        assert writer.exitcode == -9

        assert is_whole(store.get("big").body)
        for info in store.list(""):
            assert info.size == OBJECT_SIZE
            assert is_whole(store.get(info.key).body), info.key
        left_temp_files += len(temp_files(root))
        # The dead writer's lock is gone with it: the next write goes through.
        current = store.get("big")
        store.put("big", body_of(0), if_match=current.etag)
        for info in store.list("new/"):
            store.delete(info.key)

    assert left_temp_files > 0, "no kill landed inside a put; the test proved nothing"


def test_readers_never_see_a_half_replaced_object(tmp_path):
    store = LocalStore(str(tmp_path / "store"))
    store.put("big", body_of(0))
    stop = threading.Event()
    torn = []

    def reader():
        while not stop.is_set():
            if not is_whole(store.get("big").body):
                torn.append(1)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for r in readers:
        r.start()
    for generation in range(1, 13):
        store.put("big", body_of(generation))
    stop.set()
    for r in readers:
        r.join()

    assert torn == []


def test_objects_are_files_with_an_etag_header_and_temp_and_lock_files_stay_out_of_list(tmp_path):
    root = tmp_path / "store"
    store = LocalStore(str(root))
    store.put("orgs/acme/log/00000000000000000001.json", b'{"version": 1}')
    store.put("orgs/acme", b"an object beside a folder of the same name")
    (root / "dorgs" / "dacme" / ".tmp-left-by-a-crash").write_bytes(b"half")
    (root / "dorgs" / "stray file").write_bytes(b"not tagged as an object")

    log_file = root / "dorgs" / "dacme" / "dlog" / "f00000000000000000001.json"
    assert log_file.read_bytes() == b'LLOBJ1 fce8ed52ad0bc010cd9a8dd97f615e98\n{"version": 1}'
    assert (root / "dorgs" / "facme").read_bytes().endswith(b"\nan object beside a folder of the same name")
    assert (root / ".locks").is_dir()
    assert [o.key for o in store.list("")] == ["orgs/acme", "orgs/acme/log/00000000000000000001.json"]


def test_the_store_persists_across_instances(tmp_path):
    LocalStore(str(tmp_path / "store")).put("k", b"kept")

    assert LocalStore(str(tmp_path / "store")).get("k").body == b"kept"


@pytest.mark.parametrize("key", ["../outside", "a/../../outside", "/etc/outside", "a//b"])
def test_keys_that_could_leave_the_root_write_nothing_anywhere(tmp_path, key):
    store = LocalStore(str(tmp_path / "store"))
    before = sorted(p for p in tmp_path.rglob("*"))

    with pytest.raises(ValueError):
        store.put(key, b"x")

    assert sorted(p for p in tmp_path.rglob("*")) == before
    with pytest.raises(NotFound):
        store.get("outside")


def test_a_damaged_store_directory_gives_store_errors_not_os_errors(tmp_path):
    store = LocalStore(str(tmp_path / "store"))
    (tmp_path / "store" / "dorgs").write_bytes(b"a file where a folder belongs")

    with pytest.raises(StoreError) as caught:
        store.put("orgs/acme/lease.json", b"{}")
    assert caught.value.key == "orgs/acme/lease.json"
    with pytest.raises(StoreError):
        store.get("orgs/acme/lease.json")
    assert store.list("orgs/") == []


def test_a_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_bytes(b"")

    with pytest.raises(StoreError):
        LocalStore(str(tmp_path / "taken"))


SEGMENT = st.text(alphabet="a0-._~é", min_size=1, max_size=3).filter(lambda s: s not in (".", ".."))
KEY = st.lists(SEGMENT, min_size=1, max_size=3).map("/".join)


@settings(max_examples=80, deadline=None)
@given(
    keys=st.sets(KEY, min_size=1, max_size=25),
    prefix=st.text(alphabet="a0-./_~é", max_size=4),
    limit=st.integers(1, 30),
    data=st.data(),
)
def test_list_agrees_with_sorting_the_keys(keys, prefix, limit, data):
    # start_after is often a stored key or a piece of one, where listing is easiest to get wrong.
    start_after = data.draw(
        st.one_of(
            st.text(alphabet="a0-./_~é", max_size=6),
            st.sampled_from(sorted(keys)).flatmap(lambda k: st.sampled_from([k[:i] for i in range(len(k) + 1)])),
        )
    )
    try:
        check_prefix(prefix)
    except InvalidKey:
        return
    with tempfile.TemporaryDirectory() as root:
        store = LocalStore(root)
        for key in keys:
            store.put(key, b"")

        listed = [o.key for o in store.list(prefix, start_after=start_after, limit=limit)]

    expected = sorted(k for k in keys if k.startswith(prefix) and k > start_after)[:limit]
    assert listed == expected


def test_a_file_without_the_object_header_reads_as_what_follows_the_header_bytes(tmp_path):
    # The header is a cache of the body's MD5: when it is damaged, the etag
    # is computed from the body, and the body (here the file's bytes after
    # the 40th) is for its reader to judge.
    store = LocalStore(str(tmp_path / "store"))
    store.put("k", b"fine")
    (tmp_path / "store" / "fk").write_bytes(b"written by something else, long enough to pass the header")

    body = b"written by something else, long enough to pass the header"[HEADER_SIZE:]
    got = store.get("k")
    assert (got.body, got.etag) == (body, etag_of(body))
    assert store.head("k") == ObjectInfo("k", etag_of(body), len(body))
    assert store.list("") == [ObjectInfo("k", etag_of(body), len(body))]
    with pytest.raises(PreconditionFailed):
        store.put("k", b"new", if_match=etag_of(b"fine"))
    store.put("k", b"repaired", if_match=got.etag)
    assert store.get("k").body == b"repaired"
