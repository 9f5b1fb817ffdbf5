"""Log packs: reading through them answers exactly what the commit objects
answer, whatever packs exist and whatever state they are in."""

from __future__ import annotations

import json
import shutil
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.orgdata import make_org_log
from chalicelib import log, orgstate, packs, sync
from chalicelib.keys import log_key, pack_key
from chalicelib.packs import Pack, UnusablePack, decode_pack, encode_pack
from chalicelib.store import CountingStore, LocalStore
from chalicelib import cycle
from clocks import FakeClock
from processes import kill_child_at
from processing_org import FakeProcessor, save_links
from statelog import dump, replay
from tests.api_server import serving

ORG = "bench"
# Real commits in the processor's shape, with little text: 61 commits.
COMMITS = make_org_log(400, text_bytes=40)


def encoded(commit: dict) -> bytes:
    return json.dumps(commit, separators=(",", ":"), ensure_ascii=False).encode()


def write_log(store, bodies: list[bytes], start: int = 1) -> None:
    for version, body in enumerate(bodies[start - 1 :], start=start):
        store.put(log_key(ORG, version), body, if_absent=True)


def put_pack(store, bodies: list[bytes], first: int, last: int, damage: str = "none") -> None:
    """A pack of versions first..last, damaged the way ``damage`` says."""
    inside = bodies[first - 1 : last]
    body = encode_pack(ORG, first, inside)
    if damage == "truncated":
        body = body[: len(body) // 2]
    elif damage == "flipped":
        middle = len(body) - 3
        body = body[:middle] + bytes([body[middle] ^ 0x55]) + body[middle + 1 :]
    elif damage == "other_org":
        body = encode_pack("other", first, inside)
    elif damage == "other_range" and first > 1:
        body = encode_pack(ORG, first - 1, bodies[first - 2 : last - 1])
    elif damage == "moved" and len(inside) > 1:
        # A right checksum over commits that sit at the wrong positions.
        body = encode_pack(ORG, first, inside[1:] + inside[:1])
    elif damage == "altered":
        # Sound zlib and the header of the real pack over other bytes.
        header, _, compressed = body.partition(b"\n")
        payload = zlib.decompress(compressed).replace(b'"batch_id":"b', b'"batch_id":"B', 1)
        body = header + b"\n" + zlib.compress(payload)
    elif damage == "garbage":
        body = b"\x00not a pack"
    store.put(pack_key(ORG, first, last), body)


def pull_everything(store, limit: int, cold_start: int) -> list[dict]:
    index = sync.LogIndex(cold_start_commits=cold_start)
    pages, since = [], 0
    while True:
        page = sync.pull(store, ORG, since, limit, index=index)
        pages.append(page)
        if not page["has_more"]:
            return pages
        since = page["commits"][-1]["version"]


@st.composite
def logs_with_packs(draw):
    """Stored commit bodies (some damaged, some repeating an earlier event)
    and packs over random ranges, some of them damaged."""
    count = draw(st.integers(1, len(COMMITS)))
    commits = [dict(commit) for commit in COMMITS[:count]]
    for version in draw(st.sets(st.integers(2, count), max_size=3)) if count > 1 else ():
        earlier = commits[draw(st.integers(0, version - 2))]["events"]
        if earlier:
            commits[version - 1]["events"] = commits[version - 1]["events"] + [earlier[0]]
    bodies = [encoded(commit) for commit in commits]
    for version in draw(st.sets(st.integers(1, count), max_size=3)):
        bodies[version - 1] = draw(st.sampled_from([
            b"{not json",
            encoded({**commits[version - 1], "version": version + 1}),
            encoded({**commits[version - 1], "events": "none"}),
        ]))
    cuts = sorted(draw(st.sets(st.integers(1, count), max_size=8)) | {count})
    ranges, first = [], 1
    for last in cuts:
        ranges.append((first, last))
        first = last + 1
    damages = ["none", "none", "none", "truncated", "flipped", "other_org", "other_range",
               "moved", "altered", "garbage", "absent"]
    chosen = [(first, last, draw(st.sampled_from(damages))) for first, last in ranges]
    # Larger packs over some of the same versions, as before their children are deleted.
    if count >= 4 and draw(st.booleans()):
        first = draw(st.integers(1, count - 3))
        chosen.append((first, draw(st.integers(first + 1, count)), draw(st.sampled_from(damages))))
    return bodies, chosen


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(logs_with_packs(), st.integers(1, 400), st.integers(1, 70))
def test_pull_pages_and_replay_are_the_same_with_any_packs(log, limit, cold_start):
    bodies, chosen = log
    with tempfile.TemporaryDirectory() as plain_dir, tempfile.TemporaryDirectory() as packed_dir:
        write_log(LocalStore(plain_dir), bodies)
        # The same commits in the packed store: a copy of the files costs
        # no fsync per commit, as writing them again would.
        shutil.copytree(plain_dir, packed_dir, dirs_exist_ok=True)
        plain, packed = LocalStore(plain_dir), LocalStore(packed_dir)
        for first, last, damage in chosen:
            if damage != "absent":
                put_pack(packed, bodies, first, last, damage)

        assert pull_everything(packed, limit, cold_start) == pull_everything(plain, limit, cold_start)
        assert dump(orgstate.load(packed, ORG)) == dump(orgstate.load(plain, ORG))


def test_a_pack_reads_back_as_the_bodies_it_was_made_of():
    bodies = [encoded(commit) for commit in COMMITS[:8]]

    assert decode_pack(ORG, Pack(1, 8), encode_pack(ORG, 1, bodies)) == bodies


@pytest.mark.parametrize(
    "damage", ["truncated", "flipped", "other_org", "other_range", "moved", "altered", "garbage"]
)
def test_a_damaged_pack_is_unusable(tmp_path, damage):
    store = LocalStore(str(tmp_path))
    bodies = [encoded(commit) for commit in COMMITS[:8]]
    put_pack(store, bodies, 2, 8, damage)

    with pytest.raises(UnusablePack):
        decode_pack(ORG, Pack(2, 8), store.get(pack_key(ORG, 2, 8)).body)
    assert packs.read_pack(store, ORG, Pack(2, 8), None) is None


def test_a_header_promising_a_huge_payload_is_unusable():
    header = {"format": packs.FORMAT, "org": ORG, "first": 1, "last": 1,
              "lengths": [packs.MAX_PACK_BYTES + 1], "sha256": ""}
    body = json.dumps(header).encode() + b"\n" + zlib.compress(b"x")

    with pytest.raises(UnusablePack, match="promises"):
        decode_pack(ORG, Pack(1, 1), body)


def test_packs_missing_from_a_long_log_are_written_largest_first(tmp_path):
    store = CountingStore(LocalStore(str(tmp_path)))
    bodies = [encoded({**COMMITS[1], "version": v, "batch_id": f"b{v}"}) for v in range(1, 700)]
    write_log(store, bodies)

    written = []
    while batch := packs.write_packs(store, ORG, 699):
        written += batch

    assert written == [Pack(1, 512), Pack(513, 640), Pack(641, 672), Pack(673, 680),
                       Pack(681, 688), Pack(689, 696)]
    assert packs.list_packs(store, ORG) == written


def test_a_larger_pack_replaces_the_smaller_ones_inside_it(tmp_path):
    store = CountingStore(LocalStore(str(tmp_path)))
    bodies = [encoded({**COMMITS[1], "version": v, "batch_id": f"b{v}"}) for v in range(1, 33)]
    write_log(store, bodies[:16])
    assert packs.write_packs(store, ORG, 16) == [Pack(1, 8), Pack(9, 16)]
    write_log(store, bodies, start=17)
    gets = store.counts()["get"]

    assert packs.write_packs(store, ORG, 32) == [Pack(1, 32)]
    # Built from the two packs of 8 and 16 commit objects.
    assert store.counts()["get"] - gets == 2 + 16
    assert packs.list_packs(store, ORG) == [Pack(1, 32)]
    assert packs.read_bodies(store, ORG, 1, 32, [Pack(1, 32)]) == bodies


def test_a_range_with_a_missing_commit_is_not_packed(tmp_path):
    store = LocalStore(str(tmp_path))
    bodies = [encoded({**COMMITS[1], "version": v, "batch_id": f"b{v}"}) for v in range(1, 17)]
    write_log(store, bodies)
    store.delete(log_key(ORG, 12))

    assert packs.write_packs(store, ORG, 16) == [Pack(1, 8)]


def test_a_cold_pull_of_a_packed_log_reads_a_few_objects(tmp_path):
    store = CountingStore(LocalStore(str(tmp_path)))
    bodies = [encoded({**COMMITS[1], "version": v, "batch_id": f"b{v}"}) for v in range(1, 700)]
    write_log(store, bodies)
    while packs.write_packs(store, ORG, 699):
        pass
    before = store.total()

    pages = pull_everything(store, 1000, sync.COLD_START_COMMITS)

    assert [commit["version"] for page in pages for commit in page["commits"]] == list(range(1, 700))
    # The index: listing packs and the log for the head, six packs and
    # three commits. The page: the same packs and commits from memory.
    assert store.total() - before == 2 + 6 + 3


@pytest.mark.parametrize("packed", [False, True])
def test_a_cold_pull_decodes_little_more_than_its_pages_hold(tmp_path, monkeypatch, packed):
    store = LocalStore(str(tmp_path))
    event = COMMITS[1]["events"][0]
    # 300 commits of ten events: a page of 1,000 events holds 100 of them.
    bodies = [encoded({**COMMITS[1], "version": v, "batch_id": f"b{v}",
                       "events": [{**event, "id": f"e{v}-{i}"} for i in range(10)]})
              for v in range(1, 301)]
    write_log(store, bodies)
    while packed and packs.write_packs(store, ORG, 300):
        pass
    decoded: list[int] = []
    decode = log.commit_or_stand_in
    monkeypatch.setattr(log, "commit_or_stand_in",
                        lambda org, version, body: decoded.append(version) or decode(org, version, body))
    # A window of one commit: the pages are read below the index's floor.
    index = sync.LogIndex(cold_start_commits=1)

    pages, since = [], 0
    while True:
        decoded.clear()
        page = sync.pull(store, ORG, since, 1000, index=index)
        pages.append((len(page["commits"]), len(decoded)))
        if not page["has_more"]:
            break
        since = page["commits"][-1]["version"]

    # Each page reads chunk by chunk until it is full: 128 commits decoded
    # for 100 handed out, where a page's worth (all 300) was decoded before.
    # The first page also reads the index's window; the last reads to the head.
    assert pages == [(100, 1 + 128), (100, 128), (100, 64 + 36)]


def test_a_pack_deleted_after_it_was_listed_is_read_from_the_commits(tmp_path):
    store = LocalStore(str(tmp_path))
    bodies = [encoded({**COMMITS[1], "version": v, "batch_id": f"b{v}"}) for v in range(1, 17)]
    write_log(store, bodies)
    packs.write_packs(store, ORG, 16)
    listed = packs.list_packs(store, ORG)
    store.delete(pack_key(ORG, 1, 8))

    assert packs.read_bodies(store, ORG, 1, 16, listed) == bodies


CHILD = Path(__file__).resolve().parent / "pack_child.py"


def kill_at(store_dir: str, head: int, step: str) -> None:
    """Start a pack writer process, wait until it reaches ``step``, SIGKILL it."""
    kill_child_at([str(CHILD), store_dir, ORG, str(head), step], step)


@pytest.mark.parametrize("step", ["pack_put", "pack_delete"])
def test_a_pack_writer_killed_mid_write_loses_nothing(tmp_path, step):
    plain, packed = LocalStore(str(tmp_path / "plain")), LocalStore(str(tmp_path / "packed"))
    bodies = [encoded(commit) for commit in COMMITS[:40]]
    write_log(plain, bodies)
    write_log(packed, bodies[:24])
    assert packs.write_packs(packed, ORG, 24) == [Pack(1, 8), Pack(9, 16), Pack(17, 24)]
    write_log(packed, bodies, start=25)
    expected_pages = pull_everything(plain, 300, 1000)
    expected_state = dump(orgstate.load(plain, ORG))

    kill_at(str(tmp_path / "packed"), 40, step)

    assert pull_everything(packed, 300, 1000) == expected_pages
    assert dump(orgstate.load(packed, ORG)) == expected_state
    # The next writer finishes the work, leftovers included.
    packs.write_packs(packed, ORG, 40)
    assert packs.list_packs(packed, ORG) == [Pack(1, 32), Pack(33, 40)]
    assert pull_everything(packed, 300, 1000) == expected_pages
    assert dump(orgstate.load(packed, ORG)) == expected_state


def expected_pages(commits: list[dict], limit: int) -> list[dict]:
    """Pull's pages as docs/events.md describes them: whole commits, at most
    ``limit`` events a page, each event id once, at its first commit."""
    pages, seen, at = [], set(), 0
    while True:
        page, count = [], 0
        while at < len(commits) and count < limit:
            events = []
            for event in commits[at]["events"]:
                if event["id"] not in seen:
                    seen.add(event["id"])
                    events.append(event)
            if page and count + len(events) > limit:
                seen.difference_update(event["id"] for event in events)
                break
            page.append({**commits[at], "events": events})
            count += len(events)
            at += 1
        pages.append({"commits": page, "head": len(commits), "has_more": at < len(commits)})
        if at == len(commits):
            return pages


def test_a_cold_pull_of_a_long_log_over_moto_takes_a_few_requests(server_store):
    commits = make_org_log(2000, text_bytes=20, org="acme")
    for commit in commits:
        server_store.put(log_key("acme", commit["version"]), encoded(commit), if_absent=True)
    while packs.write_packs(server_store, "acme", len(commits)):
        pass
    before = server_store.counts()

    with serving(server_store) as api:
        pages, since = [], 0
        while True:
            response = api.pull("acme", since=since, limit=1000)
            assert response.status_code == 200, response.text
            pages.append(response.json())
            if not pages[-1]["has_more"]:
                break
            since = pages[-1]["commits"][-1]["version"]

    assert pages == expected_pages(commits, 1000)
    used = {kind: count - before[kind] for kind, count in server_store.counts().items()}
    # 301 commits in 16 pages: the packs of 128, 128, 32 and
    # 8, five newer commits (read once: kept for the pages), three listings.
    assert len(pages) == 16, used
    assert used == {"get": 4 + 5, "head": 0, "put": 0, "delete": 0, "list": 3}


def test_a_cycle_packs_the_ranges_its_commits_completed(tmp_path):
    store = CountingStore(LocalStore(str(tmp_path)))
    for n in range(7):
        save_links(store, "acme", [n])
    # Seven client commits and the cycle's two: versions 1..8 are packed.
    first = cycle.run_cycle(store, "acme", process=FakeProcessor(), holder="p", clock=FakeClock(),
                            emit=lambda line: None)
    assert first.version_after == 9
    assert packs.list_packs(store, "acme") == [Pack(1, 8)]
    assert first.record.timings_ms["pack"] >= 0

    save_links(store, "acme", [7])
    second = cycle.run_cycle(store, "acme", process=FakeProcessor(), holder="p", clock=FakeClock(),
                             emit=lambda line: None)
    assert second.version_after == 12
    # 9..12 complete no range of eight.
    assert packs.list_packs(store, "acme") == [Pack(1, 8)]
    assert dump(orgstate.load(store, "acme")) == dump(replay(store, "acme"))
