"""The invariant of DESIGN §5: restoring any snapshot and applying the rest
of the log gives exactly the state a full replay gives."""

import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import snapshots
from chalicelib.state import apply_commits, new_database
from chalicelib.store import LocalStore
from statelog import dump, state_at

LINK_IDS = ["l0", "l1", "l2", "l3"]
URLS = [
    "https://example.com/a",
    "https://EXAMPLE.com/a?utm_source=mail",
    "https://example.com/b#part",
    "https://example.com:443/b",
    "https://bücher.de/",
    "ftp://example.com/file",
]
TAG_IDS = ["t0", "t1", "t2"]
SUGGESTION_IDS = ["s0", "s1", "s2"]
TIMES = ["2026-11-23T20:00:00Z", "2026-11-23T20:07:30+01:00", "2026-11-24T09:00:00", "someday"]
WORDS = ["bread", "rye", "train", "ünïcode", "salt", "caraway", "the"]

links = st.sampled_from(LINK_IDS)
tags = st.sampled_from(TAG_IDS)
times = st.sampled_from(TIMES)
prose = st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join)


def args(event_name, /, **fields):
    return st.fixed_dictionaries(fields).map(lambda values: (event_name, values))


creates = args("v1.LinkCreated", id=links, url=st.sampled_from(URLS), createdAt=times)

client_events = st.one_of(
    creates,
    args("v1.LinkDeleted", id=links, deletedAt=times),
    args("v1.LinkRestored", id=links),
    args("v1.LinkCompleted", id=links, completedAt=times),
    args("v1.LinkUncompleted", id=links),
    args("v1.LinkReprocessRequested", linkId=links, requestedAt=times),
    args("v1.TagCreated", id=tags, name=st.sampled_from(WORDS), createdAt=times,
         sortOrder=st.one_of(st.none(), st.integers(0, 3))),
    args("v1.TagRenamed", id=tags, name=st.sampled_from(WORDS)),
    args("v1.TagDeleted", id=tags, deletedAt=times),
    args("v1.LinkTagged", id=st.just("lt"), linkId=links, tagId=tags, createdAt=times),
    args("v2.LinkUntagged", linkId=links, tagId=tags),
    args("v1.TagSuggestionAccepted", id=st.sampled_from(SUGGESTION_IDS)),
    args("v1.TagSuggestionDismissed", id=st.sampled_from(SUGGESTION_IDS)),
    args("v1.TagSuggestionAccepted", id=st.sampled_from(SUGGESTION_IDS), tagId=tags),
    args("v1.OrgSettingsChanged", summarizer=st.sampled_from(["extractive", "bedrock:m.x-v1:0"]),
         tagSuggestions=st.sampled_from(["existing", "existing+new"])),
    args("v7.SomethingNew", id=links),
    args("v1.LinkDeleted", id=st.integers()),
)

processor_events = st.one_of(
    args("v1.LinkProcessingStarted", linkId=links, attempt=st.integers(0, 3), startedAt=times),
    args("v1.LinkMetadataFetched", linkId=links, title=st.one_of(st.none(), prose),
         description=st.one_of(st.none(), prose)),
    args("v1.LinkContentExtracted", linkId=links, text=prose, wordCount=st.integers(0, 6),
         readingMinutes=st.integers(0, 2)),
    args("v1.LinkSummarized", linkId=links, summary=prose, model=st.just("extractive")),
    args("v1.TagSuggested", id=st.sampled_from(SUGGESTION_IDS), linkId=links, tagId=tags,
         score=st.sampled_from([0.0, 0.5, 1.0, 1.5])),
    args("v1.NewTagSuggested", id=st.sampled_from(SUGGESTION_IDS), linkId=links,
         name=st.sampled_from(WORDS), score=st.floats(0, 1)),
    args("v1.LinkProcessingCompleted", linkId=links, completedAt=times),
    args("v1.LinkProcessingFailed", linkId=links, code=st.just("timeout"), message=st.just("slow"),
         retryable=st.booleans(), retryAfter=st.one_of(st.none(), st.integers(0, 900)),
         failedAt=times),
    args("v1.LinkProcessingCancelled", linkId=links, reason=st.just("deleted")),
)


def _emit(emitted: list, name: str, values: dict, at: str) -> dict:
    made = {"id": f"e{len(emitted)}", "name": name, "args": values, "at": at}
    emitted.append(made)
    return made


@st.composite
def org_logs(draw):
    """Commits of one org: mostly fitting events, with repeats of earlier
    event ids, unknown names, malformed args, processor events in client
    commits and processor commits from older epochs mixed in."""
    commits, emitted = [], []
    for version in range(1, draw(st.integers(1, 8)) + 1):
        # The first commit saves links, so later events mostly find them.
        from_processor = version > 1 and draw(st.booleans())
        events = []
        if version == 1:
            events.extend(_emit(emitted, name, values, draw(times))
                          for name, values in draw(st.lists(creates, min_size=1, max_size=4)))
        for _ in range(draw(st.integers(0, 6))):
            if emitted and draw(st.integers(0, 7)) == 0:
                events.append(draw(st.sampled_from(emitted)))
                continue
            usual, odd = (processor_events, client_events) if from_processor else (client_events, processor_events)
            name, values = draw(odd if draw(st.integers(0, 9)) == 0 else usual)
            events.append(_emit(emitted, name, values, draw(times)))
        author = ({"kind": "processor", "id": "p", "epoch": draw(st.integers(0, 3))}
                  if from_processor else {"kind": "client", "id": "d"})
        commits.append({"version": version, "org": "acme", "batch_id": f"b{draw(st.integers(0, 3))}",
                        "committed_at": "2026-11-23T20:00:00Z", "author": author, "events": events})
    return commits


@settings(max_examples=50, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(org_logs())
def test_any_snapshot_plus_the_rest_equals_a_full_replay(commits):
    expected = dump(state_at(commits))
    for k in range(len(commits) + 1):
        body = snapshots.encode(state_at(commits[:k]))
        db = snapshots.decode(body, k)
        apply_commits(db, commits[k:])
        assert dump(db) == expected, f"snapshot after commit {k}"


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(org_logs())
def test_applying_commit_by_commit_equals_applying_them_at_once(commits):
    one_by_one = new_database()
    for commit in commits:
        apply_commits(one_by_one, [commit])
    assert dump(one_by_one) == dump(state_at(commits))


@st.composite
def chain_plans(draw):
    """An org's log and the cycles a processor ran over it: the version each
    cycle reached, whether it compacted, and how its object was then damaged."""
    commits = draw(org_logs())
    ends = sorted(draw(st.sets(st.integers(1, len(commits)), min_size=1)))
    steps = [(end, draw(st.booleans()), draw(st.sampled_from([None, None, "flip", "cut", "delete"])))
             for end in ends]
    return commits, steps


def _damage(store, key: str, how: str) -> None:
    body = store.get(key).body
    store.delete(key)
    if how == "flip":
        store.put(key, body[:-7] + bytes([body[-7] ^ 0x40]) + body[-6:])
    elif how == "cut":
        store.put(key, body[: len(body) // 2])


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(chain_plans())
def test_any_chain_of_deltas_plus_the_rest_equals_a_full_replay(plan):
    commits, steps = plan
    expected = dump(state_at(commits))
    damaged = False
    with tempfile.TemporaryDirectory() as directory:
        store = LocalStore(directory)
        for end, compact, damage in steps:
            restored = snapshots.restore_latest(store, "acme", with_digests=True)
            apply_commits(restored.db, commits[restored.version:end])
            written = snapshots.write_next(
                store, "acme", restored.db, restored.chain, restored.digests,
                snapshots.list_objects(store, "acme"),
                max_chain=0 if compact else 1000, max_fraction=1000.0,
            )
            if restored.digests is not None:
                restored.digests.close()
            if not damaged and restored.chain is not None:
                assert written.kind == ("full" if compact else "delta")
            if damage and written.kind == "delta":
                _damage(store, written.key, damage)
                damaged = True
            again = snapshots.restore_latest(store, "acme")
            if not damaged:
                assert again.version == end
            apply_commits(again.db, commits[again.version:])
            assert dump(again.db) == expected, f"restored at {again.version} after a cycle to {end}"
