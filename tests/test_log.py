"""The log: commits at gap-free versions, found without a pointer object."""

from __future__ import annotations

import json
import math
import threading

import pytest

from chalicelib import log
from chalicelib.keys import InvalidOrg, log_key
from chalicelib.log import CorruptLog, LogBusy, append, find_head, read_commits
from chalicelib.store import CountingStore, Transient
from chalicelib.store.base import Conflict
from chalicelib.store.faulty import Fault, FaultyStore

CLIENT = {"kind": "client", "id": "device-7"}


def event(n: int) -> dict:
    return {
        "id": f"e{n}",
        "name": "v1.LinkRestored",
        "args": {"id": f"l{n}"},
        "at": "2026-11-23T20:00:00Z",
    }


def commit_body(org: str, version: int, batch_id: str = "other") -> bytes:
    return json.dumps(
        {
            "version": version,
            "org": org,
            "batch_id": batch_id,
            "committed_at": "2026-11-23T20:00:00.000Z",
            "author": {"kind": "client", "id": "someone-else"},
            "events": [event(version)],
        }
    ).encode()


def no_sleep(seconds: float) -> None:
    pass


def test_an_empty_log_has_head_zero(any_store):
    assert find_head(any_store, "acme") == 0
    assert read_commits(any_store, "acme", 0) == []


def test_commits_land_at_consecutive_versions(any_store):
    first = append(any_store, "acme", [event(1)], batch_id="b1", author=CLIENT)
    second = append(any_store, "acme", [event(2)], batch_id="b2", author=CLIENT)

    assert (first["version"], second["version"]) == (1, 2)
    assert find_head(any_store, "acme") == 2
    commits = read_commits(any_store, "acme", 0)
    assert [c["batch_id"] for c in commits] == ["b1", "b2"]
    assert commits[1]["events"] == [event(2)]
    assert commits[1]["author"] == CLIENT
    assert commits[1]["org"] == "acme"
    assert commits[1]["committed_at"].endswith("Z")


def test_orgs_have_separate_logs(local_store):
    append(local_store, "acme", [event(1)], batch_id="b1", author=CLIENT)
    assert append(local_store, "zeta", [event(1)], batch_id="b1", author=CLIENT)["version"] == 1
    assert find_head(local_store, "acme") == 1


def test_read_commits_pages_by_after_and_limit(local_store):
    for n in range(1, 8):
        append(local_store, "acme", [event(n)], batch_id=f"b{n}", author=CLIENT)

    assert [c["version"] for c in read_commits(local_store, "acme", 2, limit=3)] == [3, 4, 5]
    assert [c["version"] for c in read_commits(local_store, "acme", 5)] == [6, 7]
    assert read_commits(local_store, "acme", 7) == []
    assert read_commits(local_store, "acme", 0, limit=0) == []



def test_stray_objects_under_log_neither_shorten_a_read_nor_hide_the_head(local_store):
    for n in range(1, 8):
        append(local_store, "acme", [event(n)], batch_id=f"b{n}", author=CLIENT)
    local_store.put(log_key("acme", 2) + ".bak", b"a copy someone left")
    local_store.put(log_key("acme", 3) + ".tmp", b"half a copy")

    assert [c["version"] for c in read_commits(local_store, "acme", 0, limit=3)] == [1, 2, 3]
    assert [c["version"] for c in read_commits(local_store, "acme", 1, limit=2)] == [2, 3]
    assert find_head(local_store, "acme") == 7

def test_find_head_starts_from_the_known_version(local_store):
    for n in range(1, 6):
        append(local_store, "acme", [event(n)], batch_id=f"b{n}", author=CLIENT)
    before = local_store.counts()

    assert find_head(local_store, "acme", known=3) == 5

    after = local_store.counts()
    assert after["list"] - before["list"] == 1
    assert after["get"] == before["get"]


@pytest.mark.parametrize("page", [1, 4])
def test_find_head_gallops_over_a_long_log(local_store, monkeypatch, page):
    # A listing page of 1 or 4 stands in for S3's 1,000, so 300 commits are "long".
    monkeypatch.setattr(log, "LIST_PAGE", page)
    for version in range(1, 301):
        local_store.put(log_key("acme", version), commit_body("acme", version), if_absent=True)
    before = local_store.counts()

    assert find_head(local_store, "acme") == 300

    spent = {kind: local_store.counts()[kind] - before[kind] for kind in ("list", "head")}
    # Listing a page at a time would take 75 or 300 listings; galloping
    # (steps doubling) and bisecting takes about 2 * log2(300) HEADs.
    assert spent["list"] <= 3
    assert spent["head"] <= 2 * math.log2(300) + 2


def test_read_commits_never_returns_more_than_a_listing_page(local_store, monkeypatch):
    monkeypatch.setattr(log, "LIST_PAGE", 4)
    for n in range(1, 8):
        append(local_store, "acme", [event(n)], batch_id=f"b{n}", author=CLIENT)

    assert [c["version"] for c in read_commits(local_store, "acme", 0, limit=100)] == [1, 2, 3, 4]
    assert [c["version"] for c in read_commits(local_store, "acme", 4, limit=100)] == [5, 6, 7]


def test_a_damaged_commit_reads_as_its_stand_in_and_the_log_goes_on(local_store):
    append(local_store, "acme", [event(1)], batch_id="b1", author=CLIENT)
    local_store.put(log_key("acme", 2), b"{not json", if_absent=True)
    append(local_store, "acme", [event(3)], batch_id="b3", author=CLIENT)

    first, damaged, third = read_commits(local_store, "acme", 0)

    assert [first["batch_id"], third["batch_id"]] == ["b1", "b3"]
    assert log.is_damaged(damaged) and not log.is_damaged(first)
    assert (damaged["version"], damaged["org"], damaged["events"]) == (2, "acme", [])
    assert damaged["damaged"].startswith("not JSON")


@pytest.mark.parametrize(
    "body, reason",
    [
        (commit_body("acme", 5), "holds version 5 of org 'acme'"),
        (commit_body("zeta", 1), "holds version 1 of org 'zeta'"),
        (b'{"version": 1, "org": "acme"}', "batch_id: Field required"),
        (b"[1, 2]", "(commit): Input should be a valid dictionary"),
        (b"\xff\xfe{}", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    ],
)
def test_a_commit_of_the_wrong_shape_is_damaged(local_store, body, reason):
    local_store.put(log_key("acme", 1), body, if_absent=True)

    (commit,) = read_commits(local_store, "acme", 0)
    assert commit["damaged"].startswith(reason)
    with pytest.raises(CorruptLog) as caught:
        log.decode_commit(log_key("acme", 1), body, "acme", 1)
    assert caught.value.reason == commit["damaged"]


def test_append_after_a_damaged_commit_lands_at_the_next_version(local_store):
    local_store.put(log_key("acme", 1), b"garbage", if_absent=True)

    landed = append(local_store, "acme", [event(2)], batch_id="b2", author=CLIENT)

    assert landed["version"] == 2
    assert read_commits(local_store, "acme", 1) == [landed]


def test_a_gap_in_the_log_is_corrupt(local_store):
    local_store.put(log_key("acme", 1), commit_body("acme", 1), if_absent=True)
    local_store.put(log_key("acme", 3), commit_body("acme", 3), if_absent=True)

    with pytest.raises(CorruptLog) as caught:
        read_commits(local_store, "acme", 0)
    assert caught.value.key == log_key("acme", 2)


def test_an_invalid_org_is_refused_before_any_request(local_store):
    for call in (
        lambda: find_head(local_store, "../etc"),
        lambda: read_commits(local_store, "a/b", 0),
        lambda: append(local_store, "", [event(1)], batch_id="b", author=CLIENT),
    ):
        with pytest.raises(InvalidOrg):
            call()
    assert local_store.total() == 0


def test_a_malformed_commit_is_refused_before_writing(local_store):
    with pytest.raises(ValueError, match="not a valid commit"):
        append(local_store, "acme", [{"name": "v1.LinkRestored"}], batch_id="b", author=CLIENT)
    assert local_store.counts()["put"] == 0
    assert find_head(local_store, "acme") == 0


# On the local store only: moto (in-process and its server alike) checks
# If-None-Match and then writes without a lock, so two racing threads can
# both "create" a key (seen: two writers each told they own one version).
# S3 itself is atomic, as the local store is.
def test_racing_writers_each_get_their_own_version(local_store):
    any_store = local_store
    writers, rounds = 12, 8
    landed: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(writers)

    def write(w: int) -> None:
        start.wait()
        for r in range(rounds):
            commit = append(
                any_store, "acme", [event(w * 100 + r)], batch_id=f"w{w}-r{r}",
                author=CLIENT, max_attempts=1000, budget_seconds=600,
            )
            with lock:
                landed.append(commit["version"])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(landed) == list(range(1, writers * rounds + 1))
    commits = read_commits(any_store, "acme", 0)
    assert sorted(c["batch_id"] for c in commits) == sorted(
        f"w{w}-r{r}" for w in range(writers) for r in range(rounds)
    )


class MeetAtFirstPut(CountingStore):
    """Holds each writer's first log put until ``writers`` have reached it,
    so all of them found the same head and race for one version."""

    def __init__(self, inner, writers: int):
        super().__init__(inner)
        self.gate = threading.Barrier(writers, timeout=10)
        self.waited: set[int] = set()

    def put(self, key, body, *, if_absent=False, if_match=None):
        if threading.get_ident() not in self.waited:
            self.waited.add(threading.get_ident())
            self.gate.wait()
        return super().put(key, body, if_absent=if_absent, if_match=if_match)


def test_two_clients_racing_with_the_same_batch_id_each_keep_their_events(local_store):
    # Batch ids are chosen by clients, so two of them may pick the same
    # one. The loser of the race reads the winner's commit under the same
    # batch id: only the author tells it that the commit is not its own.
    store = MeetAtFirstPut(local_store, writers=2)
    landed: dict[str, dict] = {}

    def write(client: str, n: int) -> None:
        landed[client] = append(store, "acme", [event(n)], batch_id="batch-1",
                                author={"kind": "client", "id": client}, sleep=no_sleep)

    threads = [threading.Thread(target=write, args=(client, n))
               for n, client in enumerate(["phone", "laptop"], start=1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(commit["version"] for commit in landed.values()) == [1, 2]
    assert landed["phone"]["events"] == [event(1)]
    assert landed["laptop"]["events"] == [event(2)]
    stored = {c["author"]["id"]: c["events"] for c in read_commits(local_store, "acme", 0)}
    assert stored == {"phone": [event(1)], "laptop": [event(2)]}


class LandsThenFails(CountingStore):
    """Performs the first ``times`` puts, then raises as a lost response does."""

    def __init__(self, inner, error: type[Exception], times: int = 1):
        super().__init__(inner)
        self.error = error
        self.times = times

    def put(self, key, body, *, if_absent=False, if_match=None):
        etag = super().put(key, body, if_absent=if_absent, if_match=if_match)
        if self.times > 0:
            self.times -= 1
            raise self.error(key, "response lost")
        return etag


def test_our_own_put_behind_a_lost_response_is_recognized(local_store):
    # The put landed but answered Transient; the put again at the same
    # version earns a 412, which is read back rather than taken as lost.
    append(local_store, "acme", [event(1)], batch_id="b1", author=CLIENT)
    store = LandsThenFails(local_store, Transient)

    commit = append(store, "acme", [event(2)], batch_id="b2", author=CLIENT, sleep=no_sleep)

    assert commit["version"] == 2
    assert commit["batch_id"] == "b2"
    assert find_head(local_store, "acme") == 2
    assert [c["batch_id"] for c in read_commits(local_store, "acme", 0)] == ["b1", "b2"]


def test_a_put_that_lands_but_keeps_failing_is_still_recognized(local_store):
    store = LandsThenFails(local_store, Transient, times=100)

    commit = append(store, "acme", [event(1)], batch_id="b1", author=CLIENT, sleep=no_sleep)

    assert commit["version"] == 1
    assert find_head(local_store, "acme") == 1


def test_our_put_whose_response_is_lost_on_the_last_attempt_is_still_ours(local_store):
    # No attempt is left to earn the 412 that would tell: the log is read
    # once more rather than answer "busy, nothing written" for a commit
    # that landed.
    store = LandsThenFails(local_store, Transient)

    commit = append(store, "acme", [event(1)], batch_id="b1", author=CLIENT,
                    max_attempts=1, sleep=no_sleep)

    assert (commit["version"], commit["batch_id"]) == (1, "b1")
    assert [c["batch_id"] for c in read_commits(local_store, "acme", 0)] == ["b1"]


def test_a_412_whose_read_fails_on_the_last_attempt_is_resolved_by_reading_again(local_store):
    # The first put landed but answered Transient; the second earned a 412
    # and reading the version back failed: whether it is ours is still open.
    def plan(kind, key, n):
        if (kind, n) == ("put", 1):
            return Fault.LOST_RESPONSE
        return Fault.TRANSIENT if (kind, n) == ("get", 1) else None

    store = FaultyStore(local_store, plan=plan)
    commit = append(store, "acme", [event(1)], batch_id="b1", author=CLIENT,
                    max_attempts=2, sleep=no_sleep)

    assert (commit["version"], commit["batch_id"]) == (1, "b1")


class RivalSlipsIn(CountingStore):
    """Our first put fails before reaching the store (Transient), and while
    we wait another client takes that version with the same batch id."""

    def __init__(self, inner, rival: dict):
        super().__init__(inner)
        self.rival = rival
        self.failed = False

    def put(self, key, body, *, if_absent=False, if_match=None):
        if not self.failed:
            self.failed = True
            rival = {**json.loads(body), "author": self.rival, "events": [event(99)]}
            self.inner.put(key, json.dumps(rival).encode(), if_absent=True)
            raise Transient(key, "503 before the request")
        return super().put(key, body, if_absent=if_absent, if_match=if_match)


def test_a_412_in_doubt_is_ours_only_if_the_author_matches_too(local_store):
    store = RivalSlipsIn(local_store, rival={"kind": "client", "id": "laptop"})

    commit = append(store, "acme", [event(1)], batch_id="batch-1", author=CLIENT,
                    sleep=no_sleep)

    assert (commit["version"], commit["events"]) == (2, [event(1)])
    stored = [(c["author"]["id"], c["events"]) for c in read_commits(local_store, "acme", 0)]
    assert stored == [("laptop", [event(99)]), ("device-7", [event(1)])]


class FailsFirst(CountingStore):
    """Raises ``error`` on the first ``times`` puts without writing anything."""

    def __init__(self, inner, error: type[Exception], times: int):
        super().__init__(inner)
        self.error = error
        self.times = times
        self.attempts = 0

    def put(self, key, body, *, if_absent=False, if_match=None):
        self.attempts += 1
        if self.times > 0:
            self.times -= 1
            raise self.error(key, "refused on cue")
        return super().put(key, body, if_absent=if_absent, if_match=if_match)


@pytest.mark.parametrize("error", [Transient, Conflict])
def test_a_failed_put_that_wrote_nothing_is_retried_at_the_same_version(local_store, error):
    store = FailsFirst(local_store, error, times=3)

    commit = append(store, "acme", [event(1)], batch_id="b1", author=CLIENT, sleep=no_sleep)

    assert commit["version"] == 1
    assert store.attempts == 4
    assert [c["batch_id"] for c in read_commits(local_store, "acme", 0)] == ["b1"]


class AlwaysBeaten(CountingStore):
    """Before each of our puts another writer takes the next version."""

    def put(self, key, body, *, if_absent=False, if_match=None):
        version = int(key.rsplit("/", 1)[-1].removesuffix(".json"))
        self.inner.put(key, commit_body("acme", version, batch_id=f"rival-{version}"), if_absent=True)
        return super().put(key, body, if_absent=if_absent, if_match=if_match)


def test_past_the_retry_bound_the_log_is_busy_and_nothing_of_ours_lands(local_store):
    slept: list[float] = []

    with pytest.raises(LogBusy) as caught:
        append(
            AlwaysBeaten(local_store), "acme", [event(1)], batch_id="mine",
            author=CLIENT, max_attempts=5, sleep=slept.append,
        )

    assert caught.value.retry_after_seconds == 1
    assert not caught.value.may_have_landed
    # Every lost race waits, then lists.
    assert len(slept) == 4
    assert all(0 <= s <= log.BACKOFF_CAP_SECONDS for s in slept)
    commits = read_commits(local_store, "acme", 0)
    assert [c["batch_id"] for c in commits] == [f"rival-{v}" for v in range(1, 6)]


class SlowClock:
    """A clock that moves on a second each time it is read."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_past_the_time_budget_the_log_is_busy(local_store):
    store = CountingStore(AlwaysBeaten(local_store))

    with pytest.raises(LogBusy):
        append(store, "acme", [event(1)], batch_id="mine", author=CLIENT,
               budget_seconds=5, clock=SlowClock(), sleep=no_sleep)

    assert store.counts()["put"] < log.MAX_PUTS


def test_a_store_that_never_answers_gives_log_busy_and_writes_nothing(local_store):
    store = FailsFirst(local_store, Transient, times=1000)

    with pytest.raises(LogBusy):
        append(store, "acme", [event(1)], batch_id="b1", author=CLIENT,
               max_attempts=4, sleep=no_sleep)

    assert find_head(local_store, "acme") == 0


@pytest.mark.parametrize(
    "head, known_head",
    [
        (3, 2),  # one version behind
        (5, 0),  # further behind: still one listing
    ],
)
def test_a_lost_race_costs_a_wait_and_a_listing_never_a_read(local_store, head, known_head):
    # A 412 is certain, so the loser does not read the winner's commit: it
    # waits (others who lost spread out) and one listing finds the head.
    spent, waits = {"put": 2, "get": 0, "list": 1, "head": 0}, 1
    for n in range(1, head + 1):
        append(local_store, "acme", [event(n)], batch_id=f"b{n}", author=CLIENT)
    before = local_store.counts()
    slept: list[float] = []

    commit = append(local_store, "acme", [event(head + 1)], batch_id=f"b{head + 1}",
                    author=CLIENT, known_head=known_head, find_head_first=False,
                    sleep=slept.append)

    assert commit["version"] == head + 1
    assert {k: local_store.counts()[k] - before[k] for k in spent} == spent
    assert len(slept) == waits
    assert [c["batch_id"] for c in read_commits(local_store, "acme", 0)] == [
        f"b{n}" for n in range(1, head + 2)
    ]


def test_a_put_in_doubt_after_a_lost_race_is_resolved_at_its_own_version(local_store):
    # Lost at 1, listed, then put at 2, which landed but answered Transient.
    # Listing for the head now would find our own commit and write it again.
    local_store.put(log_key("acme", 1), commit_body("acme", 1), if_absent=True)
    store = FaultyStore(local_store, plan=lambda kind, key, n: (
        Fault.LOST_RESPONSE if (kind, n) == ("put", 2) else None))

    commit = append(store, "acme", [event(2)], batch_id="b2", author=CLIENT,
                    known_head=0, find_head_first=False, sleep=no_sleep)

    assert (commit["version"], commit["batch_id"]) == (2, "b2")
    assert [c["batch_id"] for c in read_commits(local_store, "acme", 0)] == ["other", "b2"]


def test_log_busy_says_when_our_last_put_may_have_landed(local_store):
    # Every put lands with its answer lost, and reading back fails.
    store = FaultyStore(local_store, plan=lambda kind, key, n: (
        Fault.LOST_RESPONSE if kind == "put" else Fault.TRANSIENT if kind == "get" else None))

    with pytest.raises(LogBusy) as caught:
        append(store, "acme", [event(1)], batch_id="b1", author=CLIENT,
               max_attempts=3, sleep=no_sleep)

    assert caught.value.may_have_landed
    assert [c["batch_id"] for c in read_commits(local_store, "acme", 0)] == ["b1"]


def test_one_writer_through_a_failing_store_commits_each_batch_exactly_once(local_store):
    # Faults in every request kind: 503s, lost responses, 409s.
    store = FaultyStore(local_store, fail_rate=0.3, seed=7)
    head = 0
    for n in range(1, 41):
        while True:
            try:
                head = append(store, "acme", [event(n)], batch_id=f"b{n}", author=CLIENT,
                              known_head=head, max_attempts=20, sleep=no_sleep)["version"]
                break
            except (LogBusy, Transient):
                # The caller's retry: same batch; the log may already hold it.
                landed = [c for c in read_commits(local_store, "acme", 0) if c["batch_id"] == f"b{n}"]
                if landed:
                    head = landed[0]["version"]
                    break

    faults = {injected.fault for injected in store.injected}
    assert faults == set(Fault)
    commits = read_commits(local_store, "acme", 0)
    assert [c["batch_id"] for c in commits] == [f"b{n}" for n in range(1, 41)]


def test_a_malformed_event_leaves_its_commit_readable(local_store):
    body = json.loads(commit_body("acme", 1))
    body["events"] += [[1, 2], {"id": "e9", "args": {}}]
    local_store.put(log_key("acme", 1), json.dumps(body).encode(), if_absent=True)

    (commit,) = read_commits(local_store, "acme", 0)

    assert commit["events"] == [event(1), [1, 2], {"id": "e9", "args": {}}]


def test_a_commit_nested_too_deep_to_parse_is_damaged_not_a_crash(local_store):
    body = json.loads(commit_body("acme", 1))
    body["events"][0]["args"]["deep"] = "NEST"
    raw = json.dumps(body).replace('"NEST"', "[" * 100_000 + "]" * 100_000)
    local_store.put(log_key("acme", 1), raw.encode(), if_absent=True)

    (commit,) = read_commits(local_store, "acme", 0)
    assert log.is_damaged(commit) and commit["events"] == []
    assert commit["damaged"] == "not JSON: nested too deeply"
