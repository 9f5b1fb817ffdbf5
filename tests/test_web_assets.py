"""The web app's files as the API serves them: no token needed, nothing else reachable."""

from __future__ import annotations

import pytest

from tests.api_server import serving


@pytest.fixture
def api(local_store):
    with serving(local_store) as running:
        yield running


def test_the_favicon_is_an_icon_not_a_403(api):
    answer = api.http.get(f"{api.url}/favicon.ico", timeout=30)

    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "image/svg+xml"
    assert answer.text.lstrip().startswith("<svg")


def test_the_manifest_names_icons_and_a_share_target_that_saves(api):
    manifest = api.http.get(f"{api.url}/manifest.webmanifest", timeout=30).json()

    assert manifest["share_target"] == {
        "action": "/share", "method": "GET", "params": {"title": "title", "text": "text", "url": "url"},
    }
    for icon in manifest["icons"]:
        assert api.http.get(f"{api.url}{icon['src']}", timeout=30).status_code == 200
    share = api.http.get(f"{api.url}/share", params={"url": "https://example.com/"}, timeout=30)
    assert share.status_code == 200 and '<script src="/web/app.js"' in share.text


@pytest.mark.parametrize("name", ["../app.py", "..%2Fapp.py", "__init__.py", "app.js.bak", "%00", "index.html%00.js"])
def test_only_the_app_files_are_served(api, name):
    assert api.http.get(f"{api.url}/web/{name}", timeout=30).status_code in (403, 404)


def test_the_page_forbids_inline_and_foreign_scripts(api):
    answer = api.http.get(f"{api.url}/", timeout=30)

    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
