"""The import plan both importers share: ids from the file, batches within the
push limits whatever the org holds, and what the org already has left alone."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.events import MAX_BODY_BYTES, MAX_EVENTS_PER_PUSH, parse_push
from chalicelib.formats import ImportedLink
from chalicelib.formats.plan import MAX_TAGS, plan_import, tag_id_for
from chalicelib.formats.screen import screen
from chalicelib.state.schema import new_database
from statelog import Log, created, event, state_at

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
SAVED = datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)


def bookmarks(count: int, tags=("Baking",), title="Page", read=False) -> list[ImportedLink]:
    return [
        ImportedLink(position=n, url=f"https://example.org/page/{n}", title=f"{title} {n}",
                     tags=tuple(tags), saved_at=SAVED, read=read)
        for n in range(count)
    ]


def plan(links, org=None, data=b"the file", **options):
    return plan_import(data, "netscape", len(links), screen(links), org or new_database(), NOW, **options)


def pushed_body(batch) -> bytes:
    return json.dumps({"batch_id": batch.batch_id, "client_id": "import", "events": batch.events}).encode()


def test_a_bookmark_becomes_created_tagged_and_read_events_with_ids_from_the_file():
    result = plan(bookmarks(1, tags=("Baking", "food"), read=True))

    [batch] = result.batches
    assert [e["name"] for e in batch.events] == [
        "v1.LinkCreated", "v1.TagCreated", "v1.LinkTagged", "v1.TagCreated", "v1.LinkTagged", "v1.LinkCompleted",
    ]
    link = batch.events[0]["args"]
    assert link["id"].startswith("l-") and link["source"] == "import:netscape" and link["title"] == "Page 0"
    assert link["createdAt"] == "2023-11-14T22:13:20.000000Z"
    assert batch.events[1]["args"]["id"] == tag_id_for("baking")
    assert batch.batch_id == f"imp-{result.file_hash}-00000"
    assert (result.queued_links, result.tags_created) == (1, 2)
    # The same file planned again (by the other importer, say): the same events.
    assert plan(bookmarks(1, tags=("Baking", "food"), read=True)).batches == result.batches
    assert plan(bookmarks(1, tags=("Baking", "food"), read=True), data=b"another file").batches != result.batches


def test_a_bookmark_without_a_save_time_is_saved_now():
    [link] = bookmarks(1)
    [batch] = plan([ImportedLink(position=0, url=link.url)]).batches
    assert batch.events[0]["args"]["createdAt"] == "2026-12-01T12:00:00.000000Z"


def test_pages_the_org_has_are_left_alone_and_its_tag_names_reused():
    links = bookmarks(3, tags=("baking", "New one"))
    first = plan(links)
    log = Log()
    # The first bookmark came with this file before; the second was saved another way.
    log.client(*first.batches[0].events[:5])
    log.client(created("other-id", "https://EXAMPLE.org/page/1?utm_source=x"),
               event("v1.TagCreated", {"id": "mine", "name": "BAKING", "createdAt": "2026-01-01T00:00:00Z"}))
    org = state_at(log.commits)

    result = plan(links, org=org)

    assert (result.earlier_run, result.already_there, result.queued_links) == (1, 1, 1)
    events = result.batches[0].events
    assert [e["args"]["url"] for e in events if e["name"] == "v1.LinkCreated"] == ["https://example.org/page/2"]
    assert {e["args"]["tagId"] for e in events if e["name"] == "v1.LinkTagged"} == {tag_id_for("baking"), tag_id_for("new one")}
    assert result.tags_created == 0


def test_a_tag_name_the_org_has_under_another_id_is_reused():
    log = Log()
    log.client(event("v1.TagCreated", {"id": "mine", "name": "BAKING", "createdAt": "2026-01-01T00:00:00Z"}))
    result = plan(bookmarks(2, tags=("Baking",)), org=state_at(log.commits))
    tagged = [e["args"]["tagId"] for e in result.batches[0].events if e["name"] == "v1.LinkTagged"]
    assert tagged == ["mine", "mine"] and result.tags_created == 0


@pytest.mark.parametrize("change", [
    event("v1.TagDeleted", {"id": tag_id_for("baking"), "deletedAt": "2026-01-02T00:00:00Z"}),
    event("v1.TagRenamed", {"id": tag_id_for("baking"), "name": "Bread"}),
])
def test_a_tag_the_user_deleted_or_renamed_is_made_again_under_a_new_id(change):
    log = Log()
    log.client(event("v1.TagCreated", {"id": tag_id_for("baking"), "name": "Baking", "createdAt": "2026-01-01T00:00:00Z"}))
    log.client(change)
    result = plan(bookmarks(2), org=state_at(log.commits))

    [made] = [e["args"] for e in result.batches[0].events if e["name"] == "v1.TagCreated"]
    assert made["name"] == "Baking" and made["id"] != tag_id_for("baking")
    assert {e["args"]["tagId"] for e in result.batches[0].events if e["name"] == "v1.LinkTagged"} == {made["id"]}


def test_batches_already_sent_are_counted_and_left_out():
    links = bookmarks(700)
    every = plan(links)
    assert len(every.batches) > 2
    skipped = every.batches[1].batch_id

    result = plan(links, sent=lambda batch_id: batch_id == skipped)

    assert result.skipped_batches == 1
    assert [b.batch_id for b in result.batches] == [b.batch_id for b in every.batches if b.batch_id != skipped]


def test_a_bookmark_with_more_tags_than_a_push_carries_is_refused_alone():
    many = tuple(f"tag {n}" for n in range(MAX_TAGS + 1))
    links = [*bookmarks(2), ImportedLink(position=2, url="https://example.org/many", tags=many)]

    result = plan(links)

    assert [item.link.url for item in result.refused] == ["https://example.org/many"]
    assert result.refused[0].reason == f"{MAX_TAGS + 1} tags; at most {MAX_TAGS} fit in one push"
    assert result.queued_links == 2
    # One tag fewer fits (alone).
    assert plan([ImportedLink(position=0, url="https://example.org/many", tags=many[:-1])]).queued_links == 1


def test_the_batches_name_the_same_bookmarks_whatever_the_org_holds():
    links = bookmarks(700, tags=("Baking", "food"))
    fresh = plan(links)
    log = Log()
    log.client(*(e for batch in fresh.batches[:2] for e in batch.events))
    result = plan(links, org=state_at(log.commits))

    def positions(batches):
        return {b.batch_id: {e["id"].split("-")[1] for e in b.events if e["name"] == "v1.LinkCreated"} for b in batches}

    assert positions(result.batches) == {k: v for k, v in positions(fresh.batches).items() if k in positions(result.batches)}
    assert result.earlier_run == sum(b.links for b in fresh.batches[:2]) and result.queued_links == 700 - result.earlier_run


def test_long_titles_and_urls_are_cut_into_batches_by_bytes():
    links = [ImportedLink(position=n, url=f"https://example.org/{n}/" + "x" * 2000, title="é" * 2000)
             for n in range(150)]

    result = plan(links)

    assert result.queued_links == 150 and len(result.batches) > 1
    for batch in result.batches:
        assert len(batch.events) < MAX_EVENTS_PER_PUSH and len(pushed_body(batch)) <= MAX_BODY_BYTES
    # Full: the next bookmark would not have fitted.
    assert len(pushed_body(result.batches[0])) > MAX_BODY_BYTES - 64 * 1024 - 15_000


SHAPES = st.fixed_dictionaries({
    "title": st.sampled_from([None, "short", "é" * 2000, "☕ " * 1000]),
    "tags": st.sampled_from([0, 1, 3, 40, MAX_TAGS]),
    "long_tags": st.booleans(),
    "read": st.booleans(),
    "long_url": st.booleans(),
})


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes=st.lists(SHAPES, min_size=1, max_size=40), org_tags=st.booleans())
def test_every_batch_is_a_valid_push_whatever_the_file_and_the_org(shapes, org_tags):
    links = []
    for n, shape in enumerate(shapes):
        url = f"https://example.org/{n}/" + ("x" * 2000 if shape["long_url"] else "")
        tags = tuple((f"{n}-{i}-" + "ü" * 190) if shape["long_tags"] else f"tag {i % 7}" for i in range(shape["tags"]))
        links.append(ImportedLink(position=n, url=url, title=shape["title"], tags=tags, read=shape["read"]))
    org = new_database()
    if org_tags:
        # The org's own tag ids are as long as ids may be.
        log = Log()
        log.client(*(event("v1.TagCreated", {"id": f"{i}".rjust(64, "x"), "name": f"TAG {i}", "createdAt": "2026-01-01T00:00:00Z"})
                     for i in range(7)))
        org = state_at(log.commits)

    result = plan(links, org=org)

    assert result.queued_links == len(links) and not result.refused
    seen: set[str] = set()
    for batch in result.batches:
        body = pushed_body(batch)
        assert len(batch.events) <= MAX_EVENTS_PER_PUSH and len(body) <= MAX_BODY_BYTES
        assert parse_push(body).batch_id == batch.batch_id
        ids = {e["id"] for e in batch.events}
        assert len(ids) == len(batch.events) and not ids & seen
        seen |= ids
