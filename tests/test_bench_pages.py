"""bench/pages.py: the benches' page server answers what its page function says."""

import time

import requests

from bench.pages import PageServer


def test_a_page_is_served_whole_and_a_missing_one_is_a_404():
    pages = {"/a/1": b"<!doctype html><title>One</title>"}
    with PageServer(pages.get) as server:
        found = requests.get(server.url("/a/1"), timeout=10)
        missing = requests.get(server.url("/a/2"), timeout=10)
    assert (found.status_code, found.content, found.headers["Content-Type"]) == (
        200, pages["/a/1"], "text/html; charset=utf-8")
    assert (missing.status_code, missing.content) == (404, b"")


def test_a_slow_page_answers_after_its_delay():
    with PageServer(lambda path: b"late", delay_seconds=0.3) as server:
        started = time.monotonic()
        assert requests.get(server.url("/"), timeout=10).content == b"late"
        # A floor, never a ceiling: the delay happens; how fast the rest is, is not tested.
        assert time.monotonic() - started >= 0.3

