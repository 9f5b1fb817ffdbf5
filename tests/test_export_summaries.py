"""Exports say who wrote each summary: the model, and the summarizer that
failed and why when the extractive one stood in (``v1.LinkSummarized``'s
``model``, ``fallbackFrom``, ``fallbackReason``).

Both exports are checked: the API's (``GET /v1/export``, written from the
org's state) and the command's (``linklog export``, from the replica), in
linklog JSON and CSV. Netscape HTML carries no summary at all, so no model.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from chalicelib import exports
from chalicelib.formats import csv_export, read_links
from chalicelib.state.queries import get_link
from linklog import exporter
from statelog import Log, created, event, state_at

MODEL = "bedrock:anthropic.claude-3-haiku-20240307-v1:0"
FIELDS = ("summary", "summary_model", "summary_fallback_from", "summary_fallback_reason")
EXPECTED = {
    "https://example.com/offline": ("Offline words.", "extractive", None, None),
    "https://example.com/hosted": ("Hosted words.", MODEL, None, None),
    "https://example.com/fell-back": ("Offline again.", "extractive", MODEL, "no answer within 1 s"),
    "https://example.com/unprocessed": (None, None, None, None),
}


def summarized(link_id: str, summary: str, model: str, **fallback) -> dict:
    return event("v1.LinkSummarized", {"linkId": link_id, "summary": summary, "model": model, **fallback})


@pytest.fixture
def db():
    log = Log()
    log.client(*(created(f"l{n}", url) for n, url in enumerate(EXPECTED)))
    log.processor(
        summarized("l0", "Offline words.", "extractive"),
        summarized("l1", "Hosted words.", MODEL),
        summarized("l2", "Offline again.", "extractive", fallbackFrom=MODEL, fallbackReason="no answer within 1 s"),
    )
    return state_at(log.commits)


def api_export(local_store, db, format: str) -> str:
    return exports.export_links(local_store, "acme", db, format).body.decode("utf-8")


def cli_export(db) -> list[dict]:
    return list(exporter.links(db))


def by_url(links: list[dict]) -> dict[str, tuple]:
    return {link["url"]: tuple(link[name] or None for name in FIELDS) for link in links}


def test_the_api_json_export_names_the_model_and_fallback(local_store, db):
    document = json.loads(api_export(local_store, db, "json"))

    assert by_url(document["links"]) == EXPECTED


def test_the_command_json_export_names_the_model_and_fallback(db):
    links = cli_export(db)

    assert by_url(links) == EXPECTED
    # The same names and values as the state's reads (GET /v1/links/{id}).
    assert all(link[name] == get_link(db, link["id"])[name] for link in links for name in FIELDS)


def test_the_csv_export_has_a_column_for_each(local_store, db):
    rows = list(csv.DictReader(io.StringIO(api_export(local_store, db, "csv"))))

    assert by_url(rows) == EXPECTED
    table = io.StringIO()
    csv_export.write(table, cli_export(db))
    assert by_url(list(csv.DictReader(io.StringIO(table.getvalue())))) == EXPECTED


def test_a_json_export_with_the_summary_fields_imports_as_before(local_store, db):
    data = api_export(local_store, db, "json").encode("utf-8")

    file_format, links = read_links(data)

    # An import saves the links (URL, title, tags, read, saved-at); the
    # importing org's processor writes its own summaries (docs/decisions.md).
    assert file_format == "linklog"
    assert [link.url for link in links] == list(reversed(EXPECTED))


def test_netscape_carries_no_summary(local_store, db):
    html = api_export(local_store, db, "netscape")

    assert "Offline again." not in html and MODEL not in html
