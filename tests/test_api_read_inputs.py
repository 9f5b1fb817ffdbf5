"""What a client can send to the read routes and pull: every odd input gets
its documented answer, never a 500, and the org keeps working after it.

The org is test_api_reads': saved through the push route and processed by
a real cycle. After each hostile request the reads answer and a new link
saved through the API is processed.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from chalicelib.cycle import run_cycle
from chalicelib.links.outcome import LinkOutcome, PageMetadata
from chalicelib.state import queries
# api: the org of test_api_reads (two links, processed), served over HTTP.
from tests.test_api_reads import AT, PAGES, api, describe, event, get, query  # noqa: F401

# The query of the report: a thousand rows of a megabyte each, a gigabyte
# of JSON without a byte cap.
GIGABYTE_QUERY = (
    "WITH big(b) AS MATERIALIZED (SELECT hex(zeroblob(500000))), "
    "c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 1000) SELECT b FROM big, c"
)


def describe_any(job) -> LinkOutcome:
    """describe, and a plain page for URLs it does not know."""
    if job.url in PAGES:
        return describe(job)
    return LinkOutcome(link_id=job.link_id, metadata=PageMetadata(title="A new page"), text="A new page.")


def cycle(store) -> str:
    return run_cycle(store, "acme", process=describe_any, holder="test", emit=lambda line: None).outcome


def assert_the_org_still_works(api) -> None:
    """Every read answers, and a link saved now is processed by a cycle."""
    assert [link["id"] for link in get(api, "/v1/links").json()["links"]][-1] == "l1"
    assert get(api, "/v1/links/l1").json()["status"] == "completed"
    assert get(api, "/v1/search", q="sourdough").json()["results"][0]["id"] == "l1"
    assert query(api, '{"sql": "SELECT 1"}').json()["rows"] == [[1]]
    assert get(api, "/v1/stats").status_code == 200
    assert api.pull().status_code == 200
    new = f"n{uuid.uuid4().hex[:8]}"
    api.push(
        {
            "batch_id": new,
            "client_id": "phone",
            "events": [event(new, "v1.LinkCreated", {"id": new, "url": f"https://example.com/new/{new}", "createdAt": AT})],
        }
    ).raise_for_status()
    assert cycle(api.store) == "done"
    assert get(api, f"/v1/links/{new}").json()["status"] == "completed"


def assert_refused(answer, status: int = 422) -> dict:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"code", "message", "details"}
    return error


def test_the_gigabyte_query_stops_at_the_byte_cap(api):
    answer = query(api, json.dumps({"sql": GIGABYTE_QUERY}))

    assert answer.status_code == 200
    assert len(answer.content) <= queries.MAX_RESULT_BYTES + 1000
    document = answer.json()
    assert (document["truncated"], document["truncated_reason"]) == (True, "max_bytes")
    # As many whole rows as fit: each is a megabyte of hex.
    assert len(document["rows"]) == queries.MAX_RESULT_BYTES // 1_000_006
    assert document["rows"][0] == ["0" * 1_000_000]
    assert_the_org_still_works(api)


def test_the_row_cap_says_so(api):
    answer = query(api, json.dumps({"sql": "WITH c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 1001) SELECT x FROM c"}))

    document = answer.json()
    assert (len(document["rows"]), document["truncated"], document["truncated_reason"]) == (1000, True, "max_rows")
    whole = query(api, '{"sql": "SELECT 1"}').json()
    assert (whole["truncated"], whole["truncated_reason"]) == (False, None)


@pytest.mark.parametrize(
    "sql, value",
    [
        ("SELECT x'00'", {"base64": "AA=="}),
        ("SELECT x''", {"base64": ""}),
        ("SELECT randomblob(0) IS NULL, x'fffe00'", {"base64": base64.b64encode(b"\xff\xfe\x00").decode()}),
        ("SELECT 1e999", "Infinity"),
        ("SELECT -1e999", "-Infinity"),
        ("SELECT char(0)", "\x00"),
    ],
)
def test_values_json_has_no_form_for_come_back_in_the_documented_one(api, sql, value):
    answer = query(api, json.dumps({"sql": sql}))

    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"][0][-1] == value
    assert_the_org_still_works(api)


@pytest.mark.parametrize("sql", ["SELECT CAST(x'ff' AS TEXT)", "SELECT char(55296)"])
def test_a_text_that_is_not_utf8_is_a_422(api, sql):
    error = assert_refused(query(api, json.dumps({"sql": sql})))

    assert error["code"] == "query_invalid_text"
    assert_the_org_still_works(api)


@pytest.mark.parametrize(
    "body",
    [
        b'{"sql": "SELECT 1\\u0000"}',
        b'{"sql": "SELECT \'\\u0000\'"}',
        b'{"sql": "\\u0000"}',
        b'{"sql": "SELECT \'\\ud800\'"}',
        b'{"sql": "SELECT 1 -- \\udfff"}',
    ],
)
def test_nul_and_lone_surrogates_in_sql_are_a_422(api, body):
    error = assert_refused(query(api, body))

    assert error["details"][0]["path"] == "sql"
    assert_the_org_still_works(api)


def test_sql_nested_too_deeply_as_json_is_a_400(api):
    assert_refused(query(api, b'{"sql": ' + b"[" * 9_000 + b"]" * 9_000 + b"}"), 400)
    assert_the_org_still_works(api)


PARAMETERS = [
    ("/v1/search", "q", {}),
    ("/v1/search", "limit", {"q": "bread"}),
    ("/v1/links", "status", {}),
    ("/v1/links", "tag", {}),
    ("/v1/links", "cursor", {}),
    ("/v1/links", "limit", {}),
    ("/v1/sync/pull", "since", {}),
    ("/v1/sync/pull", "limit", {}),
]


@pytest.mark.parametrize("path, name, others", PARAMETERS)
@pytest.mark.parametrize("value", ["\x00abc", "abc\x00", "\x00"])
def test_nul_in_any_query_parameter_is_a_422_naming_it(api, path, name, others, value):
    error = assert_refused(get(api, path, **others, **{name: value}))

    assert error["details"][0]["path"] == name
    assert_the_org_still_works(api)


@pytest.mark.parametrize("path, name, others", PARAMETERS)
def test_bytes_that_are_not_utf8_in_a_query_parameter_are_never_a_500(api, path, name, others):
    # Lone surrogates cannot be sent in a URL: their UTF-8-like bytes are
    # invalid, and arrive as replacement characters or not at all.
    url = f"{api.url}{path}?{name}=%ED%A0%80%FF" + "".join(f"&{k}={v}" for k, v in others.items())
    answer = api.http.get(url, headers=api.auth(), timeout=30)

    assert answer.status_code in (200, 422), answer.text
    assert_the_org_still_works(api)


@pytest.mark.parametrize("link_id", ["%00", "l1%00", "%ED%A0%80"])
def test_odd_link_ids_in_the_path_are_never_a_500(api, link_id):
    answer = api.http.get(f"{api.url}/v1/links/{link_id}", headers=api.auth(), timeout=30)

    assert answer.status_code in (404, 422), answer.text
    assert set(answer.json()["error"]) == {"code", "message", "details"}
    assert_the_org_still_works(api)


def test_search_for_any_text_without_nul_is_not_an_error(api):
    for q in ['"unbalanced AND (( NEAR*', "\ufffd", "é" * 1000, "\x01\x02", "a\tb\nc", PAGES["https://example.com/sourdough"][1]]:
        answer = get(api, "/v1/search", q=q)
        assert answer.status_code == 200, (q, answer.text)
