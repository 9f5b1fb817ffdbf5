"""Batch markers: knowing a push is new without reading the log (issue 9).

A client may push the same batch again (its answer was lost), and the
retry must not commit twice. The log cannot say cheaply whether it holds a
batch: commits are keyed by version. So before committing, a push claims
its batch with a put-if-absent of a small marker object,
``orgs/{org}/batches/{sha256 of client and batch id}``. If the put lands
the batch is new, and it is committed without reading anyone's commits; if
the marker is already there, the push is a retry (or races one) and looks
for the batch in the log the old way (``sync.LogIndex``).

The key is a hash, so no client-chosen text ever reaches a key, and it has
no ``.json`` suffix, so the bucket's notification (which wakes the
processor for new commits) never fires for it.
"""

from __future__ import annotations

import hashlib
import json

from chalicelib.keys import org_prefix
from chalicelib.store.base import Conflict, ObjectStore, PreconditionFailed, Transient

# S3Store's client already retries each request; these are tries of ours on
# top, for a store whose answers are lost (FaultyStore, or a retry's 412).
CLAIM_TRIES = 3


def marker_prefix(org: str) -> str:
    return f"{org_prefix(org)}batches/"


def marker_key(org: str, client: str, batch_id: str) -> str:
    """Where the marker of ``client``'s batch ``batch_id`` lives in ``org``.

    Both parts are hashed as one JSON array, so no two (client, batch id)
    pairs share a key however they are spelled (a separator character
    could appear in either).
    """
    named = json.dumps([client, batch_id]).encode("utf-8")
    return f"{marker_prefix(org)}{hashlib.sha256(named).hexdigest()}"


def claim(store: ObjectStore, org: str, client: str, batch_id: str) -> bool:
    """Put the batch's marker if absent: True when this push is the first.

    False when the marker was there (412): the batch may have been pushed
    before, or our own earlier try of this put landed with its answer lost;
    the caller looks for the batch in the log, which is right either way.
    A put that failed (Transient, or 409 when another push of the batch
    writes the marker at the same moment) is tried again: no batch may be
    committed before its marker is known to be there, or a retry of it
    would claim the marker and commit the batch a second time. Raises
    Transient when the marker's fate stays unknown after ``CLAIM_TRIES``.
    """
    key = marker_key(org, client, batch_id)
    body = json.dumps({"client": client, "batch_id": batch_id}).encode("utf-8")
    for _ in range(CLAIM_TRIES):
        try:
            store.put(key, body, if_absent=True)
            return True
        except PreconditionFailed:
            return False
        except (Conflict, Transient) as error:
            failure = error
    raise Transient(key, f"the marker is unknown after {CLAIM_TRIES} tries: {failure}")
