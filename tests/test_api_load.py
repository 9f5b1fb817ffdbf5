"""32 writers pushing all at once to one org, through the real dev server.

The server is `python -m chalicelib.devserver`, as `make run` starts it, in a
process of its own: once over moto's S3 server (LINKLOG_STORE=s3://…,
AWS_ENDPOINT_URL), once over a local directory. Clients retry on 503/429
after the Retry-After they are given, with the same batch id. Afterwards the
log holds versions 1…N, none missing, none twice, and pulling it hands
out every event exactly once, in version order.

Over the local directory each writer pushes 20 times (640 commits); over
moto's server, where a push costs several times as much, 10 times (320
commits): the 32 writers still wait on each other from the first push.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import requests
from devserver_process import DevServer

from chalicelib.auth import issue_token
from chalicelib.store.motoserver import FAKE_AWS, moto_client

SECRET = "load-test-secret-long-enough-for-hs256-signing"
WRITERS = 32
AT = "2026-11-23T20:00:00Z"


def push_until_committed(http: requests.Session, url: str, token: str, body: dict) -> int:
    while True:
        response = http.post(
            f"{url}/v1/sync/push", json=body,
            headers={"Authorization": f"Bearer {token}"}, timeout=60,
        )
        if response.status_code in (429, 503):
            time.sleep(float(response.headers["Retry-After"]))
            continue
        assert response.status_code == 200, response.text
        return response.json()["version"]


def tag_created(writer: int, push: int, n: int) -> dict:
    # Tags, not links: the dev server's worker then has nothing to fetch.
    event_id = f"w{writer}-p{push}-e{n}"
    return {"id": event_id, "name": "v1.TagCreated",
            "args": {"id": event_id, "name": f"tag {event_id}", "createdAt": AT}, "at": AT}


def hammer(url: str, pushes: int) -> tuple[list[int], list[str]]:
    token = issue_token(SECRET, sub="load", org="loadtest", lifetime_seconds=3600, now=time.time())
    versions: list[int] = []
    sent: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(WRITERS)

    def writer(w: int) -> None:
        try:
            with requests.Session() as http:
                start.wait()
                for p in range(pushes):
                    events = [tag_created(w, p, n) for n in range(1 + (w + p) % 3)]
                    body = {"batch_id": f"w{w}-p{p}", "client_id": f"writer-{w}", "events": events}
                    version = push_until_committed(http, url, token, body)
                    with lock:
                        versions.append(version)
                        sent.extend(event["id"] for event in events)
        except BaseException as error:
            failures.append(error)
            start.abort()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    return versions, sent


def pull_everything(url: str) -> list[dict]:
    token = issue_token(SECRET, sub="load", org="loadtest", lifetime_seconds=3600, now=time.time())
    commits, since = [], 0
    with requests.Session() as http:
        while True:
            page = http.get(f"{url}/v1/sync/pull", params={"since": since},
                            headers={"Authorization": f"Bearer {token}"}, timeout=60).json()
            commits.extend(page["commits"])
            if not page["has_more"]:
                return commits
            since = page["commits"][-1]["version"]


def check_the_log(url: str, pushes: int) -> None:
    versions, sent = hammer(url, pushes)

    assert sorted(versions) == list(range(1, WRITERS * pushes + 1))
    commits = pull_everything(url)
    assert [c["version"] for c in commits] == list(range(1, WRITERS * pushes + 1))
    pulled = [event["id"] for commit in commits for event in commit["events"]]
    assert len(pulled) == len(set(pulled))
    assert sorted(pulled) == sorted(sent)
    assert {c["batch_id"] for c in commits} == {
        f"w{w}-p{p}" for w in range(WRITERS) for p in range(pushes)
    }


def run_against(data_dir: Path, env: dict, pushes: int) -> None:
    server = DevServer(data_dir, env, secret=SECRET)
    try:
        check_the_log(server.url, pushes)
    finally:
        server.stop()


def test_32_writers_over_moto_s3(moto_server, tmp_path):
    bucket = f"load-{uuid.uuid4().hex[:16]}"
    moto_client(moto_server).create_bucket(Bucket=bucket)
    aws = {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_REGION": FAKE_AWS["region_name"],
        "AWS_DEFAULT_REGION": FAKE_AWS["region_name"],
        "AWS_ACCESS_KEY_ID": FAKE_AWS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": FAKE_AWS["aws_secret_access_key"],
    }
    run_against(tmp_path / "data", {**aws, "LINKLOG_STORE": f"s3://{bucket}/linklog"}, pushes=10)


def test_32_writers_over_the_local_store(tmp_path):
    run_against(tmp_path / "data", {}, pushes=20)
