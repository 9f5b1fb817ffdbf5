"""The store contract, run against every backend: local directory, moto in-process, moto's server."""

from __future__ import annotations

import hashlib
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.store import InvalidKey, NotFound, ObjectInfo, PreconditionFailed
from chalicelib.store.base import DOWNLOAD_PIECE


def md5_etag(body: bytes) -> str:
    return f'"{hashlib.md5(body).hexdigest()}"'


def test_put_then_get_returns_body_and_etag(any_store):
    etag = any_store.put("orgs/acme/log/1.json", b'{"version": 1}')

    stored = any_store.get("orgs/acme/log/1.json")

    assert stored.key == "orgs/acme/log/1.json"
    assert stored.body == b'{"version": 1}'
    assert stored.etag == etag


def test_etag_is_the_quoted_md5_of_the_body(any_store):
    assert any_store.put("k", b"hello") == '"5d41402abc4b2a76b9719d911017c592"'


def test_head_gives_etag_and_size(any_store):
    etag = any_store.put("a/b", b"12345")

    assert any_store.head("a/b") == ObjectInfo(key="a/b", etag=etag, size=5)


def test_empty_body_is_an_object(any_store):
    any_store.put("empty", b"")

    assert any_store.get("empty").body == b""
    assert any_store.head("empty").size == 0


def test_get_and_head_of_missing_key_raise_not_found(any_store):
    with pytest.raises(NotFound) as caught:
        any_store.get("nope/missing.json")
    assert caught.value.key == "nope/missing.json"
    with pytest.raises(NotFound):
        any_store.head("nope/missing.json")


class Pieces:
    """A download's destination that keeps each piece it is handed."""

    def __init__(self):
        self.pieces: list[bytes] = []

    def write(self, piece) -> None:
        self.pieces.append(bytes(piece))


def test_download_hands_on_the_body_in_pieces_with_its_etag_and_size(any_store):
    body = bytes(range(256)) * 10_000  # 2.5 MB: three pieces of at most 1 MB
    etag = any_store.put("orgs/acme/snapshots/big.sqlite", body)
    into = Pieces()

    info = any_store.download("orgs/acme/snapshots/big.sqlite", into)

    assert info == ObjectInfo(key="orgs/acme/snapshots/big.sqlite", etag=etag, size=len(body))
    assert b"".join(into.pieces) == body
    assert len(into.pieces) >= 3
    assert max(len(piece) for piece in into.pieces) <= DOWNLOAD_PIECE


def test_download_of_an_empty_object_writes_nothing(any_store):
    etag = any_store.put("empty", b"")
    into = Pieces()

    assert any_store.download("empty", into) == ObjectInfo(key="empty", etag=etag, size=0)
    assert b"".join(into.pieces) == b""


def test_download_of_a_missing_key_raises_not_found_and_writes_nothing(any_store):
    into = Pieces()

    with pytest.raises(NotFound) as caught:
        any_store.download("nope/missing.sqlite", into)

    assert caught.value.key == "nope/missing.sqlite"
    assert into.pieces == []


def test_what_the_destination_raises_passes_through_a_download_untranslated(any_store):
    any_store.put("k", b"x" * 3_000_000)

    class DiskFull:
        def write(self, piece):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError) as caught:
        any_store.download("k", DiskFull())

    assert caught.value.errno == 28
    # The store still answers: the abandoned body did not poison a connection.
    assert any_store.get("k").body == b"x" * 3_000_000


def test_plain_put_overwrites(any_store):
    any_store.put("k", b"one")
    etag = any_store.put("k", b"two")

    assert any_store.get("k").body == b"two"
    assert any_store.get("k").etag == etag


def test_put_if_absent_creates_once(any_store):
    first = any_store.put("lease.json", b"first", if_absent=True)

    with pytest.raises(PreconditionFailed) as caught:
        any_store.put("lease.json", b"second", if_absent=True)

    assert caught.value.key == "lease.json"
    assert any_store.get("lease.json").body == b"first"
    assert any_store.get("lease.json").etag == first


def test_put_if_match_with_current_etag_replaces(any_store):
    old = any_store.put("lease.json", b"epoch 1")

    new = any_store.put("lease.json", b"epoch 2", if_match=old)

    assert new != old
    assert any_store.get("lease.json").body == b"epoch 2"


def test_put_if_match_accepts_the_etag_unquoted(any_store):
    old = any_store.put("k", b"v1")

    any_store.put("k", b"v2", if_match=old.strip('"'))

    assert any_store.get("k").body == b"v2"


def test_put_if_match_with_stale_etag_fails_and_changes_nothing(any_store):
    stale = any_store.put("lease.json", b"epoch 1")
    any_store.put("lease.json", b"epoch 2", if_match=stale)

    with pytest.raises(PreconditionFailed):
        any_store.put("lease.json", b"epoch 3", if_match=stale)

    assert any_store.get("lease.json").body == b"epoch 2"


def test_put_if_match_on_missing_key_raises_not_found(any_store):
    with pytest.raises(NotFound):
        any_store.put("lease.json", b"x", if_match=md5_etag(b"x"))

    with pytest.raises(NotFound):
        any_store.get("lease.json")


def test_put_refuses_both_preconditions(any_store):
    with pytest.raises(ValueError):
        any_store.put("k", b"x", if_absent=True, if_match='"abc"')

    with pytest.raises(NotFound):
        any_store.get("k")


def test_put_refuses_a_body_that_is_not_bytes(any_store):
    with pytest.raises(TypeError):
        any_store.put("k", "text")

    with pytest.raises(NotFound):
        any_store.get("k")


def test_delete_removes_and_missing_key_is_not_an_error(any_store):
    any_store.put("k", b"x")

    any_store.delete("k")
    any_store.delete("k")

    with pytest.raises(NotFound):
        any_store.get("k")


def test_delete_if_match_with_current_etag_removes(any_store):
    etag = any_store.put("lease.json", b"mine")

    any_store.delete("lease.json", if_match=etag)

    with pytest.raises(NotFound):
        any_store.head("lease.json")


def test_delete_if_match_with_wrong_etag_fails_and_keeps_object(any_store):
    stale = any_store.put("lease.json", b"mine")
    any_store.put("lease.json", b"theirs")

    with pytest.raises(PreconditionFailed):
        any_store.delete("lease.json", if_match=stale)

    assert any_store.get("lease.json").body == b"theirs"


def test_delete_if_match_on_missing_key_raises_not_found(any_store):
    with pytest.raises(NotFound):
        any_store.delete("lease.json", if_match=md5_etag(b"x"))


def test_a_key_and_a_key_below_it_coexist(any_store):
    any_store.put("a", b"file")
    any_store.put("a/b", b"below")

    assert any_store.get("a").body == b"file"
    assert any_store.get("a/b").body == b"below"


def test_list_in_byte_order_with_prefix_and_start_after(any_store):
    for key in ["a0", "a/b", "a-c", "b", "a", "a/b/c", "é", "Z"]:
        any_store.put(key, key.encode())

    assert [o.key for o in any_store.list("")] == ["Z", "a", "a-c", "a/b", "a/b/c", "a0", "b", "é"]
    assert [o.key for o in any_store.list("a/")] == ["a/b", "a/b/c"]
    assert [o.key for o in any_store.list("a")] == ["a", "a-c", "a/b", "a/b/c", "a0"]
    assert [o.key for o in any_store.list("", start_after="a/b")] == ["a/b/c", "a0", "b", "é"]
    assert [o.key for o in any_store.list("a", start_after="a-")] == ["a-c", "a/b", "a/b/c", "a0"]
    assert [o.key for o in any_store.list("", start_after="a", limit=2)] == ["a-c", "a/b"]
    assert any_store.list("nothing/") == []


def test_list_gives_etag_and_size(any_store):
    etag = any_store.put("p/x", b"abc")

    assert any_store.list("p/") == [ObjectInfo(key="p/x", etag=etag, size=3)]


def test_list_leaves_out_deleted_objects(any_store):
    any_store.put("p/1", b"1")
    any_store.put("p/2", b"2")
    any_store.delete("p/1")

    assert [o.key for o in any_store.list("p/")] == ["p/2"]


def test_list_pages_over_more_than_a_thousand_keys(any_store):
    keys = [f"orgs/acme/log/{v:020d}.json" for v in range(1, 1006)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: any_store.put(k, b"{}"), keys))
    any_store.put("orgs/acme/lease.json", b"not in the log")

    first = any_store.list("orgs/acme/log/")
    second = any_store.list("orgs/acme/log/", start_after=first[-1].key)
    third = any_store.list("orgs/acme/log/", start_after=second[-1].key)

    assert len(first) == 1000
    assert [o.key for o in first + second] == keys
    assert third == []


@pytest.mark.parametrize("limit", [0, 1001, -1])
def test_list_refuses_a_limit_outside_1_to_1000(any_store, limit):
    with pytest.raises(ValueError):
        any_store.list("", limit=limit)


ODD_KEYS = [
    "spaces in/a name.json",
    "ünïcödé/日本語/键",
    "punct/+%&?#=:~*'\"<>!@$^()[]{};,",
    "dots/.hidden/..x/x..",
    "percent/%2F%00%2e%2e",
    "trailing-dot.",
]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_keys_with_odd_characters_round_trip(any_store, key):
    etag = any_store.put(key, key.encode(), if_absent=True)

    assert any_store.get(key).body == key.encode()
    assert [o.key for o in any_store.list(key)] == [key]
    any_store.delete(key, if_match=etag)
    assert any_store.list("") == []


BAD_KEYS = ["", "/abs", "a//b", "a/", "../up", "a/../../up", "a/./b", ".", "..", "nul\x00", "tab\tkey", "x" * 255, "a/" * 600]


def test_invalid_keys_are_refused_before_any_request(any_store):
    # One test per backend, not per key: a refused key never reaches the backend.
    for key in BAD_KEYS:
        for attempt in (
            lambda: any_store.put(key, b"x"),
            lambda: any_store.put(key, b"x", if_absent=True),
            lambda: any_store.get(key),
            lambda: any_store.head(key),
            lambda: any_store.delete(key),
        ):
            with pytest.raises(InvalidKey):
                attempt()

    assert any_store.list("") == []


def test_invalid_list_prefixes_are_refused(any_store):
    for prefix in ["/", "a//", "/a", "../"]:
        with pytest.raises(InvalidKey):
            any_store.list(prefix)


def test_every_request_is_counted_by_kind_failed_ones_included(any_store):
    any_store.put("k", b"x", if_absent=True)
    with pytest.raises(PreconditionFailed):
        any_store.put("k", b"y", if_absent=True)
    any_store.get("k")
    any_store.download("k", Pieces())
    any_store.head("k")
    any_store.list("")
    any_store.delete("k")

    # A download is one GET request, and is billed as one.
    assert any_store.counts() == {"get": 2, "head": 1, "put": 2, "delete": 1, "list": 1}
    assert any_store.total() == 7


THREADS = 16
# Rounds of the put-if-absent race per backend. A rare interleaving is what
# the rounds are for: on the local store that is linklog's own locking, and
# 200 rounds cost about 2 s. On S3 it is moto's, made atomic by
# make_s3_requests_atomic; in process (with eager thread switching) its
# lock taken away fails within 40 rounds. Over moto's server each round
# waits for 16 puts in turn over HTTP (about 0.25 s), and what the server
# adds is S3Store's 412 over real HTTP, which a round or two shows.
ROUNDS = {"local": 200, "moto": 60, "server": 30}


@pytest.fixture
def eager_thread_switching():
    # Switching threads every 10 µs instead of every 5 ms opens every
    # check-then-write window an in-process racer could slip through.
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


def test_racing_put_if_absent_has_exactly_one_winner_per_round(any_store, eager_thread_switching, request):
    rounds = ROUNDS[request.node.callspec.params["any_store"]]
    barrier = threading.Barrier(THREADS)
    winners: list[list[int]] = [[] for _ in range(rounds)]
    errors: list[BaseException] = []

    def racer(me: int) -> None:
        for round_ in range(rounds):
            barrier.wait()
            try:
                any_store.put(f"race/{round_:03d}", str(me).encode(), if_absent=True)
                winners[round_].append(me)
            except PreconditionFailed:
                pass
            except BaseException as e:  # surfaced below; a dead racer would hang the barrier
                errors.append(e)
                barrier.abort()
                raise

    threads = [threading.Thread(target=racer, args=(me,)) for me in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert [len(w) for w in winners] == [1] * rounds
    stored = {o.key: o for o in any_store.list("race/")}
    assert len(stored) == rounds
    for round_, (winner,) in enumerate(winners):
        assert any_store.get(f"race/{round_:03d}").body == str(winner).encode()


def test_threads_incrementing_a_counter_with_put_if_match_lose_no_increment(any_store, eager_thread_switching):
    any_store.put("counter", b"0")
    refused = []

    def increment(times: int) -> None:
        done = 0
        while done < times:
            current = any_store.get("counter")
            try:
                any_store.put("counter", str(int(current.body) + 1).encode(), if_match=current.etag)
                done += 1
            except PreconditionFailed:
                refused.append(1)

    threads = [threading.Thread(target=increment, args=(10,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert any_store.get("counter").body == b"80"
    assert refused, "the threads never contended; the test proved nothing"
