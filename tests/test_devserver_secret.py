"""`make run` keeps one development secret in the data directory, so the
address it printed (and the token a page keeps) survive a restart."""

from __future__ import annotations

import os
import stat

import requests
from devserver_process import running_devserver

from chalicelib.devserver import DEV_SECRET_FILE, dev_secret


def test_the_secret_is_made_once_and_kept_owner_readable(tmp_path):
    store = f"file://{tmp_path / 'data'}"

    first = dev_secret(store)

    assert dev_secret(store) == first
    path = tmp_path / "data" / DEV_SECRET_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first) >= 32


def test_an_emptied_secret_file_is_replaced_not_used(tmp_path):
    (tmp_path / DEV_SECRET_FILE).write_text("\n")

    secret = dev_secret(f"file://{tmp_path}")

    assert len(secret) >= 32
    assert (tmp_path / DEV_SECRET_FILE).read_text().strip() == secret


def test_a_token_printed_before_a_restart_still_works_after_it(tmp_path):
    data = tmp_path / "data"
    with running_devserver(data) as before:
        assert requests.get(f"{before.url}/v1/links", headers={"Authorization": f"Bearer {before.token}"}, timeout=10).status_code == 200

    with running_devserver(data) as after:
        answer = requests.get(
            f"{after.url}/v1/links", headers={"Authorization": f"Bearer {before.token}"}, timeout=10
        )

    assert answer.status_code == 200
    # The secret file is no object of the store: the org data lists no stray key.
    assert answer.json()["links"] == []
