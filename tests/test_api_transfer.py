"""Import upload and export download through the API, on both backends.

Files go up as a browser sends them (the raw bytes) and come back as the
browser gets them; a large export on S3 comes back as a presigned link that
is fetched over real HTTP from moto's server.
"""

from __future__ import annotations

import io
import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import exports, imports, sync
from chalicelib.api_errors import ApiError
from chalicelib.links.addresses import AllowList
from chalicelib.state.schema import new_database
from chalicelib.formats import netscape
from chalicelib.keys import log_prefix
from tests.api_server import serving

AT = "2026-11-23T20:00:00Z"

NETSCAPE = """<!DOCTYPE NETSCAPE-Bookmark-file-1>
<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=UTF-8">
<TITLE>Bookmarks</TITLE><H1>Bookmarks</H1>
<DL><p>
<DT><A HREF="https://example.com/bread" ADD_DATE="1700000000" TAGS="Baking,food">Bread &amp; butter</A>
<DT><A HREF="https://example.com/boats" ADD_DATE="1700000100" TAGS="boats" TOREAD="0">Boats</A>
<DT><A HREF="https://EXAMPLE.com/bread?utm_source=x" TAGS="more">Bread again</A>
<DT><A HREF="javascript:alert(1)">Script</A>
<DT><A HREF="http://127.0.0.1:9/admin">Loopback</A>
<DT><A HREF="https://example.com/already">Saved before</A>
</DL><p>
"""


def netscape_file(count: int) -> bytes:
    rows = "\n".join(
        f'<DT><A HREF="https://example.org/page/{n}" ADD_DATE="1700000000" TAGS="t{n % 7}">Page {n}</A>'
        for n in range(count)
    )
    return f"<!DOCTYPE NETSCAPE-Bookmark-file-1>\n<DL><p>\n{rows}\n</DL><p>\n".encode()


@pytest.fixture(params=["local", "server"])
def api(request):
    store = request.getfixturevalue(f"{request.param}_store")
    with serving(store) as running:
        running.store = store
        yield running


def upload(api, data: bytes, **params) -> requests.Response:
    return api.http.post(
        f"{api.url}/v1/import",
        params=params,
        data=data,
        headers={"Content-Type": "application/octet-stream", **api.auth()},
        timeout=120,
    )


def get(api, path: str, **params) -> requests.Response:
    return api.http.get(f"{api.url}{path}", params=params, headers=api.auth(), timeout=120)


def log_versions(api) -> int:
    return len(api.store.list(log_prefix("acme")))


def test_a_netscape_file_is_imported_with_tags_and_read_state(api):
    api.push({
        "batch_id": "b0", "client_id": "phone",
        "events": [{"id": "e0", "name": "v1.LinkCreated", "at": AT,
                    "args": {"id": "l0", "url": "https://example.com/already", "createdAt": AT}}],
    }).raise_for_status()

    answer = upload(api, NETSCAPE.encode())

    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["format"], result["found"], result["saved"]) == ("netscape", 6, 2)
    # The utm_ copy of /bread and the page saved before.
    assert result["duplicates"] == 2
    assert result["refused"] == 2
    assert {refusal["url"] for refusal in result["refusals"]} == {"javascript:alert(1)", "http://127.0.0.1:9/admin"}
    links = {link["url"]: link for link in get(api, "/v1/links").json()["links"]}
    assert set(links) == {"https://example.com/bread", "https://example.com/boats", "https://example.com/already"}
    assert sorted(tag["name"] for tag in links["https://example.com/bread"]["tags"]) == ["Baking", "food", "more"]
    assert links["https://example.com/bread"]["created_at"].startswith("2023-11-14")
    # TOREAD="0" means it was read: archived.
    archived = get(api, "/v1/links", archived="true").json()["links"]
    assert [link["url"] for link in archived] == ["https://example.com/boats"]
    assert {tag["name"]: tag["count"] for tag in get(api, "/v1/tags").json()["tags"]} == {
        "Baking": 1, "boats": 1, "food": 1, "more": 1,
    }


def test_uploading_the_same_file_again_saves_nothing_more(api):
    assert upload(api, NETSCAPE.encode()).status_code == 200
    versions = log_versions(api)

    again = upload(api, NETSCAPE.encode()).json()

    assert again["saved"] == 0
    assert log_versions(api) == versions


@pytest.mark.parametrize(
    "data",
    [b"", b"   \n", b"\xff\xfe\x00garbage", b'{"not": "an export"}', b"name,count\nx,1\n",
     b"<!DOCTYPE NETSCAPE-Bookmark-file-1><p>no list</p>"],
)
def test_a_file_that_is_no_bookmark_file_is_a_422_and_saves_nothing(api, data):
    answer = upload(api, data)

    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["path"] == "file"
    assert log_versions(api) == 0


def test_a_file_over_10_mb_is_a_413(api):
    answer = upload(api, b"https://example.com/\n" * 600_000)

    assert answer.status_code == 413
    assert log_versions(api) == 0


def test_an_unknown_format_is_a_422(api):
    assert upload(api, NETSCAPE.encode(), format="word").status_code == 422
    assert get(api, "/v1/export", format="pdf").status_code == 422


def test_an_export_reads_back_as_the_links_it_holds(api):
    upload(api, NETSCAPE.encode()).raise_for_status()

    answer = get(api, "/v1/export", format="netscape")

    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"].startswith('attachment; filename="linklog-acme-')
    back = netscape.parse(answer.text)
    assert {(link.url, link.tags, link.read) for link in back} == {
        ("https://example.com/bread", ("Baking", "food", "more"), False),
        ("https://example.com/boats", ("boats",), True),
        ("https://example.com/already", (), False),
    }
    as_json = get(api, "/v1/export", format="json").json()
    assert as_json["format"] == "linklog" and len(as_json["links"]) == 3
    assert get(api, "/v1/export", format="csv").text.startswith("url,title,tags")


def test_ten_thousand_links_go_in_and_come_out(api):
    answer = upload(api, netscape_file(10_000))

    assert answer.status_code == 200, answer.text
    assert answer.json()["saved"] == 10_000
    exported = get(api, "/v1/export", format="netscape")
    assert len(netscape.parse(exported.text)) == 10_000
    assert len(exported.content) < 6 * 1024 * 1024


def export_after_upload(store, format: str, inline_limit: int) -> exports.Export:
    """Import 50 links through the API, then export them with a chosen inline limit."""
    with serving(store) as running:
        running.store = store
        upload(running, netscape_file(50)).raise_for_status()
        from app import services

        with services().read_cache.state(store, "acme") as state:
            return exports.export_links(store, "acme", state.db, format, inline_limit=inline_limit)


def test_a_large_export_on_s3_is_a_presigned_link(server_store):
    export = export_after_upload(server_store, "json", inline_limit=1000)

    assert export.body is None
    downloaded = requests.get(export.download_url, timeout=30)
    assert downloaded.status_code == 200
    assert 'filename="linklog-acme-' in downloaded.headers["Content-Disposition"]
    assert len(json.load(io.BytesIO(downloaded.content))["links"]) == 50


def test_the_local_store_answers_any_export_directly(local_store):
    export = export_after_upload(local_store, "csv", inline_limit=10)

    assert export.download_url is None
    assert export.body.decode().count("\n") == 51


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.text(max_size=400).map(str.encode),
        st.lists(st.sampled_from(["<DT><A HREF=\"", "https://a.example/", "\"", ">", "<DL>", "TAGS=\"",
                                  "<!DOCTYPE NETSCAPE-Bookmark-file-1>", "{", "}", "[", "]", "\"url\":",
                                  ",", "\n", "javascript:", "%00", "\u202e", "http://[::1]/"]),
                 max_size=40).map(lambda parts: "".join(parts).encode()),
    )
)
def test_no_file_breaks_an_import(local_store, data):
    # Whatever the bytes, the answer is a summary or a 4xx refusal, and a
    # refusal writes nothing.
    index = sync.LogIndex()
    before = len(local_store.list(log_prefix("acme")))
    try:
        result = imports.import_file(
            local_store, "acme", new_database(), data, format=None, allow=AllowList(),
            notify=lambda org: None, index=index,
        )
    except ApiError as error:
        assert error.status in (413, 422)
        assert len(local_store.list(log_prefix("acme"))) == before
    else:
        assert result["saved"] + result["refused"] + result["duplicates"] == result["found"]
