"""The events behind the commands that change an org: add, tag, untag,
archive, unarchive, delete, restore, retry, accept, dismiss and settings.

Each function reads the view (to find the link, the tag, what is already
so) and returns the events to queue; nothing here writes. Ids are made
here, once, so a retried push carries the same ones.
"""

from __future__ import annotations

from datetime import datetime, timezone

import apsw
from pydantic import ValidationError

from chalicelib.events import OrgSettingsChangedArgs
from chalicelib.formats.screen import refusal
from chalicelib.links.addresses import AllowList
from chalicelib.links.urls import normalize_url
from linklog.outbox import new_id

MIN_PREFIX = 4


class WriteError(Exception):
    """The command cannot be done (no such link, an unsafe URL, …); nothing is queued."""


def now() -> str:
    """The current time as events carry it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(name: str, args: dict, at: str | None = None) -> dict:
    """One client event with a fresh id."""
    return {"id": new_id("e-"), "name": name, "args": args, "at": at or now()}


def find_link(view: apsw.Connection, ref: str) -> str:
    """The id of the link ``ref`` names: its id, an alias id, its URL, or a unique id prefix."""
    found = view.execute(
        "SELECT id FROM links WHERE id = ?1 UNION ALL SELECT link_id FROM link_aliases WHERE alias_id = ?1",
        (ref,),
    ).get
    if found:
        return found
    try:
        found = view.execute("SELECT id FROM links WHERE normalized_url = ?", (normalize_url(ref),)).get
    except ValueError:
        found = None
    if found:
        return found
    if len(ref) >= MIN_PREFIX:
        matches = view.execute(
            "SELECT id FROM links WHERE substr(id, 1, length(?1)) = ?1 LIMIT 2", (ref,)
        ).fetchall()
        if len(matches) == 1:
            return matches[0][0]
        if matches:
            raise WriteError(f"{ref!r} is the start of more than one link id; give more of it")
    raise WriteError(f"no link {ref!r} (give its id, an id prefix, or its URL)")


def find_tag(view: apsw.Connection, name: str) -> str | None:
    """The id of the live tag named ``name`` (case-insensitively), if any."""
    for tag_id, tag_name in view.execute("SELECT id, name FROM tags WHERE deleted_at IS NULL ORDER BY created_at, id"):
        if tag_name.casefold() == name.strip().casefold():
            return tag_id
    return None


def tag_events(view: apsw.Connection, link_id: str, names: list[str], at: str | None = None) -> list[dict]:
    """TagCreated for each unknown tag, LinkTagged for each tag the link lacks."""
    at = at or now()
    events = []
    created: dict[str, str] = {}
    for name in names:
        name = " ".join(name.split())
        if not name:
            continue
        tag_id = find_tag(view, name) or created.get(name.casefold())
        if tag_id is None:
            tag_id = new_id("t-")
            created[name.casefold()] = tag_id
            events.append(event("v1.TagCreated", {"id": tag_id, "name": name, "createdAt": at}, at))
        elif view.execute(
            "SELECT 1 FROM link_tags WHERE link_id = ? AND tag_id = ?", (link_id, tag_id)
        ).get:
            continue
        events.append(event("v1.LinkTagged", {"id": new_id("lt-"), "linkId": link_id, "tagId": tag_id, "createdAt": at}, at))
    return events


def add(view: apsw.Connection, url: str, tags: list[str], title: str | None, allow: AllowList) -> tuple[str, list[dict], bool]:
    """Save ``url``: (link id, events, whether it was already saved).

    A URL already saved (the same page, normalized) is not saved again; its
    link gets the tags (and comes back if it was deleted).
    """
    url = url.strip()
    reason = refusal(url, allow)
    if reason is not None:
        raise WriteError(f"cannot save {url!r}: {reason}")
    at = now()
    existing = view.execute("SELECT id, deleted_at FROM links WHERE normalized_url = ?", (normalize_url(url),)).fetchone()
    if existing is not None:
        link_id, deleted_at = existing
        events = [event("v1.LinkRestored", {"id": link_id}, at)] if deleted_at else []
        return link_id, events + tag_events(view, link_id, tags, at), True
    link_id = new_id("l-")
    args = {"id": link_id, "url": url, "createdAt": at}
    if title:
        args["title"] = title
    created = event("v1.LinkCreated", args, at)
    return link_id, [created, *tag_events(view, link_id, tags, at)], False


def untag(view: apsw.Connection, link_id: str, names: list[str]) -> list[dict]:
    """v2.LinkUntagged for each named tag the link has."""
    events = []
    for name in names:
        tag_id = find_tag(view, name)
        if tag_id is None:
            raise WriteError(f"no tag {name!r}")
        if view.execute("SELECT 1 FROM link_tags WHERE link_id = ? AND tag_id = ?", (link_id, tag_id)).get:
            events.append(event("v2.LinkUntagged", {"linkId": link_id, "tagId": tag_id}))
    return events


def link_event(view: apsw.Connection, name: str, link_id: str) -> list[dict]:
    """The one event of archive, unarchive, delete, restore and retry."""
    at = now()
    args = {
        "v1.LinkCompleted": {"id": link_id, "completedAt": at},
        "v1.LinkUncompleted": {"id": link_id},
        "v1.LinkDeleted": {"id": link_id, "deletedAt": at},
        "v1.LinkRestored": {"id": link_id},
        "v1.LinkReprocessRequested": {"linkId": link_id, "requestedAt": at},
    }[name]
    return [event(name, args, at)]


def suggestion_event(view: apsw.Connection, name: str, link_id: str, tag_name: str) -> list[dict]:
    """TagSuggestionAccepted or …Dismissed for the link's suggestion of ``tag_name``.

    A suggested new tag is accepted as the org's tag of that name, created
    first when there is none.
    """
    suggestions = view.execute(
        """SELECT s.id, tags.name, 0 FROM tag_suggestions AS s JOIN tags ON tags.id = s.tag_id WHERE s.link_id = ?1
           UNION ALL SELECT id, name, 1 FROM new_tag_suggestions WHERE link_id = ?1""",
        (link_id,),
    ).fetchall()
    for suggestion_id, suggested, new in suggestions:
        if suggested.casefold() != tag_name.strip().casefold():
            continue
        if not new or name != "v1.TagSuggestionAccepted":
            return [event(name, {"id": suggestion_id})]
        at = now()
        tag_id = find_tag(view, suggested)
        created = []
        if tag_id is None:
            tag_id = new_id("t-")
            created = [event("v1.TagCreated", {"id": tag_id, "name": suggested, "createdAt": at}, at)]
        return created + [event(name, {"id": suggestion_id, "tagId": tag_id}, at)]
    raise WriteError(f"the link has no suggestion of the tag {tag_name!r}")


def settings_event(changes: dict) -> list[dict]:
    """The v1.OrgSettingsChanged of ``changes`` (argument names as the event
    has them), checked as the server will check it."""
    try:
        OrgSettingsChangedArgs.model_validate(changes)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in error.errors())
        raise WriteError(problems) from None
    return [event("v1.OrgSettingsChanged", changes)]
