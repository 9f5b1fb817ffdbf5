"""``GET /v1/tags`` in pages: the state query's cursor, and what a client may send as one."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.state.queries import MAX_PAGE, list_tags
from statelog import Log, T0, event, state_at


def tag(tag_id, name, sort_order=None):
    args = {"id": tag_id, "name": name, "createdAt": T0}
    if sort_order is not None:
        args["sortOrder"] = sort_order
    return event("v1.TagCreated", args)


def every_page(db, limit):
    tags, cursor = [], None
    # A cursor that does not move on would page forever: stop past any honest end.
    for pages in range(1, 100):
        page = list_tags(db, cursor=cursor, limit=limit)
        tags += page.tags
        if page.next_cursor is None:
            return tags, pages
        cursor = page.next_cursor
    raise AssertionError("the pages never end")


TAGS = st.lists(
    st.tuples(st.text(min_size=1, max_size=6), st.none() | st.integers(-3, 3) | st.floats(-2, 2)),
    min_size=0, max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(tags=TAGS, limit=st.integers(1, 7))
def test_the_pages_together_are_the_whole_list_in_order(tags, limit):
    log = Log()
    log.client(*(tag(f"t{n}", name.replace("\x00", "x") or "x", sort) for n, (name, sort) in enumerate(tags)))
    db = state_at(log.commits)
    whole = list_tags(db, limit=MAX_PAGE).tags

    paged, pages = every_page(db, limit)

    assert paged == whole
    assert pages == max(1, -(-len(whole) // limit))


def test_a_page_starts_after_the_last_tag_seen_when_tags_change_between_pages():
    log = Log()
    log.client(tag("b", "bread"), tag("c", "cake"), tag("f", "fish"), tag("s", "soup", 1))
    db = state_at(log.commits)
    first = list_tags(db, limit=2)
    assert [t["id"] for t in first.tags] == ["s", "b"]

    log.client(tag("a", "apple"), tag("z", "zucchini"), event("v1.TagDeleted", {"id": "b", "deletedAt": T0}))
    db = state_at(log.commits)
    second = list_tags(db, cursor=first.next_cursor, limit=2)

    # "apple" sorts before the place the cursor holds: not seen on later pages.
    assert [t["id"] for t in second.tags] == ["c", "f"]
    third = list_tags(db, cursor=second.next_cursor, limit=2)
    assert [t["id"] for t in third.tags] == ["z"] and third.next_cursor is None


def cursor_of(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "", "not base64!", "%%%", "é", cursor_of([True, 0, "a"]), cursor_of({"a": 1}), cursor_of("x"),
    cursor_of([1, 0, "a", "b"]), cursor_of([True, True, "a", "b"]), cursor_of([True, 0, 1, "b"]),
    cursor_of([True, 0, "a", None]), cursor_of([True, "0", "a", "b"]),
    base64.urlsafe_b64encode(b'[true, 0, "\\ud800", "b"]').decode(),
    base64.urlsafe_b64encode(b"[" * 1500).decode(), "x" * 3000,
    base64.urlsafe_b64encode(b"\xff\xfe").decode(), "NaN", cursor_of([True, 1e400, "a", "b"]),
])
def test_anything_but_a_cursor_the_list_gave_is_a_value_error(cursor):
    db = state_at(Log().commits)
    with pytest.raises(ValueError, match="^cursor must be the next_cursor of a previous page$"):
        list_tags(db, cursor=cursor)


@settings(max_examples=200, deadline=None)
@given(cursor=st.text(max_size=80) | st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode()))
def test_no_cursor_a_client_sends_breaks_the_list(cursor):
    log = Log()
    log.client(tag("b", "bread"))
    db = state_at(log.commits)
    try:
        list_tags(db, cursor=cursor)
    except ValueError as error:
        assert str(error) == "cursor must be the next_cursor of a previous page"


@pytest.mark.parametrize("limit", [0, MAX_PAGE + 1, "5", 2.0, True])
def test_a_limit_outside_one_to_the_page_maximum_is_a_value_error(limit):
    with pytest.raises(ValueError, match="^limit must be an integer"):
        list_tags(state_at(Log().commits), limit=limit)
