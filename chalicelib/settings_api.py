"""``GET`` and ``PUT /v1/settings``: an org's settings (chalicelib.orgsettings).

Reading shows the state's settings, defaults filled in. Changing them is a
push of one ``v1.OrgSettingsChanged`` made from the body, so a change is
in the log like any other and a client may as well push the event itself.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Callable

from pydantic import ValidationError

from chalicelib import reads, sync
from chalicelib.api_errors import ApiError
from chalicelib.events import OrgSettingsChangedArgs, invalid_fields
from chalicelib.jsonbody import parse_json_body
from chalicelib.state.queries import org_settings
from chalicelib.state.times import format_time
from chalicelib.store.base import ObjectStore

# Three settings fit in far less; the bound keeps a junk body cheap to refuse.
MAX_SETTINGS_BODY = 10_000
# The author id of the commits this route writes.
CLIENT_ID = "api-settings"


def show_settings(cache: reads.ReadCache, store: ObjectStore, org: str) -> dict:
    """``GET /v1/settings``: ``{"settings": {...}, "version": N}``."""
    with cache.state(store, org) as state:
        return {"settings": org_settings(state.db).as_json(), "version": state.version}


def change_settings(
    cache: reads.ReadCache,
    store: ObjectStore,
    org: str,
    body: bytes,
    *,
    now: datetime,
    notify: Callable[[str], None],
    index: sync.LogIndex,
) -> dict:
    """``PUT /v1/settings`` with the settings to change (those left out keep
    their value); answers as GET does, at the version committed or later.

    Raises ApiError: 413 for a body over 10,000 bytes, 400 for one that is
    not JSON, 422 naming each bad field (nothing is written then).
    """
    if len(body) > MAX_SETTINGS_BODY:
        raise ApiError(413, f"the body is larger than {MAX_SETTINGS_BODY} bytes")
    document = parse_json_body(body)
    try:
        OrgSettingsChangedArgs.model_validate(document)
    except ValidationError as error:
        raise invalid_fields(error) from None
    at = format_time(now)
    event = {"id": uuid.uuid4().hex, "name": "v1.OrgSettingsChanged", "args": document, "at": at}
    push = {"batch_id": uuid.uuid4().hex, "client_id": CLIENT_ID, "events": [event]}
    committed = sync.push(store, org, json.dumps(push).encode("utf-8"), notify=notify, index=index)
    answer = show_settings(cache, store, org)
    return {**answer, "version": max(answer["version"], committed["version"])}
