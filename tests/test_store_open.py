"""open_store turns the LINKLOG_STORE setting into a counting store, or says what is wrong."""

from __future__ import annotations

import pytest

from chalicelib.store import CountingStore, LocalStore, open_store
from chalicelib.store.s3 import S3Store


def test_file_url_opens_a_local_store_creating_the_directory(tmp_path):
    store = open_store(f"file://{tmp_path}/data")
    store.put("k", b"v")

    assert isinstance(store, CountingStore)
    assert isinstance(store.inner, LocalStore)
    assert store.inner.root == f"{tmp_path}/data"
    assert (tmp_path / "data" / "fk").read_bytes().endswith(b"\nv")
    assert open_store(f"file://{tmp_path}/data").get("k").body == b"v"
    assert store.counts()["put"] == 1


def test_relative_file_url_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    store = open_store("file://./data")

    assert store.inner.root == f"{tmp_path}/data"


def test_s3_url_opens_an_s3_store_at_bucket_and_prefix(s3_env):
    store = open_store(f"s3://{s3_env}/linklog/dev/")
    store.put("orgs/a/lease.json", b"{}")

    assert isinstance(store.inner, S3Store)
    assert store.inner.bucket == s3_env
    assert store.inner.prefix == "linklog/dev/"
    assert [o.key for o in store.list("orgs/")] == ["orgs/a/lease.json"]


def test_s3_url_without_prefix_uses_the_whole_bucket(s3_env):
    store = open_store(f"s3://{s3_env}")

    assert store.inner.prefix == ""


@pytest.mark.parametrize(
    "url, says",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("file://", "no path"),
        ("./data", "neither"),
        ("http://example.com/bucket", "neither"),
        ("S3://bucket", "neither"),
        ("s3://", "bucket"),
        ("s3://ab", "bucket"),
        ("s3://Upper-Case", "bucket"),
        ("s3://under_score", "bucket"),
        ("s3://bucket..dots", "bucket"),
        ("s3://" + "b" * 64, "bucket"),
        ("s3://bucket/a//b", "prefix"),
        ("s3://bucket/a/../b", "prefix"),
    ],
)
def test_bad_urls_are_refused_with_a_clear_message(url, says):
    with pytest.raises(ValueError) as caught:
        open_store(url)

    assert says in str(caught.value)


def test_a_non_string_url_is_refused():
    with pytest.raises(ValueError):
        open_store(None)
